"""``codir-edge demo``: the whole chain on SST-2 with the bundled all-MiniLM-L6-v2, as a pipeline.

The demo is an ordinary pipeline file written into its output folder, so a re-run skips every
finished stage and a user can copy the file as the start of their own. The settings are small
but honest (every number in the final table is measured on the real dev set) so that the chain
runs in minutes on 2 CPU cores (benchmarks/results/demo.json has the measured time); a GPU is used
for training when there is one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from codir_edge.bundle import layout
from codir_edge.core.errors import InputError
from codir_edge.core.settings import like, setting
from codir_edge.training.config import TrainingConfig

DEFAULT_DATA = Path("..") / "shared" / "data" / "glue" / "SST-2"
# Outputs inside the demo folder, named for what they hold.
TEACHER, STUDENT, BUNDLE, PROFILE = "teacher", "student", "bundle", "profile"

_TEMPLATE = """\
# Written by `codir-edge demo`. Re-run with `codir-edge pipeline {toml_name}`: stages whose
# settings and inputs did not change are skipped. Copy it as the start of your own pipeline.
[pipeline]
work = "."
task = "sst2"
data = {data}
device = "{device}"

[finetune]                  # the teacher: all-MiniLM-L6-v2 (6 layers, width 384) fine-tuned on SST-2
out = "{teacher}"
epochs = 1
max-length = 64
max-train-samples = {teacher_samples}
seed = 42

[compress]                  # CoDIR into a 3-layer student, skip-initialised from the teacher
out = "{student}"
student-layers = 3
objective = "codir"
epochs = 1
max-length = 64
max-train-samples = {student_samples}
seed = 1

[export]                    # fp32 held to PyTorch, dynamic INT8, .ort, text-in model, manifest
out = "{bundle}"
max-length = 128

[profile]                   # 1 thread, batch 1, the real SST-2 dev sentence lengths
out = "{profile}"
targets = ["@finetune", "@export"]
threads = 1
batch-sizes = 1
seq-lens = "real"
runs = {runs}
"""


@dataclass(frozen=True)
class DemoSettings:
    """Sized for a short run on 2 CPU cores (benchmarks/results/demo.json); larger sample counts give
    better models."""

    teacher_samples: int = setting(20000, help="SST-2 training sentences for the teacher.")
    student_samples: int = setting(40000, help="Training sentences for distilling the student.")
    runs: int = setting(300, help="Timed runs per model in the latency profile.")
    device: str = like(TrainingConfig, "device")

    def __post_init__(self) -> None:
        for name in ("teacher_samples", "student_samples", "runs"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


def find_data(data: str | None) -> str:
    """``--data`` when given, else the shared SST-2 folder; a clear error when neither exists."""
    if data is not None:
        if not data.startswith("hf:") and not Path(data).exists():
            raise InputError(f"--data {data} does not exist: pass the SST-2 folder (train.tsv, dev.tsv) or a file")
        return data if data.startswith("hf:") else str(Path(data).resolve())
    if (DEFAULT_DATA / "train.tsv").is_file():
        return str(DEFAULT_DATA.resolve())
    raise InputError(
        f"no SST-2 data at {DEFAULT_DATA} (looked from {Path.cwd()}): pass --data with a GLUE SST-2 folder "
        "(train.tsv and dev.tsv with sentence and label columns)"
    )


def write_demo_pipeline(out: Path, data: str, settings: DemoSettings) -> Path:
    """The demo's pipeline file in ``out``; rewritten only when its text changes, so that a
    re-run with the same options finds every stage unchanged."""
    from codir_edge.core.atomic import atomic_write_text

    toml_name = "pipeline.toml"
    text = _TEMPLATE.format(
        toml_name=out / toml_name,
        data=json.dumps(data),
        device=settings.device,
        teacher=TEACHER,
        student=STUDENT,
        bundle=BUNDLE,
        profile=PROFILE,
        teacher_samples=settings.teacher_samples,
        student_samples=settings.student_samples,
        runs=settings.runs,
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / toml_name
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    return path


@dataclass(frozen=True)
class DemoRow:
    model: str
    runtime: str
    accuracy: float | None
    p50_ms: float | None
    p95_ms: float | None
    size_mb: float | None
    artifact: str


def demo_rows(out: Path) -> list[DemoRow]:
    """Teacher, fp32 student and int8 student, read back from the profile report on disk."""
    report = json.loads((out / PROFILE / "report.json").read_text(encoding="utf-8"))
    by_target = {row["target"]: row for row in report["results"] if row["seq_len"] == "real"}
    accuracy = report.get("accuracy", {})
    rows = []
    for model, target, runtime, artifact in (
        ("teacher (6 layers)", f"{TEACHER} (pytorch)", "PyTorch eager fp32", out / TEACHER),
        ("student fp32 (3 layers)", "fp32", "ONNX Runtime", out / BUNDLE / layout.FP32),
        ("student int8 (3 layers)", "int8", "ONNX Runtime", out / BUNDLE / layout.INT8),
    ):
        row = by_target.get(target, {})
        rows.append(
            DemoRow(
                model,
                runtime,
                accuracy.get(target, {}).get("accuracy"),
                row.get("p50_ms"),
                row.get("p95_ms"),
                row.get("size_mb"),
                str(artifact),
            )
        )
    return rows
