"""Render a :class:`ProfileReport`: terminal table, JSON, JUnit XML, Markdown. Plotting is in ``plot``."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from rich.console import Console
from rich.table import Table

from codir_edge.data.ner_metrics import headline
from codir_edge.profile.budgets import Budget
from codir_edge.profile.judging import ProfileReport

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


def several_devices(report: ProfileReport) -> bool:
    """Whether figures need their device beside them (more than one, or one that is not here)."""
    names = {r["device"] for r in report.results} | set(report.failures)
    return len(names) > 1 or names - {"local"} != set()


def describe_device(description: dict) -> str:
    """One line: what a latency figure from this device means."""
    flags = ", ".join(description.get("cpu_flags") or []) or "no listed SIMD flags"
    memory = description.get("memory_mb")
    parts = [
        f"{description.get('cpu', '?')} ({flags})",
        f"{description.get('logical_cores', '?')} cores",
        f"{memory / 1024:.1f} GB" if memory else None,
        description.get("os"),
        f"Python {description.get('python', '?')}",
        f"onnxruntime {description.get('onnxruntime', '?')}",
    ]
    return ", ".join(p for p in parts if p)


def columns(report: ProfileReport) -> tuple:
    """The figure columns; the ratio to the first target only when there is a second to compare."""
    return COLUMNS if len(report.targets) > 1 else tuple(c for c in COLUMNS if c[1] != "p50_ratio")


def _row_cells(row: dict, shown: tuple, with_device: bool = False) -> list[str]:
    """A result row as the cells of both the terminal table and the Markdown table."""
    return (
        ([row["device"]] if with_device else [])
        + [
            row["target"],
            row["provider"].replace("ExecutionProvider", ""),
            str(row["threads"]),
            str(row["batch_size"]),
            str(row["seq_len"]),
        ]
        + [_fmt(row, key, pattern) for _, key, pattern in shown]
    )


@dataclass(frozen=True)
class BudgetRow:
    """One budget judged on one device; ``label`` names the device when several were judged."""

    budget: Budget
    device: str
    label: str
    passed: bool
    failures: list[str]


def budget_rows(report: ProfileReport) -> list[BudgetRow]:
    """Budgets in file order, each on every device it was judged on."""
    rows = []
    devices = {c.device for c in report.checks}
    for budget in report.budgets:
        for device in dict.fromkeys(c.device for c in report.checks if c.budget == budget.name):
            checks = [c for c in report.checks if c.budget == budget.name and c.device == device]
            failures = [c.message() for c in checks if not c.passed]
            if device in report.failures:
                failures = [f"not measured: {device} failed"]
            label = f"{budget.name} @ {device}" if len(devices) > 1 else budget.name
            rows.append(BudgetRow(budget, device, label, not failures, failures))
    return rows


def print_table(report: ProfileReport, console: Console) -> None:
    with_device = several_devices(report)
    if with_device:
        for name, description in report.devices.items():
            console.print(f"device {name} ({description['address']}): {describe_device(description)}")
        table = Table()
    else:
        machine = report.machine
        table = Table(title=f"{machine.get('cpu', '?')} · onnxruntime {machine.get('onnxruntime', '?')}")
    for header in (["device"] if with_device else []) + ["target", "provider", "thr", "batch", "seq"]:
        table.add_column(header)
    shown = columns(report)
    for header, _, _ in shown:
        table.add_column(header, justify="right")
    for row in report.results:
        table.add_row(*_row_cells(row, shown, with_device))
    if report.results:
        console.print(table)
    where = " (scored on this machine)" if with_device else ""
    for name, scores in report.accuracy.items():
        basis = f" ({report.accuracy_basis[name]})" if name in report.accuracy_basis else ""
        shown = headline(scores)  # --task ner: per-type F1 only
        console.print(f"accuracy {name}{where}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items()) + basis)
    for row in budget_rows(report):
        status = "[green]PASS[/green]" if row.passed else "[red]FAIL[/red]"
        console.print(f"budget {status} {row.label}" + (": " + "; ".join(row.failures) if row.failures else ""))


def to_json(report: ProfileReport, config: dict) -> dict:
    return {
        "machine": report.machine,
        "config": config,
        "targets": report.targets,
        "results": report.results,
        "accuracy": report.accuracy,
        "accuracy_basis": report.accuracy_basis,
        "devices": report.devices,
        "device_failures": report.failures,
        "uploaded_bytes": report.uploaded_bytes,
        "interrupted": report.interrupted,
        "budgets": [
            {
                "name": row.budget.name,
                "device": row.device,
                "passed": row.passed,
                "failures": row.failures,
                "checks": [c.__dict__ for c in report.checks if c.budget == row.budget.name and c.device == row.device],
            }
            for row in budget_rows(report)
        ],
        "passed": report.passed,
    }


def to_junit(report: ProfileReport) -> str:
    """One test case per budget; the failure message gives measured against limit."""
    rows = budget_rows(report)
    failures = sum(1 for row in rows if not row.passed)
    with_device = several_devices(report)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="codir-edge profile" tests="{len(rows)}" failures="{failures}">',
        f'  <testsuite name="budgets" tests="{len(rows)}" failures="{failures}" errors="0">',
    ]
    for row in rows:
        where = f"budgets.{row.device}.{row.budget.target}" if with_device else f"budgets.{row.budget.target}"
        case = f"    <testcase classname={quoteattr(where)} name={quoteattr(row.label)}"
        if row.passed:
            lines.append(case + " />")
        else:
            text = "; ".join(row.failures)
            lines += [
                case + ">",
                f'      <failure message={quoteattr(text)} type="BudgetExceeded" />',
                "    </testcase>",
            ]
    lines += ["  </testsuite>", "</testsuites>", ""]
    return "\n".join(lines)


def _headline(report: ProfileReport) -> str:
    if report.failures:
        return f"{len(report.failures)} device(s) not measured"
    return "all budgets pass" if report.passed else "budgets FAILED"


def to_markdown(report: ProfileReport) -> str:
    with_device = several_devices(report)
    out = [f"## codir-edge profile: {_headline(report)}", ""]
    for name, description in report.devices.items():
        where = f"**{name}** ({description['address']}): " if with_device else ""
        out += [f"- {where}{describe_device(description)}"]
    for name, message in report.failures.items():
        out += [f"- **{name}**: not measured ({message})"]
    out += [""]
    headers = (["device"] if with_device else []) + ["target", "provider", "threads", "batch", "seq"]
    shown = columns(report)
    headers += [h for h, _, _ in shown]
    out += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in report.results:
        out.append("| " + " | ".join(_row_cells(row, shown, with_device)) + " |")
    if report.accuracy:
        out += [
            "",
            "| target | " + " | ".join(next(iter(report.accuracy.values()))) + " | measured on |",
            "|---|" + "---|" * (len(next(iter(report.accuracy.values()))) + 1),
        ]
        for name, scores in report.accuracy.items():
            basis = report.accuracy_basis.get(name, "")
            out.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in scores.values()) + f" | {basis} |")
    if report.budgets:
        out += ["", "| budget | result | details |", "|---|---|---|"]
        for row in budget_rows(report):
            result = "✅ pass" if row.passed else "❌ FAIL"
            out.append(f"| {row.label} | {result} | {'; '.join(row.failures) or '-'} |")
    return "\n".join(out) + "\n"
