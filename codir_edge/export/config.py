"""Export settings: one validated dataclass, recorded in the bundle's manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from codir_edge.core.errors import InputError
from codir_edge.core.inputs import REAL
from codir_edge.core.settings import int_list, like, seq_lens_list, setting
from codir_edge.export import quantize as q
from codir_edge.onnx.graph import DEFAULT_OPSET
from codir_edge.training.config import TrainingConfig as TrainingOptions

QUANTIZE_MODES = ("auto", "dynamic", "static", "none")
AUTO, OFF = "auto", "off"  # --fixed-shape's words besides BxL


QUANT = "Quantization"
GRAPH = "Graph"
TUNE = "Tuning"


def _tune_threads(value: str | None) -> tuple[int, ...]:
    return int_list(value, "--tune-threads") or ()


def _tune_lengths(value: str | None) -> tuple[int | str, ...]:
    return seq_lens_list(value, "--tune-lengths") or ()


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    # dynamic candidates, and static QDQ ones when --data can calibrate and score them
    quantize: str = setting(
        AUTO,
        help="INT8 candidates: auto (dynamic, plus static QDQ and per-tensor weights when --data can score them), "
        "dynamic, static (QDQ, calibrated on --data) or none. The fastest within --max-accuracy-drop ships; when "
        "none holds it, the most sensitive MatMuls stay in fp32.",
        panel=QUANT,
        choices=QUANTIZE_MODES,
    )
    task: str | None = setting(
        None,
        help="Task of --data (its columns and metric). 'embedding': a sentence-embedding model (sentence-transformers "
        "folder), exported with its pooling in the graph and scored on STS pairs or labelled texts.",
        flags=("--task", "-t"),
    )
    # 4: the lookups by an input (word embeddings) stored in 4 bits in every INT8 file (onnx/lookup4.py)
    embedding_bits: int = setting(
        8,
        help="Bits per value of the word-embedding table in the INT8 files (not the fixed-shape variants): 8, "
        "or 4 (onnxruntime's GatherBlockQuantized, one scale per 64 values; the table, most of a small model, "
        "halves again; needs onnxruntime 1.23 or later). With 4, graphs that fuse the lookup into one operator "
        "are not candidates.",
        panel=QUANT,
    )
    calibration_samples: int = setting(300, help="Training sentences used to calibrate static INT8.", panel=QUANT)
    calibration_method: str = setting(
        "minmax", help="minmax or entropy (percentile wrecks BERT accuracy).", panel=QUANT,
        choices=q.CALIBRATION_METHODS,
    )  # fmt: skip
    # offline fusion allowed; kept only where measured faster
    optimize: bool = setting(True, help="Try onnxruntime's offline BERT fusion; kept only if measured faster.",
                             panel=GRAPH)  # fmt: skip
    # also made whenever the target is a GPU
    fp16: bool = setting(False, help="Also write onnx/model_fp16.onnx (always for --target cuda).", panel=QUANT,
                         flags=("--fp16",))  # fmt: skip
    ort: bool = setting(True, help="Write onnx/model.ort and its required_operators.config for ONNX Runtime Mobile.",
                        panel=GRAPH)  # fmt: skip
    # None: whatever the running onnxruntime can write; the manifest says what each file needs
    min_onnxruntime: str | None = setting(
        None,
        help="Oldest onnxruntime the app runs, e.g. 1.17: a file that needs a newer one is left out, with a line "
        "saying why (the manifest records each file's oldest onnxruntime either way).",
        panel=GRAPH,
    )
    opset: int = setting(DEFAULT_OPSET, help="ONNX opset.", panel=GRAPH)
    atol: float = setting(1e-4, help="Largest allowed |PyTorch - ONNX| on fp32 logits.")
    # points of the task's primary metric
    max_accuracy_drop: float = setting(
        0.5, help="Largest allowed drop of a variant's task metric against fp32, in points."
    )
    target: str = setting(
        "native", help="CPU family or accelerator the bundle is for (native: this machine).", panel=GRAPH,
        choices=q.TARGETS,
    )  # fmt: skip
    max_length: int = like(TrainingOptions, "max_length")
    max_eval_samples: int | None = setting(None, help="Score variants on a seeded subset of the dev split.")
    # () -> 1 and this machine's cores
    tune_threads: tuple[int, ...] = setting(
        (),
        help="Thread counts the bundle will run at; each gets the graph fastest there, e.g. 1,4.",
        panel=TUNE,
        show_default="1 and this machine's cores",
        cli_type=str | None,
        cli_default=None,
        parse=_tune_threads,
    )
    # () -> the dev sentences' own lengths with --data, else 16 and 128
    tune_lengths: tuple[int | str, ...] = setting(
        (),
        help="Input lengths to time candidates at, 'real' for dev sentences at their own length, e.g. 16,128,real.",
        panel=TUNE,
        show_default="real with --data, else 16,128",
        cli_type=str | None,
        cli_default=None,
        parse=_tune_lengths,
    )
    timing_cache: bool = setting(
        True,
        help="Reuse the candidates' timings from an earlier export of the same graphs on this machine "
        "($XDG_CACHE_HOME/codir-edge or ~/.cache/codir-edge).",
        panel=TUNE,
    )
    # "BxL", "auto" (with --ort: 1 x the dev p99 length, else 1x128) or "off"
    fixed_shape: str = setting(
        AUTO,
        help="Also write onnx/model_quantized.fixed.onnx (and .ort) with static BxL inputs and QDQ u8 INT8 for "
        "NNAPI and Core ML, e.g. 1x64; auto: with --ort, batch 1 and the dev data's 99th-percentile length "
        "(128 without data); off.",
        panel=TUNE,
    )
    # None: whenever the tokenizer is WordPiece or byte-level BPE
    tokenizer_in_graph: bool | None = setting(
        None,
        help="Write onnx/model.strings.onnx: raw text in, logits and probabilities out (onnxruntime-extensions); "
        "for --task ner, each piece's label, character offsets and word too. Default: whenever the tokenizer "
        "can be put in the graph (a tagger's: WordPiece only).",
        panel=GRAPH,
        flags=("--tokenizer-in-graph/--no-tokenizer-in-graph",),
        show_default=False,
    )
    trust_remote_code: bool = like(TrainingOptions, "trust_remote_code")

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
        if self.embedding_bits not in (4, 8):
            raise InputError(f"--embedding-bits {self.embedding_bits}: use 8 (the default) or 4")
        if self.embedding_bits == 4 and self.quantize == "none":
            raise InputError("--embedding-bits 4 applies to the INT8 files, and --quantize none writes none: "
                             "drop one of them")  # fmt: skip
        if self.calibration_samples < 1:
            raise InputError("--calibration-samples must be at least 1")
        if any(t < 1 for t in self.tune_threads):
            raise InputError("--tune-threads takes thread counts of at least 1, e.g. 1,2")
        if any(n != REAL and (not isinstance(n, int) or n < 2) for n in self.tune_lengths):
            raise InputError("--tune-lengths takes token counts of at least 2 or 'real', e.g. 16,128,real")
        if any(isinstance(n, int) and n > self.max_length for n in self.tune_lengths):
            raise InputError(f"--tune-lengths go up to --max-length {self.max_length}: drop the longer ones")
        fixed_shape(self.fixed_shape)  # checked here, resolved by the plan
        if self.min_onnxruntime is not None:
            min_onnxruntime(self.min_onnxruntime)
        if not self.atol > 0 or self.max_accuracy_drop < 0:
            raise InputError("--atol must be positive and --max-accuracy-drop must not be negative")

    def to_dict(self) -> dict:
        return asdict(self)


def min_onnxruntime(value: str) -> tuple[int, ...]:
    """'1.17' -> (1, 17); a version older than codir-edge checks, or not a version, is one line."""
    from codir_edge.onnx.runtime_needs import OLDEST_CHECKED, version_tuple

    parts = value.split(".")
    if not (2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
        raise InputError(f"--min-onnxruntime '{value}' is not a version: use e.g. 1.17")
    if version_tuple(value) < version_tuple(OLDEST_CHECKED):
        raise InputError(f"--min-onnxruntime {value}: codir-edge checks files back to onnxruntime {OLDEST_CHECKED} "
                         f"only: pass {OLDEST_CHECKED} or later")  # fmt: skip
    return version_tuple(value)


def fixed_shape(value: str) -> tuple[int, int] | str:
    """'1x128' -> (1, 128); 'auto' and 'off' pass through; anything else is one line."""
    if value in (AUTO, OFF):
        return value
    batch, sep, length = value.lower().partition("x")
    if sep and batch.isdigit() and length.isdigit() and int(batch) >= 1 and int(length) >= 2:
        return int(batch), int(length)
    raise InputError(f"--fixed-shape '{value}' is not BxL: use e.g. 1x64, or auto, or off")
