"""transformers, imported without the scikit-learn it loads for text generation.

When scikit-learn is installed, transformers imports it (and, through it, scipy.stats) as soon as any
model or tokenizer class loads: its assisted-generation candidate generator draws a ROC curve with it.
That is about 1.5 s of every process that loads a model (a tokenizer and a classifier loaded in 5.2 s
instead of 6.8 s, medians of 4 pairs on the project's 2-core machine), and an encoder never generates.
codir-edge installs scikit-learn for its own embedding probe, so the flag transformers reads is turned
off before its model modules load; our own ``import sklearn`` is unaffected.
"""

from __future__ import annotations

import sys


def prepare_transformers() -> None:
    """Call before the first ``from transformers import ...`` of a process. The flag is a private one
    of transformers (pinned in constraints.txt): should it go, setting it changes nothing but the
    start-up time, and once generation's modules have loaded it is left alone."""
    if "transformers.generation.candidate_generator" in sys.modules:
        return
    import transformers.utils.import_utils as available

    available._sklearn_available = False
