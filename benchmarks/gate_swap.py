"""The budget gate catches a model swap: a budget the int8 3-layer student meets must fail when the
fp32 6-layer teacher is put in the student's place, and pass again when the student is restored.

    python benchmarks/gate_swap.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import textwrap

from _models import WORK, export_onnx, layer_cut, quantize_int8, teacher_folder, write_result


def profile(model, budgets, out, runs) -> tuple[int, dict]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codir_edge.cli",
            "profile",
            str(model),
            "--budgets",
            str(budgets),
            "--runs",
            str(runs),
            "--json",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    report = json.loads(out.read_text()) if out.is_file() else {}
    return done.returncode, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    teacher = teacher_folder()
    teacher_onnx = export_onnx(teacher, "teacher")
    student_int8 = quantize_int8(export_onnx(layer_cut(teacher, 3), "cut-3l"))
    slot = WORK / "gate" / "student.onnx"  # the file the budget names, as a CI job would ship it
    slot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(student_int8, slot)

    # Calibrate the budget on the student itself: p95 with 50% headroom, size with 20%.
    _, first = profile(slot, _budgets(slot.parent, 1e9, 1e9), slot.parent / "calibrate.json", args.runs)
    row = first["results"][0]
    budgets = _budgets(slot.parent, row["p95_ms"] * 1.5, row["size_mb"] * 1.2)

    steps = []
    for label, source in (
        ("int8 student", student_int8),
        ("fp32 teacher swapped in", teacher_onnx),
        ("int8 student restored", student_int8),
    ):
        shutil.copy(source, slot)
        code, report = profile(slot, budgets, slot.parent / "report.json", args.runs)
        figures = report["results"][0]
        steps.append(
            {
                "step": label,
                "exit_code": code,
                "p95_ms": figures["p95_ms"],
                "size_mb": figures["size_mb"],
                "failures": report["budgets"][0]["failures"],
            }
        )
    print("| step | exit | p95 ms | size MB | failures |\n|---|---|---|---|---|")
    for s in steps:
        print(
            f"| {s['step']} | {s['exit_code']} | {s['p95_ms']:.2f} | {s['size_mb']:.1f} | "
            f"{'; '.join(s['failures']) or '-'} |"
        )
    met = [s["exit_code"] for s in steps] == [0, 1, 0]
    write_result(
        "gate_swap",
        {"budget_p95_ms": row["p95_ms"] * 1.5, "budget_size_mb": row["size_mb"] * 1.2, "steps": steps, "met": met},
    )
    print(f"gate behaves as required: {met}")


def _budgets(folder, p95_ms: float, size_mb: float):
    path = folder / "budgets.toml"
    path.write_text(
        textwrap.dedent(f"""
        [[budget]]
        name = "int8 student, 1 thread, batch 1, seq 128"
        target = "student.onnx"
        threads = 1
        batch_size = 1
        seq_len = 128
        p95_ms = {p95_ms:.4f}
        max_size_mb = {size_mb:.4f}
    """)
    )
    return path


if __name__ == "__main__":
    main()
