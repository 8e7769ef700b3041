"""Run a :class:`Pipeline`: each stage as its own ``codir-edge`` process, skipped when nothing it
depends on changed.

A stage's record is its command line plus the content digest of every file or folder it reads
(an upstream stage's output counts by the digest of what that stage wrote). It is written to
``<work>/.pipeline/<stage>.json`` together with the digest of the stage's output, and only after
the stage succeeded. A stage is skipped when its settings and inputs match the record and its
output is still byte for byte what it wrote. The stamps sit beside the outputs rather than inside them
because a bundle's manifest lists every file it holds and ``verify`` rejects strangers.

Stages run as child processes: each gets a fresh interpreter (a finished stage's model leaves
memory), the commands' own validation, errors and exit codes, and the same atomic outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codir_edge import __version__
from codir_edge.core.atomic import atomic_write_text, staged_output_dir
from codir_edge.core.errors import InputError
from codir_edge.models.hub_ids import cached_snapshot, looks_like_hub_id
from codir_edge.pipeline.digest import path_digest
from codir_edge.pipeline.options import INPUT_PATH_KEYS, render
from codir_edge.pipeline.spec import Pipeline, Stage

STATE = ".pipeline"
PROFILE_FILES = {"--json": "report.json", "--markdown": "report.md", "--junit": "junit.xml"}
INTERRUPT_GRACE_S = 60  # a stage's own clean-up (staging folders, checkpoint) after Ctrl-C


@dataclass
class StageResult:
    name: str
    status: str  # ran | skipped | failed | would run | would skip
    reason: str
    out: str
    seconds: float = 0.0
    exit_code: int = 0

    @property
    def budgets_failed(self) -> bool:
        """The profile measured and a budget failed: its report is written, unlike any other failure."""
        return self.name == "profile" and self.exit_code == 1


@dataclass
class PipelineReport:
    source: str
    work: str
    stages: list[StageResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return next((s.exit_code for s in self.stages if s.exit_code), 0)


def _stamp_path(pipeline: Pipeline, stage: Stage) -> Path:
    return pipeline.work / STATE / f"{stage.name}.json"


def _read_stamp(path: Path) -> dict | None:
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or damaged: the stage simply runs again
    return stamp if isinstance(stamp, dict) else None


def _budgets_toml(budgets: list[dict]) -> str:
    """Inline [[profile.budget]] tables as the budgets file ``profile --budgets`` reads."""
    lines = []
    for budget in budgets:
        lines.append("[[budget]]")
        for key, value in budget.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise InputError(f"[[profile.budget]] {key} = {value!r} must be a string or a number")
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def _resolved(value: object, pipeline: Pipeline) -> object:
    """``@stage`` references become that stage's output folder."""
    if isinstance(value, list):
        return [_resolved(item, pipeline) for item in value]
    if isinstance(value, str) and value.startswith("@"):
        return str(pipeline.stage(value[1:]).out)
    return value


def stage_settings(pipeline: Pipeline, stage: Stage) -> dict[str, list[str]]:
    """Every option as the words passed to the command; raises on a value of the wrong type."""
    values = {key: _resolved(value, pipeline) for key, value in stage.values.items()}
    if stage.name == "finetune" and "model" not in values:
        from codir_edge.models.checkpoint import default_backbone

        values["model"] = str(default_backbone())  # named, so that its contents are recorded
    if stage.budgets:
        budgets_file = pipeline.work / STATE / "profile-budgets.toml"
        values["budgets"] = str(budgets_file)
    return {key: render(stage.options[key], value, f"[{stage.name}] {key}") for key, value in sorted(values.items())}


def stage_inputs(stage: Stage, settings: dict[str, list[str]], out_digests: dict[str, str]) -> dict[str, str | None]:
    """The digest of every file or folder the stage reads; an upstream output (``out_digests``,
    keyed by its folder) counts by the digest recorded when its stage finished."""
    inputs: dict[str, str | None] = {}
    for key, words in settings.items():
        if key not in INPUT_PATH_KEYS:
            continue
        paths = [w for w in words if not w.startswith("--")]
        for index, path in enumerate(paths):
            name = key if len(paths) == 1 else f"{key}[{index}]"
            inputs[name] = out_digests.get(path) or (None if path.startswith("hf:") else _digest(path))
    return inputs


