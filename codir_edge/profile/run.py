"""``run_profile``: measure every (target, threads, batch size, sequence length), judge the budgets.

Only onnxruntime, numpy and the ``tokenizers`` wheel are needed here; torch is touched only for a
PyTorch-folder target, in its own worker process.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codir_edge.core.errors import DeviceFault, InputError
from codir_edge.core.inputs import REAL, real_batches, synthetic_token_ids
from codir_edge.data import DataSpec
from codir_edge.data.split import RawSplit
from codir_edge.devices.session import DeviceSession, Group, write_batches
from codir_edge.devices.spec import LOCAL_DEVICE, Device
from codir_edge.profile.budgets import Budget, Check, judge
from codir_edge.profile.stats import summarize
from codir_edge.profile.targets import (
    Target,
    external_data,
    position_limit,
    resolve_targets,
    vocab_limit,
)

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "webgpu": "WebGpuExecutionProvider",
}
FIGURES = (
    "cold_start_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "throughput_seq_per_s",
    "peak_rss_mb",
    "size_mb",
)


@dataclass(frozen=True)
class ProfileConfig:
    threads: tuple[int, ...] = (1, 2)
    batch_sizes: tuple[int, ...] = (1, 8)
    seq_lens: tuple[int | str, ...] = (16, 64, 128)
    runs: int = 200
    duration_s: float | None = None
    warmup: int = 20
    provider: str = "cpu"
    cpus: tuple[int, ...] | None = None
    repeat: int = 1
    task: str | None = None
    data: DataSpec | None = None
    max_length: int = 128
    max_eval_samples: int | None = None
    keep_samples: bool = False
    budgets: tuple[Budget, ...] = ()
    sweep_given: bool = True  # False: measure only what the budgets need
    devices: tuple[Device, ...] = (LOCAL_DEVICE,)
    timeout_s: float = 600.0  # per configuration, on any device
    clean_device: bool = False  # empty each remote device's cache afterwards

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


@dataclass
class ProfileReport:
    """``machine`` is the first device measured (what reports before devices called it); every
    result row names its ``device``, described in ``devices``."""

    machine: dict
    targets: list[dict]
    results: list[dict]
    accuracy: dict[str, dict[str, float]]
    checks: list[Check] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    devices: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # device -> one line
    uploaded_bytes: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures and all(check.passed for check in self.checks)


def resolve_provider(name: str, available: list[str], device: str = "local") -> str:
    full = PROVIDERS.get(name.lower(), name)
    if full not in available:
        shown = ", ".join(sorted({k for k, v in PROVIDERS.items() if v in available} | set(available)))
        build = "this onnxruntime build" if device == "local" else f"the onnxruntime build of {device}"
        raise DeviceFault(f"{device}: provider '{name}' is not in {build} (available: {shown}): pick one of those")
    return full


def _configurations(config: ProfileConfig) -> list[tuple[int, int, int | str]]:
    wanted = list(itertools.product(config.threads, config.batch_sizes, config.seq_lens)) if config.sweep_given else []
    for budget in config.budgets:
        if budget.config not in wanted:
            wanted.append(budget.config)
    return wanted


def _check_budgets(config: ProfileConfig, targets: list[Target]) -> None:
    names = [t.name for t in targets]
    for budget in config.budgets:
        if budget.target not in names:
            raise InputError(
                f"budget '{budget.name}' (line {budget.line}) names target '{budget.target}', which is "
                f"not among the targets ({', '.join(names)}): fix the budget or add the target"
            )
        if budget.seq_len == REAL and config.data is None:
            raise InputError(f"budget '{budget.name}' uses seq_len = \"real\": pass --task and --data")
        target = targets[names.index(budget.target)]
        if not target.fits(budget.batch_size, budget.seq_len):
            raise InputError(
                f"budget '{budget.name}' (line {budget.line}) measures {target.name} at batch {budget.batch_size}, "
                f"seq {budget.seq_len}, but its shape is fixed at {target.fixed_shape[0]}x{target.fixed_shape[1]}: "
                "use that batch size and a length up to it"
            )
        if budget.min_accuracy is not None and config.data is None and not target.accuracy:
            raise InputError(
                f"budget '{budget.name}' sets min_accuracy but no accuracy is known for "
                f"'{target.name}': pass --task and --data"
            )


def _target_tokenizer(target: Target):
    from codir_edge.data.fast_tokenizer import find_tokenizer

    tokenizer = find_tokenizer(target.folder)
    if tokenizer is None:
        raise InputError(
            f"real inputs and accuracy for {target.name} need tokenizer.json in {target.folder}: export the "
            "tokenizer beside the model, or use synthetic --seq-lens only"
        )
    return tokenizer


def _run_worker(spec: dict, module: str = "codir_edge.profile.torch_worker", path_key: str = "path") -> dict:
    done = subprocess.run([sys.executable, "-m", module], input=json.dumps(spec), capture_output=True, text=True)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(
            f"measuring {spec[path_key]} crashed the worker (exit {done.returncode}: {tail}): "
            "check the model with codir-edge verify"
        ) from None
    if "error" in result:
        raise InputError(f"measuring {spec[path_key]} failed ({result['error']}): check the model and its inputs")
    return result


def _torch_accuracy(target: Target, config: ProfileConfig) -> dict[str, float]:
    """A PyTorch folder's task metric, scored in a child process (see ``torch_accuracy``)."""
    spec = {
        "model": str(target.path),
        "task": config.task,
        "data": asdict(config.data),
        "max_length": config.max_length,
        "max_samples": config.max_eval_samples,
    }
    return _run_worker(spec, "codir_edge.profile.torch_accuracy", "model")["metrics"]


