"""The model facts ``export`` acts on, read once from config.json and carried through every step:
the family (from the registry, ``models/families.py``), the inputs the graph takes, the attention
shape onnxruntime's fusions need, the vocabulary and positions generated inputs must stay inside,
and the number of outputs. Reading them in one place means a checkpoint is interpreted once, the
same way for every step. (The label order against a task is ``plan.py``'s, read once there.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.models.families import Family, family_of, input_names, kept_heads, max_positions, width
from codir_edge.models.labels import label_count
from codir_edge.onnx.graph import DEFAULT_OPSET

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportSpec", "read_spec"]

MIN_OPSET = 14  # optimum's floor for BERT-family encoders


@dataclass(frozen=True)
class ExportSpec:
    family: Family
    inputs: tuple[str, ...]  # what the exported graph takes, in its order
    heads: int  # per block, after pruning
    hidden: int
    vocab_size: int
    max_positions: int  # the longest input the position embeddings allow
    num_labels: int  # 1: a regression head

    @property
    def model_type(self) -> str:
        return self.family.model_type

    @property
    def optimizer_type(self) -> str | None:
        """The name onnxruntime's transformer optimizer knows the architecture by (None: its fusions
        do not apply and the graph runs plain)."""
        return self.family.optimizer

    @property
    def lowest_opset(self) -> int:
        return max(MIN_OPSET, self.family.min_opset)


def read_spec(config: dict, model_dir: Path) -> ExportSpec:
    """The facts of ``model_dir`` (its config.json as ``config``), or one line when its family is unsupported."""
    family = family_of(config, str(model_dir))
    return ExportSpec(
        family=family,
        inputs=input_names(config),
        heads=kept_heads(config),
        hidden=width(config),
        vocab_size=int(config["vocab_size"]),
        max_positions=max_positions(config),
        num_labels=label_count(config),
    )
