"""Usage checked before anything is measured: budgets against targets and devices, the provider, the
sweep's lengths against each target's positions. Bad usage fails here, before any data is scored."""

from __future__ import annotations

import itertools

from codir_edge.core.errors import DeviceFault, InputError
from codir_edge.core.inputs import REAL
from codir_edge.profile.config import ProfileConfig
from codir_edge.profile.targets import Target, position_limit

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
        named_apart = [n for n in names if n.endswith(f"/{budget.target}")]
        if budget.target not in names and len(named_apart) > 1:
            raise InputError(
                f"budget '{budget.name}' (line {budget.line}) names target '{budget.target}', which "
                f"{len(named_apart)} targets have ({', '.join(named_apart)}): name one of those"
            )
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
        if budget.gates_on_scores and config.data is None:  # never gate on a figure not measured here
            key = "min_accuracy" if budget.min_accuracy is not None else next(iter(budget.floors))
            raise InputError(
                f"budget '{budget.name}' (line {budget.line}) sets {key}, which profile checks only on "
                f"scores it measures: pass --task and --data"
            )


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


def check_usage(config: ProfileConfig, targets: list[Target]) -> list[tuple[int, int, int | str]]:
    """Every check above; the (threads, batch size, length) configurations to measure."""
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
    return configurations
