"""PNG plots that answer a sweep: latency against sequence length, and accuracy against latency.

``write_plot`` draws every measured configuration, never one picked silently:
- the latency figure has one panel per device and thread count (small multiples on a shared scale),
  each with one line per target and batch size: p50 as the line, p50 to p95 as its band, on a log
  scale when the latencies span a decade or more; a sweep of a single length gets the percentiles
  as bars instead.
- the accuracy figure (written beside it as ``<name>-accuracy.png`` when a metric is known) puts each
  target at its p95, joins the Pareto front (nothing else is both faster and more accurate), keeps
  labels apart, and states the span of its accuracy axis so that a 0.3-point spread is not read as
  a large one.
The layout decisions are plain functions, tested without drawing.
"""

from __future__ import annotations

from pathlib import Path

from codir_edge.core.errors import MissingExtraError
from codir_edge.core.inputs import REAL
from codir_edge.profile.judging import ProfileReport

PERCENTILE_KEYS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")
MIN_ACCURACY_SPAN = 0.01  # an accuracy axis spans at least one point, so small gaps look small
LOG_SCALE_RATIO = 10.0  # a log axis once the slowest latency is this many times the fastest


def lengths(results: list[dict]) -> list:
    """The swept sequence lengths in axis order: numbers ascending, then real sentences."""
    found = {r["seq_len"] for r in results}
    return sorted(s for s in found if s != REAL) + ([REAL] if REAL in found else [])


def panels(results: list[dict]) -> dict[tuple[str, int], dict[tuple[str, int], list[dict]]]:
    """(device, threads) -> (target, batch size) -> its rows in length order: one panel per device
    and thread count, one line per target and batch size."""
    order = {length: i for i, length in enumerate(lengths(results))}
    grid: dict[tuple[str, int], dict[tuple[str, int], list[dict]]] = {}
    for row in results:
        line = grid.setdefault((row["device"], row["threads"]), {}).setdefault((row["target"], row["batch_size"]), [])
        line.append(row)
    for lines in grid.values():
        for rows in lines.values():
            rows.sort(key=lambda r: order[r["seq_len"]])
    return grid


def log_scale(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) >= LOG_SCALE_RATIO


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower latency x, higher accuracy y),
    in order of latency."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def spread_labels(positions: list[float], gap: float) -> list[float]:
    """Label heights (axes fraction, 0..1) as near as possible to ``positions`` with at least ``gap``
    between any two, order kept; when they cannot all fit, evenly spaced over the axis."""
    if not positions:
        return []
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    if gap * (len(positions) - 1) > 1:
        gap = 1 / max(len(positions) - 1, 1)
    placed = [0.0] * len(positions)
    floor = 0.0
    for i in order:  # upward pass: each at least ``gap`` above the one below
        placed[i] = max(min(max(positions[i], 0.0), 1.0), floor)
        floor = placed[i] + gap
    ceiling = 1.0
    for i in reversed(order):  # downward pass: nothing above the top of the axis
        placed[i] = max(min(placed[i], ceiling), 0.0)
        ceiling = placed[i] - gap
    return placed


def accuracy_limits(values: list[float]) -> tuple[float, float]:
    """The accuracy axis: the values with a margin, at least ``MIN_ACCURACY_SPAN`` wide."""
    low, high = min(values), max(values)
    margin = max((high - low) * 0.15, (MIN_ACCURACY_SPAN - (high - low)) / 2, 0.0)
    return low - margin, high + margin


def accuracy_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-accuracy{path.suffix or '.png'}")


def write_plot(report: ProfileReport, path: Path) -> list[Path]:
    """The latency figure at ``path`` and, when accuracy is known, the accuracy figure beside it;
    returns the files written."""
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("--plot", "plot", "matplotlib") from exc
    if not report.results:
        return []
    matplotlib.use("Agg")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    _latency_figure(report, path)
    if any(report.accuracy.get(r["target"]) for r in report.results):
        written.append(accuracy_path(path))
        _accuracy_figure(report, written[-1])
    return written


