"""PNG plot: latency percentiles per target and, where accuracy is known, accuracy against p95."""

from __future__ import annotations

from pathlib import Path

from codir_edge.errors import MissingExtraError
from codir_edge.profile.run import ProfileReport


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


def write_plot(report: ProfileReport, path: Path) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("--plot", "plot", "matplotlib") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, label = _reference_rows(report)
    with_accuracy = [r for r in rows if report.accuracy.get(r["target"])]
    fig, axes = plt.subplots(1, 2 if with_accuracy else 1, figsize=(12 if with_accuracy else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    keys = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")
    width = 0.8 / len(keys)
    x = np.arange(len(rows))
    for i, key in enumerate(keys):
        ax.bar(x + i * width, [r[key] for r in rows], width, label=key.replace("_ms", ""))
    ax.set_xticks(x + width * (len(keys) - 1) / 2, [r["target"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"Latency percentiles ({label})")
    ax.legend()
    if with_accuracy:
        ax = axes[0][1]
        for r in with_accuracy:
            value = next(iter(report.accuracy[r["target"]].values()))
            ax.scatter(r["p95_ms"], value)
            ax.annotate(r["target"], (r["p95_ms"], value), textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel("p95 latency (ms)")
        ax.set_ylabel(next(iter(report.accuracy[with_accuracy[0]["target"]])))
        ax.set_title("Accuracy against p95 latency")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
