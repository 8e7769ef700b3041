"""``codir-edge pipeline``: the whole chain (finetune, compress, export, profile) from one TOML file.

Each stage runs as its own ``codir-edge`` command, so a pipeline table takes exactly the options of
that command and validates them the same way. A stage is skipped when its output is intact and its
settings and input contents are unchanged since it last succeeded (recorded under
``<work>/.pipeline/``), so a re-run after an edit redoes only what the edit touches.
"""
