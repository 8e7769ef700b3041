"""The teacher bank: built once by a teacher pass (``build``), kept on disk (``cache``), read per
step (``table``) and sampled for negatives (``negatives``)."""