def _digest(path: str) -> str | None:
    """A folder's or file's digest; a hub id counts by its cached snapshot (None: not cached, so run)."""
    if looks_like_hub_id(path):
        snapshot = cached_snapshot(path)
        return path_digest(snapshot) if snapshot is not None else None
    return path_digest(Path(path))


def why_run(stamp: dict | None, stage: Stage, settings: dict, inputs: dict) -> str | None:
    """None when the stage can be skipped, else the reason it must run."""
    if stamp is None:
        return "no earlier run"
    if stamp.get("failed"):
        return f"its last run failed (exit {stamp.get('exit_code')})"
    if stamp.get("version") != __version__:
        return f"codir-edge {stamp.get('version')} wrote it, this is {__version__}"
    if stamp.get("out") != str(stage.out):
        return "its output folder changed"
    changed = sorted(
        k for k in settings.keys() | stamp.get("settings", {}).keys() if settings.get(k) != stamp["settings"].get(k)
    )
    if changed:
        return "settings changed: " + ", ".join(changed)
    moved = sorted(k for k in inputs.keys() | stamp.get("inputs", {}).keys() if inputs.get(k) != stamp["inputs"].get(k))
    if moved:
        return "input changed: " + ", ".join(moved)
    if path_digest(stage.out) != stamp.get("out_digest"):
        return "its output is missing or was modified"
    return None


def _check_out_is_ours(pipeline: Pipeline, stage: Stage) -> None:
    """Never replace a folder this pipeline did not write (a typo in `out` must not delete a model)."""
    out = stage.out
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    stamp = _read_stamp(_stamp_path(pipeline, stage))
    if stamp is None or stamp.get("out") != str(out):
        raise InputError(
            f"[{stage.name}] output {out} already exists and this pipeline did not write it: "
            f'delete it or set out = "..." in [{stage.name}] to another folder'
        )


def _child(words: list[str], debug: bool, renamed: tuple[Path, Path] | None = None) -> int:
    """Run ``codir-edge WORDS`` and return its exit code. The child has its own process group, so a
    Ctrl-C reaches it once, from here, and it gets time to clean up before we give up on it. It is
    told with SIGTERM, which every command handles like Ctrl-C, even when it was started with SIGINT
    ignored (a background job).

    ``renamed`` (staging, final): the child writes into a staging folder that becomes ``final`` once
    it succeeds, so its stdout is passed on with the one path rewritten (the user is told where the
    files will be, not where they are for a moment); its stderr, with the progress, stays live."""
    command = [sys.executable, "-m", "codir_edge", *(["--debug"] if debug else []), *words]
    piped = renamed is not None
    env = dict(os.environ)
    if piped and sys.stdout.isatty():  # tables are laid out for our terminal, not for a pipe
        env.setdefault("COLUMNS", str(os.get_terminal_size(sys.stdout.fileno()).columns))
    child = subprocess.Popen(command, start_new_session=True, env=env, text=True,
                             stdout=subprocess.PIPE if piped else None)  # fmt: skip
    try:
        if piped:
            staging, final = map(str, renamed)
            for line in child.stdout:
                sys.stdout.write(line.replace(staging, final))
                sys.stdout.flush()
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=INTERRUPT_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise


def _execute(pipeline: Pipeline, stage: Stage, settings: dict, debug: bool, quiet: bool) -> int:
    words = [stage.name]
    for rendered in settings.values():
        words += rendered
    if quiet and "quiet" in stage.options:
        words.append("--quiet")
    if stage.name != "profile":
        words += ["--out", str(stage.out)]
        if stage.out.exists():
            words.append("--overwrite")
        return _child(words, debug)
    # profile writes reports, not a folder: stage them so `out` holds one complete set
    with staged_output_dir(stage.out, overwrite=True, option=f"[{stage.name}] out") as staging:
        for flag, name in PROFILE_FILES.items():
            words += [flag, str(staging / name)]
        code = _child(words, debug, renamed=(staging, stage.out))
        if code not in (0, 1):  # 1: measured, a budget failed; the report is what the user needs
            raise _StageFailed(code)
    return code