def _accuracy(target: Target, raw: RawSplit, tokenizer, config: ProfileConfig) -> dict[str, float]:
    from codir_edge.data import get_task
    from codir_edge.data.encode import encode
    from codir_edge.data.labels import to_examples
    from codir_edge.onnx.scoring import model_label_order, score_onnx

    task = get_task(config.task)
    examples = to_examples(raw, task, model_label_order(target.folder, task)).subsample(config.max_eval_samples, 0)
    encoded = encode(tokenizer, examples, config.max_length)
    return score_onnx(target.path, task, examples, encoded, max(config.threads)).metrics


def _check_devices(config: ProfileConfig, targets: list[Target]) -> None:
    names = [d.name for d in config.devices]
    for budget in config.budgets:
        if budget.device is not None and budget.device not in names:
            raise InputError(
                f"budget '{budget.name}' (line {budget.line}) names device '{budget.device}', which is not "
                f"measured (devices: {', '.join(names)}): fix the budget or add --device {budget.device}"
            )
    if any(d.is_local for d in config.devices):  # bad usage here fails before any data is scored
        import onnxruntime

        resolve_provider(config.provider, onnxruntime.get_available_providers())
    torch_targets = [t.name for t in targets if t.kind == "torch"]
    remote = [d.name for d in config.devices if not d.is_local]
    if torch_targets and remote:
        raise InputError(
            f"{torch_targets[0]} is a PyTorch folder, which is measured on this machine only, not on {remote[0]}: "
            "profile its ONNX export on devices"
        )
    if config.duration_s is not None and config.duration_s >= config.timeout_s:
        raise InputError(
            f"--duration {config.duration_s:g} is not below --timeout {config.timeout_s:g}: raise --timeout"
        )


def _read_dev_split(config: ProfileConfig) -> RawSplit | None:
    if config.data is None:
        return None
    from codir_edge.data import get_task
    from codir_edge.data.readers import read_split

    task = get_task(config.task)
    return read_split(config.data.data, task, "dev", config.data.columns(task))


