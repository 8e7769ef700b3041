"""``codir-edge pipeline`` and ``codir-edge demo`` through the CLI: real stages (each its own process),
real files, tiny random models; skipping is checked by what ran and by the outputs' inodes."""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, interrupt_when_started, invoke
from conftest import build_tiny_bert, cut_glue

FAST_EXPORT = {"tokenizer-in-graph": False, "ort": False, "max-length": 32}
FAST_PROFILE = {"threads": 1, "batch-sizes": 1, "seq-lens": "16", "runs": 5, "warmup": 1}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_pipeline(path: Path, tables: dict[str, dict], budgets: list[dict] = ()) -> Path:
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    for budget in budgets:
        lines.append("[[profile.budget]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in budget.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def statuses(output: str) -> dict[str, str]:
    """{stage: 'ran' | 'skipped' | ...} from the pipeline's progress lines."""
    found = {}
    for stage, what in re.findall(r"^\[\d/\d\] (\w+): (\w+)", output, flags=re.MULTILINE):
        found.setdefault(stage, {"running": "ran", "unchanged": "skipped"}.get(what, what))
    return found


def test_full_chain_runs_once_then_skips_and_from_forces(tmp_path, tiny_backbone, sst2_small):
    toml = write_pipeline(
        tmp_path / "chain.toml",
        {
            "pipeline": {"task": "sst2", "data": str(sst2_small), "max-length": 32},
            "finetune": {"model": str(tiny_backbone), "epochs": 1},
            "compress": {"student-layers": 1, "epochs": 1},
            "export": {"tokenizer-in-graph": False, "ort": False},
            "profile": {"targets": ["@finetune", "@export"], **FAST_PROFILE},
        },
    )
    first = invoke("pipeline", toml, "--quiet")
    assert first.exit_code == 0, first.output
    assert statuses(first.output) == dict.fromkeys(("finetune", "compress", "export", "profile"), "ran")
    work = tmp_path / "runs" / "chain"
    report = json.loads((work / "profile" / "report.json").read_text())
    assert {r["target"] for r in report["results"]} == {"finetune (pytorch)", "fp32", "int8"}
    assert (work / "profile" / "junit.xml").is_file() and (work / "profile" / "report.md").is_file()
    assert f"reports: {work / 'profile' / 'report.json'}," in first.output  # where they are, not where they were
    assert ".profile.tmp-" not in first.output
    # the compress stage really read the finetune output, and the export the compress output
    assert json.loads((work / "compress" / "metrics.json").read_text())["student_layers"] == 1
    assert (work / "export" / "manifest.json").is_file()
    assert invoke("verify", work / "export").exit_code == 0  # the pipeline's stamps stay outside the bundle

    inodes = {stage: (work / stage).stat().st_ino for stage in ("finetune", "compress", "export", "profile")}
    again = invoke("pipeline", toml, "--quiet")
    assert again.exit_code == 0, again.output
    assert set(statuses(again.output).values()) == {"skipped"}
    assert {stage: (work / stage).stat().st_ino for stage in inodes} == inodes

    forced = invoke("pipeline", toml, "--quiet", "--from", "export")
    assert forced.exit_code == 0, forced.output
    assert statuses(forced.output) == {"finetune": "skipped", "compress": "skipped", "export": "ran", "profile": "ran"}
    assert "forced by --from export" in forced.output


@pytest.fixture()
def export_pipeline(tmp_path, tiny_classifier, glue_dir):
    """export -> profile of a tiny classifier, on its own copy of a small SST-2 cut."""
    data = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 16, 24)
    tables = {
        "pipeline": {"task": "sst2", "data": str(data), "work": "work"},
        "export": {"model": str(tiny_classifier), **FAST_EXPORT},
        "profile": FAST_PROFILE,
    }
    return tmp_path, tables, data


def test_a_change_reruns_only_what_it_touches(export_pipeline):
    root, tables, data = export_pipeline
    toml = write_pipeline(root / "p.toml", tables)
    assert invoke("pipeline", toml, "--quiet").exit_code == 0

    tables["profile"] = {**FAST_PROFILE, "runs": 6}  # a profile setting: export is untouched
    write_pipeline(toml, tables)
    dry = invoke("pipeline", toml, "--dry-run")
    assert statuses(dry.output) == {"export": "skipped", "profile": "would"}
    assert "settings changed: runs" in dry.output
    result = invoke("pipeline", toml, "--quiet")
    assert statuses(result.output) == {"export": "skipped", "profile": "ran"}, result.output

    dev = data / "dev.tsv"  # one edited dev sentence: export scores on it, so both re-run
    dev.write_text(dev.read_text().replace("\n", " \n", 2), encoding="utf-8")
    result = invoke("pipeline", toml, "--quiet")
    assert statuses(result.output) == {"export": "ran", "profile": "ran"}, result.output
    assert "input changed: data" in result.output

    (root / "work" / "export" / "onnx/model_quantized.onnx").unlink()  # a damaged output is rebuilt, not trusted
    result = invoke("pipeline", toml, "--quiet")
    assert statuses(result.output)["export"] == "ran", result.output
    assert "missing or was modified" in result.output
    assert (root / "work" / "export" / "onnx/model_quantized.onnx").is_file()


