"""codir-edge: compress fine-tuned BERT teachers with CoDIR and ship them as benchmarked ONNX bundles.

This module must stay import-light: the CLI's ``--help`` and the on-device ``profile`` path import
it where torch and transformers are absent or too slow to load.
"""

__version__ = "0.1.0"