def _prepare(targets: list[Target], configurations, raw, config: ProfileConfig, scratch: Path, accuracy: dict):
    """Every target's inputs for every configuration as token-id ``.npy`` files (the device needs no
    tokenizer), and accuracy where --data is given, scored here once for all devices."""
    inputs: dict[tuple[str, tuple], Group] = {}
    for target in targets:
        real_ids, pad_id = [], 0
        if raw is not None:
            tokenizer = _target_tokenizer(target)
            real_ids = tokenizer(raw.texts, raw.text_pairs, truncation=True, max_length=config.max_length)["input_ids"]
            pad_id = tokenizer.pad_token_id or 0
        if raw is not None and target.kind == "onnx" and target.fixed_shape is None:
            accuracy[target.name] = _accuracy(target, raw, tokenizer, config)
        elif raw is not None and target.kind == "torch":
            accuracy[target.name] = _torch_accuracy(target, config)
        elif target.accuracy:
            accuracy[target.name] = dict(target.accuracy)
        for _, batch_size, seq_len in configurations:
            if (target.name, (batch_size, seq_len)) in inputs:
                continue
            if seq_len == REAL:
                batches = real_batches(real_ids, batch_size, count=min(256, max(1, len(real_ids) // batch_size)))
            else:
                batches = [synthetic_token_ids(batch_size, seq_len, seed=0, vocab=vocab_limit(target))]
            if not batches:
                raise InputError(f"the dev split of {config.data.data} has no sentences: pass data with a dev split")
            inputs[(target.name, (batch_size, seq_len))] = write_batches(batches, pad_id, scratch)
    return inputs


def _measure_torch(target: Target, threads: int, group: Group, config: ProfileConfig) -> dict:
    """A PyTorch folder in the torch worker, on this machine (same loop, same inputs)."""
    spec = {
        "path": str(target.path),
        "threads": threads,
        "runs": config.runs,
        "duration_s": config.duration_s,
        "warmup": config.warmup,
        "ids": str(group.files[0]),
        "lengths": str(group.files[1]),
        "cpus": list(config.cpus) if config.cpus else None,
    }
    try:
        return _run_worker(spec)
    except InputError as exc:
        raise DeviceFault(f"local: {exc}") from None


def _measure_once(session: DeviceSession, target: Target, group: Group, placed: dict, provider: str, threads: int,
                  config: ProfileConfig, what: str) -> dict:  # fmt: skip
    """One run of one configuration: a PyTorch folder in the torch worker here, an ONNX model by the
    runner on the device, from the staged files."""
    if target.kind == "torch":
        return _measure_torch(target, threads, group, config)
    spec = {
        "model": placed[target.file_for(threads)],
        "ids": placed[group.files[0]],
        "lengths": placed[group.files[1]],
        "provider": provider,
        "threads": threads,
        "runs": config.runs,
        "duration_s": config.duration_s,
        "warmup": config.warmup,
        "cpus": list(config.cpus) if config.cpus else None,
        "timeout_s": config.timeout_s,
    }
    return session.measure(spec, what)


def _measure_device(session: DeviceSession, targets, configurations, inputs, config, report, tick) -> None:
    """Preflight, upload, then every (target, configuration) in fresh processes on one device."""
    device = session.device
    description = session.describe()
    report.devices[device.name] = {"address": device.address, **description}
    provider = resolve_provider(config.provider, description["providers"], device.name)
    if config.cpus and any(c not in description["usable_cpus"] for c in config.cpus):
        raise DeviceFault(
            f"{device.name}: --cpus {','.join(map(str, config.cpus))} names CPUs it does not have "
            f"(usable: {description['usable_cpus']}): pick among those"
        )
    files = {f for t in targets if t.kind == "onnx" for f in (t.path, *t.deployment.values())}
    models = [Group((f, *external_data(f))) for f in sorted(files)]
    placed = session.stage([*models, *inputs.values()])
    for target in targets:
        for threads, batch_size, seq_len in configurations:
            if not target.fits(batch_size, seq_len):
                continue  # a fixed-shape graph: other batch sizes and longer inputs cannot run
            group = inputs[(target.name, (batch_size, seq_len))]
            what = f"{target.name} (threads {threads}, batch {batch_size}, seq {seq_len})"
            repeats = []
            for _ in range(config.repeat):
                measured = _measure_once(session, target, group, placed, provider, threads, config, what)
                figures = summarize(measured["samples_ms"], batch_size)
                figures.update(
                    cold_start_ms=measured["cold_start_ms"], peak_rss_mb=measured["peak_rss_mb"], size_mb=target.size_mb
                )
                if config.keep_samples:
                    figures["samples_ms"] = measured["samples_ms"]
                repeats.append(figures)
                tick(f"{device.name} {target.name} t{threads} b{batch_size} s{seq_len}: p50 {figures['p50_ms']:.2f} ms")
            median = {key: statistics.median(r[key] for r in repeats) for key in FIGURES}
            report.results.append(
                {
                    "device": device.name,
                    "target": target.name,
                    "kind": target.kind,
                    "provider": provider if target.kind == "onnx" else "pytorch",
                    "threads": threads,
                    "batch_size": batch_size,
                    "seq_len": seq_len,
                    **median,
                    "repeats": repeats,
                }
            )
    if config.clean_device and not device.is_local:
        session.clean()


def run_profile(paths: list[Path], config: ProfileConfig, progress=None) -> ProfileReport:
    """Measure on every device of ``config``. A device that cannot be measured is reported in
    ``failures`` and the others go on; Ctrl-C stops the run and keeps what was measured."""
    targets = resolve_targets(paths)
    if not targets:
        raise InputError("no targets given: pass ONNX files, bundle folders or model folders")
    _check_budgets(config, targets)
    _check_devices(config, targets)
    configurations = _configurations(config)
    for target in targets:
        limit = position_limit(target)
        runnable = [s for _, b, s in configurations if s != REAL and target.fits(b, s)]
        too_long = [s for s in runnable if limit is not None and s > limit]
        if too_long:
            raise InputError(
                f"sequence length {max(too_long)} exceeds the {limit} positions of {target.name}: "
                f"use --seq-lens up to {limit}"
            )
    if any(s == REAL for _, _, s in configurations) and config.data is None:
        raise InputError("--seq-lens real needs --task and --data for real sentences")

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
        inputs = _prepare(targets, configurations, _read_dev_split(config), config, Path(scratch), report.accuracy)
        for device in config.devices:
            session = DeviceSession(device)
            try:
                with session:
                    _measure_device(session, targets, configurations, inputs, config, report, tick)
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
        _add_ratios([r for r in report.results if r["device"] == device.name], targets[0].name)
    _judge(report, config)
    return report


def _judge(report: ProfileReport, config: ProfileConfig) -> None:
    """Each budget on each device it applies to; a device that was not measured fails them."""
    task_metric = _primary_metric(config)
    for budget in config.budgets:
        scores = report.accuracy.get(budget.target, {})
        value = scores.get(task_metric) if task_metric in scores else next(iter(scores.values()), None)
        for device in config.devices:
            if budget.device not in (None, device.name):
                continue
            row = next(
                (
                    r
                    for r in report.results
                    if r["device"] == device.name
                    and r["target"] == budget.target
                    and (r["threads"], r["batch_size"], r["seq_len"]) == budget.config
                ),
                {},
            )
            report.checks += judge(budget, row, value if row else None, device.name)


def _primary_metric(config: ProfileConfig) -> str | None:
    if config.task is None:
        return None
    from codir_edge.data import get_task

    return get_task(config.task).primary_metric


def _add_ratios(results: list[dict], first: str) -> None:
    """p50 and p95 of each target over the first target's, in the same configuration."""
    base = {(r["threads"], r["batch_size"], r["seq_len"]): r for r in results if r["target"] == first}
    for row in results:
        ref = base.get((row["threads"], row["batch_size"], row["seq_len"]))
        if ref is not None:
            row["p50_ratio"] = row["p50_ms"] / ref["p50_ms"] if ref["p50_ms"] else None
            row["p95_ratio"] = row["p95_ms"] / ref["p95_ms"] if ref["p95_ms"] else None
