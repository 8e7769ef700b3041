"""Export settings: one validated dataclass, recorded in the bundle's manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.errors import InputError
from codir_edge.export import quantize as q
from codir_edge.export.spec import DEFAULT_OPSET

QUANTIZE_MODES = ("none", "dynamic", "static")


@dataclass(frozen=True)
class ExportConfig:
    quantize: str = "dynamic"
    task: str | None = None
    calibration_samples: int = 300
    calibration_method: str = "minmax"
    optimize: bool = True  # offline fusion allowed; kept only where measured faster
    fp16: bool = False  # also made whenever the target is a GPU
    ort: bool = True
    opset: int = DEFAULT_OPSET
    atol: float = 1e-4
    max_accuracy_drop: float = 0.5  # points of the task's primary metric
    target: str = "native"
    max_length: int = 128
    max_eval_samples: int | None = None
    threads: int = 1  # for the measurements that choose between graphs
    tokenizer_in_graph: bool | None = None  # None: whenever the tokenizer is WordPiece or byte-level BPE
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE_MODES:
            raise InputError(f"unknown --quantize '{self.quantize}': use one of {', '.join(QUANTIZE_MODES)}")
        if self.calibration_method not in q.CALIBRATION_METHODS:
            raise InputError(
                f"unknown --calibration-method '{self.calibration_method}': use one of "
                f"{', '.join(q.CALIBRATION_METHODS)} (percentile clips BERT's outliers and wrecks its accuracy)"
            )
        if self.target not in q.TARGETS:
            raise InputError(f"unknown --target '{self.target}': use one of {', '.join(q.TARGETS)}")
        if self.calibration_samples < 1 or self.threads < 1:
            raise InputError("--calibration-samples and threads must be at least 1")
        if not self.atol > 0 or self.max_accuracy_drop < 0:
            raise InputError("--atol must be positive and --max-accuracy-drop must not be negative")

    def to_dict(self) -> dict:
        return asdict(self)