class _StageFailed(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def run_pipeline(
    pipeline: Pipeline,
    from_stage: str | None = None,
    dry_run: bool = False,
    debug: bool = False,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
) -> PipelineReport:
    """Run (or, with ``dry_run``, plan) the stages in order; stop at the first one that fails."""
    if from_stage is not None and from_stage not in pipeline.names:
        raise InputError(f"--from {from_stage}: this pipeline has no such stage (it has {', '.join(pipeline.names)})")
    all_settings = {stage.name: stage_settings(pipeline, stage) for stage in pipeline.stages}  # type errors first
    for stage in pipeline.stages:
        _check_out_is_ours(pipeline, stage)
    forced = pipeline.names[pipeline.names.index(from_stage) :] if from_stage else []
    report = PipelineReport(str(pipeline.source), str(pipeline.work))
    out_digests: dict[str, str] = {}
    pending_upstream: str | None = None
    state = pipeline.work / STATE
    for number, stage in enumerate(pipeline.stages, 1):
        settings = all_settings[stage.name]
        header = f"[{number}/{len(pipeline.stages)}] {stage.name}"
        if stage.budgets and not dry_run:
            state.mkdir(parents=True, exist_ok=True)
            atomic_write_text(state / "profile-budgets.toml", _budgets_toml(stage.budgets))
        stamp_file = _stamp_path(pipeline, stage)
        if dry_run and pending_upstream:
            result = StageResult(stage.name, "would run", f"{pending_upstream} runs first", str(stage.out))
            report.stages.append(result)
            echo(f"{header}: would run ({result.reason})")
            continue
        inputs = stage_inputs(stage, settings, out_digests)
        stamp = _read_stamp(stamp_file)
        reason = f"forced by --from {from_stage}" if stage.name in forced else why_run(stamp, stage, settings, inputs)
        if reason is None:
            out_digests[str(stage.out)] = stamp["out_digest"]
            report.stages.append(
                StageResult(stage.name, "would skip" if dry_run else "skipped", "unchanged", str(stage.out))
            )
            echo(f"{header}: unchanged since {stamp.get('finished', '?')}, skipped ({stage.out})")
            continue
        if dry_run:
            report.stages.append(StageResult(stage.name, "would run", reason, str(stage.out)))
            echo(f"{header}: would run ({reason})")
            pending_upstream = stage.name
            continue
        result, out_digest = _run_stage(pipeline, stage, settings, inputs, reason, header, debug, quiet, echo)
        report.stages.append(result)
        if out_digest is None:
            break
        out_digests[str(stage.out)] = out_digest
    if not dry_run:
        state.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state / "last-run.json", json.dumps(asdict(report), indent=2) + "\n")
    return report


def _run_stage(pipeline: Pipeline, stage: Stage, settings: dict, inputs: dict, reason: str, header: str,
               debug: bool, quiet: bool, echo: Callable[[str], None]) -> tuple[StageResult, str | None]:  # fmt: skip
    """Run one stage; when it succeeds, stamp it (what the next run compares against) and give its
    output's digest, else None (a stage whose budgets failed is stamped as failed: never skipped)."""
    state, stamp_file = pipeline.work / STATE, _stamp_path(pipeline, stage)
    echo(f"{header}: running ({reason}) -> {stage.out}")
    started = time.perf_counter()
    try:
        code = _execute(pipeline, stage, settings, debug, quiet)
    except _StageFailed as failed:
        code = failed.code
    seconds = time.perf_counter() - started
    if code != 0:
        result = StageResult(stage.name, "failed", reason, str(stage.out), seconds, code)
        if result.budgets_failed:  # its report is in place: ours, but never skipped
            state.mkdir(parents=True, exist_ok=True)
            failed = {"stage": stage.name, "out": str(stage.out), "failed": True, "exit_code": code}
            atomic_write_text(stamp_file, json.dumps(failed, indent=2) + "\n")
        what = "budgets failed" if result.budgets_failed else "failed"
        echo(f"{header}: {what} (exit {code}) after {seconds:.0f} s")
        return result, None
    out_digest = path_digest(stage.out)
    state.mkdir(parents=True, exist_ok=True)
    stamp = {
        "stage": stage.name,
        "version": __version__,
        "settings": settings,
        "inputs": inputs,
        "out": str(stage.out),
        "out_digest": out_digest,
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "pid": os.getpid(),
    }
    atomic_write_text(stamp_file, json.dumps(stamp, indent=2) + "\n")
    echo(f"{header}: done in {seconds:.0f} s")
    return StageResult(stage.name, "ran", reason, str(stage.out), seconds), out_digest
