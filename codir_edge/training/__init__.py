"""The one training engine every recipe (finetune, CoDIR-Fine, CoDIR-Pre) runs through.

It owns the loop, the optimizer and schedule, the step under autocast, checkpoints and exact
resume, Ctrl-C / SIGTERM handling, torchrun (DDP) and the working run folder, and knows nothing of
CoDIR: a recipe hands it a :class:`~codir_edge.training.engine.Loop` saying how a batch is made and
how an epoch is scored.
"""