def _latency_figure(report: ProfileReport, path: Path) -> None:
    import matplotlib.pyplot as plt

    grid = panels(report.results)
    devices = list(dict.fromkeys(device for device, _ in grid))
    threads = sorted({t for _, t in grid})
    fig, axes = plt.subplots(
        len(devices), len(threads), figsize=(5.2 * len(threads) + 1.5, 4.2 * len(devices)), squeeze=False,
        sharey=True,
    )  # fmt: skip
    single_length = len(lengths(report.results)) == 1
    for (device, thread_count), lines in grid.items():
        ax = axes[devices.index(device)][threads.index(thread_count)]
        where = f"{device}, " if len(devices) > 1 or device != "local" else ""
        ax.set_title(f"{where}{thread_count} thread{'s' * (thread_count != 1)}")
        if single_length:
            _percentile_bars(ax, [rows[0] for rows in lines.values()], len({b for _, b in lines}) > 1)
        else:
            _length_lines(ax, lines, lengths(report.results))
    values = [r[key] for r in report.results for key in ("p50_ms", "p95_ms")]
    if log_scale(values):
        for ax in axes.flat:
            _log_axis(ax.yaxis, ax.set_yscale)
    for row in axes:
        row[0].set_ylabel("latency (ms)" + (", log scale" if log_scale(values) else ""))
    for ax in axes.flat:
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8)
    what = "p50 (line) and p50-p95 (band)" if not single_length else "latency percentiles"
    fig.suptitle(f"{what} at every measured configuration")
    fig.set_layout_engine("constrained")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_axis(axis, set_scale) -> None:
    """A log scale labelled 0.5, 1, 2, 5, 10 rather than 5x10^-1, 10^0, 2x10^0 (minor ticks other
    than 2 and 5 stay unlabelled, so labels never crowd)."""
    import math

    from matplotlib.ticker import FuncFormatter

    def minor(value: float, _) -> str:
        return f"{value:g}" if value > 0 and round(value / 10 ** math.floor(math.log10(value))) in (2, 5) else ""

    set_scale("log")
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _length_lines(ax, lines: dict[tuple[str, int], list[dict]], axis: list) -> None:
    styles = ["-", "--", ":", "-."]
    batches = sorted({b for _, b in lines})
    colors = {}
    for (target, batch), rows in lines.items():
        x = [axis.index(r["seq_len"]) for r in rows]
        label = target if len(batches) == 1 else f"{target}, batch {batch}"
        (drawn,) = ax.plot(x, [r["p50_ms"] for r in rows], marker="o", label=label,
                           linestyle=styles[batches.index(batch) % len(styles)], color=colors.get(target))  # fmt: skip
        colors[target] = drawn.get_color()
        ax.fill_between(x, [r["p50_ms"] for r in rows], [r["p95_ms"] for r in rows], alpha=0.15, color=colors[target])
    ax.set_xticks(range(len(axis)), [str(s) for s in axis])
    ax.set_xlabel("sequence length (tokens; real: dev sentences)")


def _percentile_bars(ax, rows: list[dict], by_batch: bool) -> None:
    import numpy as np

    width = 0.8 / len(PERCENTILE_KEYS)
    x = np.arange(len(rows))
    for i, key in enumerate(PERCENTILE_KEYS):
        ax.bar(x + i * width, [r[key] for r in rows], width, label=key.replace("_ms", ""))
    names = [f"{r['target']} b{r['batch_size']}" if by_batch else r["target"] for r in rows]
    ax.set_xticks(x + width * (len(PERCENTILE_KEYS) - 1) / 2, names, rotation=20, ha="right")
    length = rows[0]["seq_len"]
    ax.set_xlabel("real dev sentences" if length == REAL else f"sequence length {length}")


def _reference(results: list[dict]) -> tuple[list[dict], str]:
    """The rows accuracy is set against: real sentences at batch 1 and the fewest threads when
    measured, else the first configuration; the same for every target."""
    real = [r for r in results if r["seq_len"] == REAL]
    pool = real or results
    key = min(pool, key=lambda r: (r["batch_size"], r["threads"]))
    config = (key["threads"], key["batch_size"], key["seq_len"])
    rows = [r for r in results if (r["threads"], r["batch_size"], r["seq_len"]) == config]
    length = "real dev sentences" if config[2] == REAL else f"length {config[2]}"
    return rows, f"{config[0]} thread{'s' * (config[0] != 1)}, batch {config[1]}, {length}"


def _accuracy_figure(report: ProfileReport, path: Path) -> None:
    import matplotlib.pyplot as plt

    rows, config = _reference(report.results)
    rows = [r for r in rows if report.accuracy.get(r["target"])]
    metric = next(iter(report.accuracy[rows[0]["target"]]))
    devices = list(dict.fromkeys(r["device"] for r in rows))
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    points = [(r["p95_ms"], report.accuracy[r["target"]][metric]) for r in rows]
    for device in devices:
        mine = [i for i, r in enumerate(rows) if r["device"] == device]
        ax.scatter([points[i][0] for i in mine], [points[i][1] for i in mine], zorder=3,
                   label=device if len(devices) > 1 else "targets")  # fmt: skip
        front = [mine[i] for i in pareto_front([points[i] for i in mine])]
        (line,) = ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post", alpha=0.6,
                          label="Pareto front" + (f" ({device})" if len(devices) > 1 else ""))  # fmt: skip
        ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=160, facecolors="none",
                   edgecolors=line.get_color(), zorder=2)  # a front of one point still shows  # fmt: skip
    low, high = accuracy_limits([y for _, y in points])
    ax.set_ylim(low, high)
    if log_scale([x for x, _ in points]):
        _log_axis(ax.xaxis, ax.set_xscale)
    _labels(ax, rows, points, low, high, len(devices) > 1)
    ax.set_xlabel(f"p95 latency (ms), {config}")
    ax.set_ylabel(f"{metric}: axis {low:.3f} to {high:.3f}, a {100 * (high - low):.1f}-point span")
    ax.set_title(f"{metric} against p95 latency (up and to the left is better)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8)
    fig.set_layout_engine("constrained")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _labels(ax, rows: list[dict], points: list[tuple[float, float]], low: float, high: float, with_device: bool):
    """Each point's name in a column right of the plot, at its own height where there is room and
    spread apart where there is not, with a leader line to its point: labels never cover a point,
    a line or each other."""
    heights = spread_labels([(y - low) / (high - low) for _, y in points], gap=0.07)
    for row, (x, y), height in zip(rows, points, heights, strict=True):
        name = f"{row['target']} @ {row['device']}" if with_device else row["target"]
        ax.annotate(name, (x, y), xytext=(1.03, 0.03 + 0.94 * height), textcoords="axes fraction", fontsize=8,
                    va="center", ha="left", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "linestyle": ":", "alpha": 0.5, "shrinkB": 4})  # fmt: skip
