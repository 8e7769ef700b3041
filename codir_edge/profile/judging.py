"""What a profile run found and what it concludes: the report, the budgets judged on it, and each
target's latency against the first target's."""

from __future__ import annotations

from dataclasses import dataclass, field

from codir_edge.profile.budgets import Budget, Check, judge
from codir_edge.profile.config import ProfileConfig


@dataclass
class ProfileReport:
    """``machine`` is the first device measured (what reports before devices called it); every
    result row names its ``device``, described in ``devices``."""

    machine: dict
    targets: list[dict]
    results: list[dict]
    accuracy: dict[str, dict[str, float]]
    accuracy_basis: dict[str, str] = field(default_factory=dict)  # target -> what its accuracy was measured on
    checks: list[Check] = field(default_factory=list)
    budgets: list[Budget] = field(default_factory=list)
    devices: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # device -> one line
    uploaded_bytes: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures and all(check.passed for check in self.checks)


def judge_budgets(report: ProfileReport, config: ProfileConfig) -> None:
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
            report.checks += judge(budget, row, value if row else None, device.name, scores if row else None)


def _primary_metric(config: ProfileConfig) -> str | None:
    if config.task is None:
        return None
    from codir_edge.data.embedding import is_embedding

    if is_embedding(config.task):  # its first score: spearman (STS) or logistic_accuracy
        return None
    from codir_edge.data.ner import is_ner

    if is_ner(config.task):
        return "f1"
    from codir_edge.data import get_task

    return get_task(config.task).primary_metric


def add_ratios(results: list[dict], first: str) -> None:
    """p50 and p95 of each target over the first target's, in the same configuration."""
    base = {(r["threads"], r["batch_size"], r["seq_len"]): r for r in results if r["target"] == first}
    for row in results:
        ref = base.get((row["threads"], row["batch_size"], row["seq_len"]))
        if ref is not None:
            row["p50_ratio"] = row["p50_ms"] / ref["p50_ms"] if ref["p50_ms"] else None
            row["p95_ratio"] = row["p95_ms"] / ref["p95_ms"] if ref["p95_ms"] else None
