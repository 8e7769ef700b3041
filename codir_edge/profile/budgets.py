"""Latency, size, memory and accuracy budgets from TOML, judged against measurements.

    [[budget]]
    name = "int8 student, 1 thread"
    target = "int8"          # a file name or a bundle variant; "student-a/int8" when two targets share it
    threads = 1
    batch_size = 1
    seq_len = 128            # or "real" for real sentences from --data
    p95_ms = 8.0
    max_size_mb = 25
    min_accuracy = 0.89      # a fraction of the task's primary metric, measured on --data
    min_spearman = 0.80      # or a floor on one named metric (min_<metric>: spearman, f1, logistic_accuracy, ...)
    tolerance = 0.05         # relative slack on every limit
    device = "pi5"           # optional: judge on this device only (default: every device measured)

Unknown keys and malformed values are errors that name the line. A budget passes when every limit
it sets holds: latency/size/memory <= limit * (1 + tolerance), accuracy >= limit * (1 - tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.toml_tables import Where, check_unique, read_tables, read_text

UPPER_LIMITS = {  # budget key -> measured figure, both "at most"
    "p50_ms": "p50_ms",
    "p90_ms": "p90_ms",
    "p95_ms": "p95_ms",
    "p99_ms": "p99_ms",
    "max_cold_start_ms": "cold_start_ms",
    "max_size_mb": "size_mb",
    "max_peak_rss_mb": "peak_rss_mb",
}
# budget key -> measured metric, both "at least": a named metric of --task's (embedding: the STS or probe scores)
METRIC_FLOORS = {f"min_{name}": name for name in ("spearman", "pearson", "f1", "macro_f1", "matthews_correlation",
                                                   "logistic_accuracy", "knn1_accuracy")}  # fmt: skip
KEYS = {"name", "target", "device", "threads", "batch_size", "seq_len", "tolerance", "min_accuracy", *UPPER_LIMITS,
        *METRIC_FLOORS}  # fmt: skip


@dataclass(frozen=True)
class Budget:
    name: str
    target: str
    threads: int
    batch_size: int
    seq_len: int | str
    limits: dict[str, float] = field(default_factory=dict)  # UPPER_LIMITS keys
    min_accuracy: float | None = None
    floors: dict[str, float] = field(default_factory=dict)  # METRIC_FLOORS keys
    tolerance: float = 0.0
    device: str | None = None  # None: every device measured
    line: int = 0

    @property
    def gates_on_scores(self) -> bool:
        """Whether a limit reads the task metric, which profile checks only on what it measures (--data)."""
        return self.min_accuracy is not None or bool(self.floors)

    @property
    def config(self) -> tuple[int, int, int | str]:
        return (self.threads, self.batch_size, self.seq_len)


@dataclass(frozen=True)
class Check:
    """One limit of one budget: what was allowed and what was measured (median over repeats)."""

    budget: str
    key: str
    limit: float
    measured: float | None
    passed: bool
    device: str = "local"

    def message(self) -> str:
        if self.measured is None:
            return f"{self.key}: not measured (limit {self.limit:g})"
        relation = ">=" if self.key.startswith("min_") else "<="
        return f"{self.key}: measured {self.measured:.4g}, limit {relation} {self.limit:g}"


def _number(value: object, key: str, where: str, minimum: float = 0.0, inclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: {key} must be a number, found {value!r}: fix the budgets file")
    if value < minimum or (value == minimum and not inclusive):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise InputError(f"{where}: {key} must be {bound}, found {value!r}: fix the budgets file")
    return float(value)


CORRELATIONS = ("min_spearman", "min_pearson", "min_matthews_correlation")  # floors that may be below 0


def _fraction(value: object, key: str, where: str) -> float:
    """A metric floor: a number up to 1 (correlations and accuracies are fractions here, 0.9 for 90%), at
    least 0, or at least -1 for a correlation."""
    number = _number(value, key, where, minimum=-1.0 if key in CORRELATIONS else 0.0, inclusive=True)
    if number > 1:
        raise InputError(f"{where}: {key} is a fraction (0.9 for 90%), found {number:g}: fix the budgets file")
    return number


def _positive_int(value: object, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: {key} must be a positive integer, found {value!r}: fix the budgets file")
    return value


def _device(table: dict, at: Where) -> str | None:
    device = table.get("device")
    if device is not None and (not isinstance(device, str) or not device.strip()):
        raise InputError(f"{at('device')}: device must be a device's name, found {device!r}: fix the budgets file")
    return device


def parse_budgets(text: str, source: str = "budgets") -> list[Budget]:
    budgets: list[Budget] = []
    for table, at, line in read_tables(text, "budget", source, "the budgets file"):
        for key in table:
            if key not in KEYS:
                raise InputError(f"{at(key)}: unknown key '{key}' (allowed: {', '.join(sorted(KEYS))})")
        for key in ("name", "target"):
            if not isinstance(table.get(key), str) or not table[key].strip():
                raise InputError(f"{at(key)}: every budget needs a non-empty string '{key}'")
        seq_len = table.get("seq_len", 128)
        if seq_len != "real":
            seq_len = _positive_int(seq_len, "seq_len", at("seq_len"))
        limits = {key: _number(table[key], key, at(key)) for key in UPPER_LIMITS if key in table}
        floors = {key: _fraction(table[key], key, at(key)) for key in ("min_accuracy", *METRIC_FLOORS) if key in table}
        min_accuracy = floors.pop("min_accuracy", None)
        if not limits and min_accuracy is None and not floors:
            raise InputError(
                f"{at('[[budget]]')}: budget '{table['name']}' sets no limit: add p95_ms, "
                "max_size_mb, min_accuracy or another"
            )
        tolerance = _number(table.get("tolerance", 0.0), "tolerance", at("tolerance"), inclusive=True)
        budgets.append(
            Budget(
                name=table["name"],
                target=table["target"],
                threads=_positive_int(table.get("threads", 1), "threads", at("threads")),
                batch_size=_positive_int(table.get("batch_size", 1), "batch_size", at("batch_size")),
                seq_len=seq_len,
                limits=limits,
                min_accuracy=min_accuracy,
                floors=floors,
                tolerance=tolerance,
                device=_device(table, at),
                line=line,
            )
        )
    check_unique([b.name for b in budgets], source, "budgets")
    return budgets


def read_budgets(path: Path) -> list[Budget]:
    return parse_budgets(read_text(path, "--budgets"), str(path))


def judge(
    budget: Budget,
    figures: dict[str, float | None],
    accuracy: float | None,
    device: str = "local",
    scores: dict[str, float] | None = None,
) -> list[Check]:
    """Each limit of ``budget`` against ``figures`` (already the median of repeats) on ``device``;
    empty ``figures`` (the device could not be measured) fail every latency, size and memory limit.
    ``accuracy`` is the task's primary metric, ``scores`` every metric measured (None: not measured)."""
    checks = []
    for key, figure in UPPER_LIMITS.items():
        if key in budget.limits:
            limit = budget.limits[key]
            measured = figures.get(figure)
            passed = measured is not None and measured <= limit * (1 + budget.tolerance)
            checks.append(Check(budget.name, key, limit, measured, passed, device))
    if budget.min_accuracy is not None:
        passed = accuracy is not None and accuracy >= budget.min_accuracy * (1 - budget.tolerance)
        checks.append(Check(budget.name, "min_accuracy", budget.min_accuracy, accuracy, passed, device))
    for key, floor in budget.floors.items():
        measured = (scores or {}).get(METRIC_FLOORS[key])
        passed = measured is not None and measured >= floor - abs(floor) * budget.tolerance
        checks.append(Check(budget.name, key, floor, measured, passed, device))
    return checks
