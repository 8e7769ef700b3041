"""The ``compress`` stage: CoDIR distillation of a teacher into a smaller student (``run.run_compress``)."""
