"""The plots' layout decisions, tested without drawing, and every kind of figure drawn once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codir_edge.profile.judging import ProfileReport
from codir_edge.profile.plot import (
    accuracy_limits,
    accuracy_path,
    lengths,
    log_scale,
    panels,
    pareto_front,
    spread_labels,
    write_plot,
)


def row(device="local", target="int8", threads=1, batch=1, seq=16, p50=1.0) -> dict:
    return {"device": device, "target": target, "threads": threads, "batch_size": batch, "seq_len": seq,
            "p50_ms": p50, "p90_ms": p50 * 1.1, "p95_ms": p50 * 1.2, "p99_ms": p50 * 1.5}  # fmt: skip


def sweep() -> list[dict]:
    return [
        row(
            device, target, threads, batch, seq, p50=(1 + seq if seq != "real" else 20) * (3 if target == "fp32" else 1)
        )
        for device in ("local", "pi")
        for threads in (1, 2)
        for batch in (1, 8)
        for seq in (128, 16, "real", 64)
        for target in ("fp32", "int8")
    ]


def test_every_configuration_has_a_place_in_a_panel() -> None:
    results = sweep()
    grid = panels(results)
    assert set(grid) == {("local", 1), ("local", 2), ("pi", 1), ("pi", 2)}  # small multiples: device x threads
    for lines in grid.values():
        assert set(lines) == {("fp32", 1), ("fp32", 8), ("int8", 1), ("int8", 8)}  # a line per target and batch
        for rows in lines.values():
            assert [r["seq_len"] for r in rows] == [16, 64, 128, "real"]
    assert sum(len(rows) for lines in grid.values() for rows in lines.values()) == len(results)
    assert lengths(results) == [16, 64, 128, "real"]


def test_log_scale_only_when_latencies_span_a_decade() -> None:
    assert not log_scale([1.0, 9.9]) and log_scale([1.0, 10.0]) and not log_scale([])


@given(st.lists(st.tuples(st.floats(0.01, 100), st.floats(0, 1)), min_size=1, max_size=12))
def test_pareto_front_is_exactly_the_undominated_points(points) -> None:
    front = set(pareto_front(points))

    def beats(a, b) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    for i, point in enumerate(points):
        assert (i in front) == (not any(beats(other, point) for other in points))
    xs = [points[i][0] for i in pareto_front(points)]
    assert xs == sorted(xs)


@given(st.lists(st.floats(-0.5, 1.5), min_size=1, max_size=30), st.floats(0.02, 0.2))
def test_labels_never_overlap_and_stay_on_the_axis(positions, gap) -> None:
    placed = spread_labels(positions, gap)
    usable = min(gap, 1 / max(len(positions) - 1, 1))
    ordered = sorted(placed)
    assert all(0.0 <= p <= 1.0 + 1e-9 for p in placed)
    assert all(b - a >= usable - 1e-9 for a, b in zip(ordered, ordered[1:], strict=False))
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    assert [placed[i] for i in order] == sorted(placed)  # a higher score keeps a higher label


def test_label_left_alone_where_there_is_room() -> None:
    assert spread_labels([0.1, 0.5, 0.9], 0.07) == [0.1, 0.5, 0.9]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=10))
def test_accuracy_axis_spans_at_least_a_point_and_holds_every_value(values) -> None:
    low, high = accuracy_limits(values)
    assert high - low >= 0.01 - 1e-12 and low <= min(values) and high >= max(values)


@pytest.mark.parametrize("kind", ["sweep", "one configuration"])
def test_figures_are_written_for_each_kind_of_run(tmp_path, kind) -> None:
    results = sweep() if kind == "sweep" else [row(target=t, seq="real", p50=p) for t, p in (("fp32", 3), ("int8", 1))]
    accuracy = {"fp32": {"accuracy": 0.876}, "int8": {"accuracy": 0.875}}
    path = tmp_path / "plots" / "r.png"
    written = write_plot(ProfileReport({}, [], results, accuracy), path)
    assert written == [path, accuracy_path(path)] and accuracy_path(path).name == "r-accuracy.png"
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)
    assert write_plot(ProfileReport({}, [], results, {}), tmp_path / "bare.png") == [tmp_path / "bare.png"]
