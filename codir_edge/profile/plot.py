"""PNG plot: latency percentiles per target, one panel per device, and, where accuracy is known,
accuracy against p95 with every device's points."""

from __future__ import annotations

from pathlib import Path

from codir_edge.errors import MissingExtraError
from codir_edge.profile.run import ProfileReport

PERCENTILE_KEYS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")


def _reference_rows(report: ProfileReport) -> tuple[list[dict], str]:
    """One configuration shared by all targets: real sentences if measured, else the first configuration."""
    first = report.results[0]
    real = [r for r in report.results if r["seq_len"] == "real"]
    key = real[0] if real else first
    rows = [
        r
        for r in report.results
        if (r["threads"], r["batch_size"], r["seq_len"]) == (key["threads"], key["batch_size"], key["seq_len"])
    ]
    return rows, f"{key['threads']} thread(s), batch {key['batch_size']}, seq {key['seq_len']}"


def _latency_panel(ax, rows: list[dict], title: str) -> None:
    import numpy as np

    width = 0.8 / len(PERCENTILE_KEYS)
    x = np.arange(len(rows))
    for i, key in enumerate(PERCENTILE_KEYS):
        ax.bar(x + i * width, [r[key] for r in rows], width, label=key.replace("_ms", ""))
    ax.set_xticks(x + width * (len(PERCENTILE_KEYS) - 1) / 2, [r["target"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend()


def write_plot(report: ProfileReport, path: Path) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("--plot", "plot", "matplotlib") from exc
    if not report.results:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, label = _reference_rows(report)
    devices = list(dict.fromkeys(r["device"] for r in rows))
    with_accuracy = [r for r in rows if report.accuracy.get(r["target"])]
    panels = len(devices) + (1 if with_accuracy else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels + 1, 4.5), squeeze=False)
    for ax, device in zip(axes[0], devices, strict=False):
        where = f"{device}: " if len(devices) > 1 or device != "local" else ""
        _latency_panel(ax, [r for r in rows if r["device"] == device], f"{where}latency percentiles ({label})")
    if len(devices) > 1:  # one scale across devices, so that bar heights compare
        top = max(ax.get_ylim()[1] for ax in axes[0][: len(devices)])
        for ax in axes[0][: len(devices)]:
            ax.set_ylim(0, top)
    if with_accuracy:
        ax = axes[0][-1]
        for r in with_accuracy:
            value = next(iter(report.accuracy[r["target"]].values()))
            name = r["target"] if len(devices) == 1 else f"{r['target']} @ {r['device']}"
            ax.scatter(r["p95_ms"], value)
            ax.annotate(name, (r["p95_ms"], value), textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel("p95 latency (ms)")
        ax.set_ylabel(next(iter(report.accuracy[with_accuracy[0]["target"]])))
        ax.set_title("Accuracy against p95 latency")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