def test_a_failed_budget_exits_1_keeps_the_report_and_profiles_again(export_pipeline):
    root, tables, _ = export_pipeline
    budget = {"name": "tiny size", "target": "int8", "threads": 1, "batch_size": 1, "seq_len": 16}
    toml = write_pipeline(root / "p.toml", tables, [{**budget, "max_size_mb": 0.001}])
    failed = invoke("pipeline", toml, "--quiet")
    assert failed.exit_code == 1, failed.output
    assert "stage profile budgets failed (exit 1)" in failed.output
    report = json.loads((root / "work" / "profile" / "report.json").read_text())
    assert report["budgets"][0]["passed"] is False

    write_pipeline(toml, tables, [{**budget, "max_size_mb": 100}])
    fixed = invoke("pipeline", toml, "--quiet")
    assert fixed.exit_code == 0, fixed.output
    assert statuses(fixed.output) == {"export": "skipped", "profile": "ran"}


def test_a_failing_stage_stops_the_chain_with_its_exit_code(export_pipeline):
    root, tables, _ = export_pipeline
    tables["export"] = {**tables["export"], "max-accuracy-drop": -1.0}  # every variant "drops" too much
    toml = write_pipeline(root / "p.toml", tables)
    result = invoke("pipeline", toml, "--quiet")
    assert result.exit_code in (1, 2), result.output
    assert "profile" not in statuses(result.output)
    assert not (root / "work" / "export").exists()


def test_an_output_folder_it_did_not_write_is_never_replaced(export_pipeline):
    root, tables, _ = export_pipeline
    precious = root / "work" / "export"
    precious.mkdir(parents=True)
    (precious / "keep.txt").write_text("mine")
    toml = write_pipeline(root / "p.toml", tables)
    assert_one_line_error(invoke("pipeline", toml), 2, "already exists", "did not write it", "out =")
    assert (precious / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[compres]\n", ("unknown table [compres]", "[compress]")),
        ("[pipeline]\ntask = 'sst2'\n", ("has no stage",)),
        ("[export]\nmodel = 'm'\nmax_lenght = 3\n", ("[export] has no option 'max_lenght'", "max-length")),
        ("[export]\nmodel = 'm'\noverwrite = true\n", ("set by the pipeline itself",)),
        ("[export]\nmodel = 'm'\nmax-length = 'long'\n", ("[export] max-length = 'long'", "whole number")),
        ("[export]\nmodel = 'm'\nquantize = 'int4'\n", ("not one of auto, dynamic, static, none",)),
        ("[export]\nmodel = 'm'\noptimize = 'yes'\n", ("true or false",)),
        ("[compress]\ntask = 'sst2'\ndata = 'd'\n", ("[compress] needs teacher",)),
        ("[export]\nmodel = '@compress'\n", ("names no earlier stage",)),
        ("[pipeline]\ncolour = 'red'\n[export]\nmodel = 'm'\n", ("[pipeline] colour is an option of none",)),
        ("[export\n", ("not valid TOML",)),
        ("export = 3\n", ("must be a table",)),
    ],
)
def test_a_bad_pipeline_file_is_one_line_before_anything_runs(tmp_path, text, fragments):
    toml = tmp_path / "bad.toml"
    toml.write_text(text, encoding="utf-8")
    assert_one_line_error(invoke("pipeline", toml), 2, *fragments)
    assert not (tmp_path / "runs").exists()


def test_missing_file_and_unknown_from_stage_are_usage_errors(tmp_path):
    assert_one_line_error(invoke("pipeline", tmp_path / "nope.toml"), 2, "does not exist")
    toml = write_pipeline(tmp_path / "p.toml", {"export": {"model": str(tmp_path)}})
    assert_one_line_error(invoke("pipeline", toml, "--from", "compress"), 2, "--from compress", "has no such stage")


def test_demo_without_data_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("demo", "--out", tmp_path / "demo"), 2, "no SST-2 data", "--data")
    assert_one_line_error(invoke("demo", "--data", tmp_path / "none"), 2, "does not exist")
    assert_one_line_error(invoke("demo", "--data", tmp_path, "--runs", "0"), 2, "--runs must be at least 1")


def test_demo_runs_the_chain_and_prints_teacher_and_both_students(tmp_path, glue_dir):
    """The real demo (bundled MiniLM, SST-2 rows from ../shared), scaled down by its own options."""
    data = cut_glue(glue_dir, "SST-2", tmp_path / "SST-2", 160, 24)
    out = tmp_path / "demo"
    samples = ("--teacher-samples", 160, "--student-samples", 160, "--runs", 3)
    args = ("demo", "--data", data, "--out", out, *samples, "-q")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    for row in ("teacher (6 layers)", "student fp32 (3 layers)", "student int8 (3 layers)"):
        line = next(line for line in result.output.splitlines() if row in line)
        assert re.search(r"\d+\.\d\d%", line), line  # a measured accuracy, p50, p95 and size
        assert len(re.findall(r"\b\d+\.\d+\b", line)) >= 4, line
    assert "PyTorch teacher" in result.output
    assert (out / "pipeline.toml").is_file() and (out / "bundle" / "manifest.json").is_file()
    again = invoke(*args)
    assert again.exit_code == 0 and set(statuses(again.output).values()) == {"skipped"}, again.output


