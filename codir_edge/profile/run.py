"""``run_profile``: measure every (target, threads, batch size, sequence length), judge the budgets.

Only onnxruntime, numpy and the ``tokenizers`` wheel are needed here; torch is touched only for a
PyTorch-folder target, in its own worker process. The jobs live beside this file: usage checks
(``checks``), inputs and accuracy (``prepare``), the device loop (``measure``) and the verdict
(``judging``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from codir_edge.core.errors import DeviceFault, InputError
from codir_edge.devices.session import DeviceSession
from codir_edge.profile.checks import check_usage
from codir_edge.profile.config import ProfileConfig
from codir_edge.profile.judging import ProfileReport, add_ratios, judge_budgets
from codir_edge.profile.measure import measure_device
from codir_edge.profile.prepare import prepare_inputs, read_dev_split
from codir_edge.profile.targets import resolve_targets

__all__ = ["ProfileConfig", "ProfileReport", "run_profile"]


def run_profile(paths: list[Path], config: ProfileConfig, progress=None) -> ProfileReport:
    """Measure on every device of ``config``. A device that cannot be measured is reported in
    ``failures`` and the others go on; Ctrl-C stops the run and keeps what was measured."""
    targets = resolve_targets(paths)
    if not targets:
        raise InputError("no targets given: pass ONNX files, bundle folders or model folders")
    configurations = check_usage(config, targets)

    report = ProfileReport(
        {},
        [{"name": t.name, "path": str(t.path), "kind": t.kind, "size_mb": t.size_mb} for t in targets],
        [],
        {},
        budgets=list(config.budgets),
    )
    total = len(config.devices) * len(targets) * len(configurations) * config.repeat
    bar = progress.add("profile", total, "runs") if progress is not None else None

    def tick(stats: str) -> None:
        if progress is not None:
            progress.advance(bar, stats=stats)

    with tempfile.TemporaryDirectory(prefix="codir-edge-inputs-") as scratch:
        inputs = prepare_inputs(targets, configurations, read_dev_split(config), config, Path(scratch), report.accuracy,
                                report.accuracy_basis)  # fmt: skip
        for device in config.devices:
            session = DeviceSession(device)
            try:
                with session:
                    measure_device(session, targets, configurations, inputs, config, report, tick)
            except DeviceFault as fault:
                report.failures[device.name] = str(fault)
            except KeyboardInterrupt:
                report.failures[device.name] = f"{device.name}: interrupted (Ctrl-C) while measuring"
                report.interrupted = True
                break
            finally:
                report.uploaded_bytes[device.name] = session.uploaded_bytes
    report.machine = next(iter(report.devices.values()), {})
    for device in config.devices:
        add_ratios([r for r in report.results if r["device"] == device.name], targets[0].name)
    judge_budgets(report, config)
    return report


