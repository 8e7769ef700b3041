"""Score a model on a task split (``codir-edge evaluate``)."""

from codir_edge.evaluate.config import EvaluateConfig
from codir_edge.evaluate.run import EvalReport, run_evaluate

__all__ = ["EvalReport", "EvaluateConfig", "run_evaluate"]
