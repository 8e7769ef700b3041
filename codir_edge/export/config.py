"""Export settings: one validated dataclass, recorded in the bundle's manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.core.errors import InputError
from codir_edge.core.inputs import REAL
from codir_edge.export import quantize as q
from codir_edge.export.spec import DEFAULT_OPSET

QUANTIZE_MODES = ("auto", "dynamic", "static", "none")
AUTO, OFF = "auto", "off"  # --fixed-shape's words besides BxL


@dataclass(frozen=True)
class ExportConfig:
    quantize: str = AUTO  # dynamic candidates, and static QDQ ones when --data can calibrate and score them
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
    tune_threads: tuple[int, ...] = ()  # () -> 1 and this machine's cores
    tune_lengths: tuple[int | str, ...] = ()  # () -> the dev sentences' own lengths with --data, else 16 and 128
    fixed_shape: str = AUTO  # "BxL", "auto" (with --ort: 1 x the dev p99 length, else 1x128) or "off"
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
        if self.calibration_samples < 1:
            raise InputError("--calibration-samples must be at least 1")
        if any(t < 1 for t in self.tune_threads):
            raise InputError("--tune-threads takes thread counts of at least 1, e.g. 1,2")
        if any(n != REAL and (not isinstance(n, int) or n < 2) for n in self.tune_lengths):
            raise InputError("--tune-lengths takes token counts of at least 2 or 'real', e.g. 16,128,real")
        if any(isinstance(n, int) and n > self.max_length for n in self.tune_lengths):
            raise InputError(f"--tune-lengths go up to --max-length {self.max_length}: drop the longer ones")
        fixed_shape(self.fixed_shape)  # checked here, resolved by the plan
        if not self.atol > 0 or self.max_accuracy_drop < 0:
            raise InputError("--atol must be positive and --max-accuracy-drop must not be negative")

    def to_dict(self) -> dict:
        return asdict(self)


def fixed_shape(value: str) -> tuple[int, int] | str:
    """'1x128' -> (1, 128); 'auto' and 'off' pass through; anything else is one line."""
    if value in (AUTO, OFF):
        return value
    batch, sep, length = value.lower().partition("x")
    if sep and batch.isdigit() and length.isdigit() and int(batch) >= 1 and int(length) >= 2:
        return int(batch), int(length)
    raise InputError(f"--fixed-shape '{value}' is not BxL: use e.g. 1x64, or auto, or off")
