"""Profile settings: one validated dataclass, declared once for the command line and the pipeline
(``core/settings.py``), recorded in every JSON report."""

from __future__ import annotations

from dataclasses import dataclass

from codir_edge.core.errors import InputError
from codir_edge.core.inputs import REAL
from codir_edge.core.settings import DATA, int_list, seq_lens_list, setting
from codir_edge.data import DataSpec
from codir_edge.devices.spec import LOCAL_DEVICE, Device
from codir_edge.profile.budgets import Budget

SWEEP = "Sweep"
DEVICES = "Devices"
REPORTS = "Reports"
SEQ_LENS = (16, 64, 128)


def _threads(value: str | None) -> tuple[int, ...]:
    return int_list(value, "--threads") or (1, 2)


def _batch_sizes(value: str | None) -> tuple[int, ...]:
    return int_list(value, "--batch-sizes") or (1, 8)


def _seq_lens(value: str | None) -> tuple[int | str, ...] | None:
    """None when not given: the command adds 'real' to the default lengths when --data is given."""
    return seq_lens_list(value, "--seq-lens")


@dataclass(frozen=True, kw_only=True)
class ProfileConfig:
    threads: tuple[int, ...] = setting(
        (1, 2), help="Intra-op thread counts, e.g. 1,2.", show_default="1,2", panel=SWEEP, cli_type=str | None,
        cli_default=None, parse=_threads,
    )  # fmt: skip
    batch_sizes: tuple[int, ...] = setting(
        (1, 8), help="Batch sizes, e.g. 1,8.", show_default="1,8", panel=SWEEP, cli_type=str | None,
        cli_default=None, parse=_batch_sizes,
    )  # fmt: skip
    seq_lens: tuple[int | str, ...] = setting(
        SEQ_LENS, help="Sequence lengths, 'real' for real sentences from --data.",
        show_default="16,64,128, plus real with --data", panel=SWEEP, cli_type=str | None, cli_default=None,
        parse=_seq_lens,
    )  # fmt: skip
    runs: int = setting(200, help="Timed runs per configuration.", panel=SWEEP)
    duration_s: float | None = setting(
        None, help="Time each configuration for this many seconds instead of --runs.", panel=SWEEP,
        flags=("--duration",),
    )  # fmt: skip
    warmup: int = setting(20, help="Untimed runs before timing.", panel=SWEEP)
    provider: str = setting(
        "cpu",
        help="Execution provider: cpu, xnnpack, cuda, coreml, nnapi, ... or a full onnxruntime provider name.",
        panel=SWEEP,
    )
    cpus: tuple[int, ...] | None = setting(
        None, help="Pin each measurement to these CPU ids, e.g. 0 or 0,1.", panel=SWEEP, cli_type=str | None,
        parse=lambda value: int_list(value, "--cpus", minimum=0),
    )  # fmt: skip
    repeat: int = setting(
        1, help="Measure each configuration N times in fresh processes; budgets are judged on the median.",
        panel=SWEEP,
    )  # fmt: skip
    task: str | None = setting(
        None, help="Task of --data (real inputs and accuracy).", flags=("--task", "-t"), panel=DATA
    )
    data: DataSpec | None = None
    max_length: int = 128
    max_eval_samples: int | None = setting(
        None, help="Score accuracy on a seeded subset of this size.", panel=DATA
    )
    keep_samples: bool = setting(
        False, help="Include every latency sample in the JSON.", panel=REPORTS,
        flags=("--raw-samples/--no-raw-samples",),
    )  # fmt: skip
    budgets: tuple[Budget, ...] = ()
    sweep_given: bool = True  # False: measure only what the budgets need
    devices: tuple[Device, ...] = (LOCAL_DEVICE,)
    # per configuration, on any device
    timeout_s: float = setting(
        600.0, help="Seconds one configuration may take on a device before that device is given up.",
        panel=SWEEP, flags=("--timeout",),
    )  # fmt: skip
    # empty each remote device's cache afterwards
    clean_device: bool = setting(
        False, help="Empty each device's cache of models and inputs after measuring.", panel=DEVICES
    )

    def __post_init__(self) -> None:
        for name in ("threads", "batch_sizes"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise InputError(f"--{name.replace('_', '-')} must list positive integers, got {values}")
        if not self.seq_lens or any(v != REAL and (not isinstance(v, int) or v < 1) for v in self.seq_lens):
            raise InputError(f"--seq-lens must list positive integers (or 'real'), got {self.seq_lens}")
        if self.runs < 1:
            raise InputError(f"--runs must be at least 1, got {self.runs}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise InputError(f"--duration must be positive, got {self.duration_s}")
        if self.warmup < 0:
            raise InputError(f"--warmup must not be negative, got {self.warmup}")
        if self.repeat < 1:
            raise InputError(f"--repeat must be at least 1, got {self.repeat}")
        if self.timeout_s <= 0:
            raise InputError(f"--timeout must be positive, got {self.timeout_s}")
        if (self.task is None) != (self.data is None):
            raise InputError("--task and --data go together: give both (real inputs, accuracy) or neither")