def test_a_tiny_backbone_pipeline_reads_paths_relative_to_the_file(tmp_path, backbone_dir):
    model = build_tiny_bert(tmp_path / "models" / "m", backbone_dir)
    (tmp_path / "conf").mkdir()
    toml = write_pipeline(tmp_path / "conf" / "p.toml", {"export": {"model": "../models/m", **FAST_EXPORT}})
    result = invoke("pipeline", toml, "--quiet")
    assert result.exit_code == 0, result.output
    stamp = json.loads((tmp_path / "conf" / "runs" / "p" / ".pipeline" / "export.json").read_text())
    assert stamp["settings"]["model"] == [str(model.resolve())]


def test_the_readme_example_is_a_valid_pipeline(tmp_path):
    from codir_edge.pipeline.run import stage_settings
    from codir_edge.pipeline.spec import read_pipeline

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("### `codir-edge pipeline`", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    toml = tmp_path / "pipeline.toml"
    toml.write_text(example, encoding="utf-8")
    spec = read_pipeline(toml)
    assert spec.names == ["finetune", "compress", "export", "profile"]
    assert spec.work == (tmp_path / "runs" / "sst2").resolve()
    assert spec.stage("compress").values["teacher"] == "@finetune"
    assert spec.stage("profile").budgets[0]["target"] == "int8"
    settings = stage_settings(spec, spec.stage("compress"))
    assert settings["student-layers"] == ["--student-layers", "3"]
    assert settings["teacher"] == ["--teacher", str(spec.work / "finetune")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_pipeline_stops_the_stage_cleanly_and_records_nothing(tmp_path, backbone_dir, sig):
    """Ctrl-C (or SIGTERM) reaches the running stage once, through the pipeline: the stage removes its
    staging folder, the pipeline exits 130, and the next run starts that stage again."""
    model = build_tiny_bert(tmp_path / "m", backbone_dir, layers=4, hidden=128, id2label={0: "0", 1: "1"})
    toml = write_pipeline(tmp_path / "p.toml", {"pipeline": {"work": "w"}, "export": {"model": str(model)}})
    log = tmp_path / "log.txt"
    cmd = [sys.executable, "-m", "codir_edge", "pipeline", str(toml)]
    status = interrupt_when_started(cmd, log, ".export.tmp-*/.work/plain.onnx", tmp_path / "w", sig)
    assert status == 130, log.read_text()
    assert "error: interrupted" in log.read_text()
    work = tmp_path / "w"
    assert not (work / "export").exists() and not list(work.glob(".export.tmp-*"))
    assert not (work / ".pipeline" / "export.json").exists()


def test_profile_devices_in_a_pipeline(tmp_path):
    """[profile] devices is a file read relative to the TOML; [pipeline] device (the torch device of
    finetune and compress) does not become profile's --device."""
    from codir_edge.pipeline.run import stage_settings
    from codir_edge.pipeline.spec import read_pipeline

    (tmp_path / "devices.toml").write_text('[[device]]\nname = "pi5"\nhost = "pi5.lan"\n')
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[pipeline]\ndevice = "cpu"\n[profile]\ntargets = ["model.onnx"]\ndevices = "devices.toml"\n'
        'device = ["pi5", "local"]\n'
    )
    spec = read_pipeline(toml)
    settings = stage_settings(spec, spec.stage("profile"))
    assert settings["devices"] == ["--devices", str((tmp_path / "devices.toml").resolve())]
    assert settings["device"] == ["--device", "pi5", "--device", "local"]
    toml.write_text('[pipeline]\ndevice = "cpu"\n[profile]\ntargets = ["model.onnx"]\n')
    assert "device" not in stage_settings(read_pipeline(toml), read_pipeline(toml).stage("profile"))


def test_compress_unlabelled_text_in_a_pipeline_is_read_relative_to_the_file(tmp_path):
    from codir_edge.pipeline.run import stage_settings
    from codir_edge.pipeline.spec import read_pipeline

    (tmp_path / "conf" / "texts").mkdir(parents=True)
    toml = tmp_path / "conf" / "p.toml"
    toml.write_text(
        '[compress]\nteacher = "../teacher"\ntask = "sst2"\ndata = "../glue"\nunlabeled = "texts/reviews.txt"\n'
        "unlabeled-per-epoch = 5000\naugment = 2\n",
        encoding="utf-8",
    )
    settings = stage_settings(read_pipeline(toml), read_pipeline(toml).stage("compress"))
    assert settings["unlabeled"] == ["--unlabeled", str((tmp_path / "conf" / "texts" / "reviews.txt").resolve())]
    assert settings["unlabeled-per-epoch"] == ["--unlabeled-per-epoch", "5000"] and settings["augment"][1] == "2"
