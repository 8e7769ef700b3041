"""Render a :class:`ProfileReport`: terminal table, JSON, JUnit XML, Markdown. Plotting is in ``plot``."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from rich.console import Console
from rich.table import Table

from codir_edge.profile.run import ProfileReport

COLUMNS = (
    ("cold ms", "cold_start_ms", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p95 ms", "p95_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("seq/s", "throughput_seq_per_s", "{:.0f}"),
    ("RSS MB", "peak_rss_mb", "{:.0f}"),
    ("size MB", "size_mb", "{:.1f}"),
    ("p50 ×first", "p50_ratio", "{:.2f}"),
)


def _fmt(row: dict, key: str, pattern: str) -> str:
    value = row.get(key)
    return pattern.format(value) if isinstance(value, (int, float)) else "-"


def _row_cells(row: dict) -> list[str]:
    """A result row as the cells of both the terminal table and the Markdown table."""
    return [
        row["target"],
        row["provider"].replace("ExecutionProvider", ""),
        str(row["threads"]),
        str(row["batch_size"]),
        str(row["seq_len"]),
    ] + [_fmt(row, key, pattern) for _, key, pattern in COLUMNS]


def budget_rows(report: ProfileReport) -> list[tuple[str, bool, list[str]]]:
    """(budget name, passed, failure messages) in file order."""
    rows = []
    for budget in report.budgets:
        checks = [c for c in report.checks if c.budget == budget.name]
        rows.append((budget.name, all(c.passed for c in checks), [c.message() for c in checks if not c.passed]))
    return rows


def print_table(report: ProfileReport, console: Console) -> None:
    table = Table(title=f"{report.machine['cpu']} · onnxruntime {report.machine['onnxruntime']}")
    for header in ("target", "provider", "thr", "batch", "seq"):
        table.add_column(header)
    for header, _, _ in COLUMNS:
        table.add_column(header, justify="right")
    for row in report.results:
        table.add_row(*_row_cells(row))
    console.print(table)
    for name, scores in report.accuracy.items():
        console.print(f"accuracy {name}: " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    for name, passed, failures in budget_rows(report):
        status = "[green]PASS[/green]" if passed else "[red]FAIL[/red]"
        console.print(f"budget {status} {name}" + (": " + "; ".join(failures) if failures else ""))


def to_json(report: ProfileReport, config: dict) -> dict:
    return {
        "machine": report.machine,
        "config": config,
        "targets": report.targets,
        "results": report.results,
        "accuracy": report.accuracy,
        "budgets": [
            {
                "name": name,
                "passed": passed,
                "failures": failures,
                "checks": [c.__dict__ for c in report.checks if c.budget == name],
            }
            for name, passed, failures in budget_rows(report)
        ],
        "passed": report.passed,
    }


def to_junit(report: ProfileReport) -> str:
    """One test case per budget; the failure message gives measured against limit."""
    rows = budget_rows(report)
    failures = sum(1 for _, passed, _ in rows if not passed)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="codir-edge profile" tests="{len(rows)}" failures="{failures}">',
        f'  <testsuite name="budgets" tests="{len(rows)}" failures="{failures}" errors="0">',
    ]
    for budget, (name, passed, messages) in zip(report.budgets, rows, strict=True):
        case = f"    <testcase classname={quoteattr('budgets.' + budget.target)} name={quoteattr(name)}"
        if passed:
            lines.append(case + " />")
        else:
            text = "; ".join(messages)
            lines += [
                case + ">",
                f'      <failure message={quoteattr(text)} type="BudgetExceeded" />',
                "    </testcase>",
            ]
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def to_markdown(report: ProfileReport) -> str:
    machine = report.machine
    out = [
        f"## codir-edge profile: {'all budgets pass' if report.passed else 'budgets FAILED'}",
        "",
        f"{machine['cpu']} ({', '.join(machine['cpu_flags'])}), {machine['logical_cores']} cores, "
        f"{machine['os']}, onnxruntime {machine['onnxruntime']}",
        "",
    ]
    headers = ["target", "provider", "threads", "batch", "seq"] + [h for h, _, _ in COLUMNS]
    out += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in report.results:
        out.append("| " + " | ".join(_row_cells(row)) + " |")
    if report.accuracy:
        out += [
            "",
            "| target | " + " | ".join(next(iter(report.accuracy.values()))) + " |",
            "|---|" + "---|" * len(next(iter(report.accuracy.values()))),
        ]
        for name, scores in report.accuracy.items():
            out.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in scores.values()) + " |")
    if report.budgets:
        out += ["", "| budget | result | details |", "|---|---|---|"]
        for name, passed, failures in budget_rows(report):
            out.append(f"| {name} | {'✅ pass' if passed else '❌ FAIL'} | {'; '.join(failures) or '-'} |")
    return "\n".join(out) + "\n"
