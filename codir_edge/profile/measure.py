"""Measuring on one device: preflight, upload, then every (target, configuration) in fresh
processes, each repeated and summarised by its median."""

from __future__ import annotations

import statistics

from codir_edge.core.errors import DeviceFault, InputError
from codir_edge.devices.measurement import Measurement
from codir_edge.devices.session import DeviceSession, Group
from codir_edge.profile.checks import resolve_provider
from codir_edge.profile.config import ProfileConfig
from codir_edge.profile.prepare import run_worker
from codir_edge.profile.stats import summarize
from codir_edge.profile.targets import Target, external_data

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


def measurement(model: str, files: tuple[str, str], provider: str, threads: int, config: ProfileConfig) -> Measurement:
    """The one place a profile run's spec is built, for the runner on a device and the torch worker here."""
    return Measurement(
        model=model,
        ids=files[0],
        lengths=files[1],
        threads=threads,
        runs=config.runs,
        warmup=config.warmup,
        duration_s=config.duration_s,
        provider=provider,
        cpus=tuple(config.cpus) if config.cpus else None,
        timeout_s=config.timeout_s,
    )


def _measure_once(session: DeviceSession, target: Target, group: Group, placed: dict, provider: str, threads: int,
                  config: ProfileConfig, what: str) -> dict:  # fmt: skip
    """One run of one configuration: a PyTorch folder in the torch worker here (same loop, same
    inputs), an ONNX model by the runner on the device, from the staged files."""
    if target.kind == "torch":
        spec = measurement(str(target.path), (str(group.files[0]), str(group.files[1])), provider, threads, config)
        try:
            return run_worker(spec.to_json(), what)
        except InputError as exc:
            raise DeviceFault(f"local: {exc}") from None
    files = (placed[group.files[0]], placed[group.files[1]])
    return session.measure(measurement(placed[target.file_for(threads)], files, provider, threads, config), what)


def measure_device(session: DeviceSession, targets, configurations, inputs, config, report, tick) -> None:
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


