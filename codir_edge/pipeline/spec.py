"""Read ``pipeline.toml`` into stages with checked options.

    [pipeline]
    work = "runs/sst2"              # stage outputs go to <work>/<stage> unless a stage sets `out`
    task = "sst2"                   # any other key here is a default for every stage that takes it
    data = "../shared/data/glue"

    [finetune]                      # optional: without it, [compress] needs `teacher`
    epochs = 1
    max-length = 64

    [compress]                      # teacher defaults to "@finetune"
    student-layers = 3

    [export]                        # model defaults to "@compress"

    [profile]                       # targets default to ["@export"]
    targets = ["@finetune", "@export"]
    threads = 1
    budgets = "budgets.toml"        # or inline [[profile.budget]] tables

``"@stage"`` stands for that stage's output folder. Relative paths are relative to the TOML file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.models.hub_ids import looks_like_hub_id
from codir_edge.pipeline.options import OWNED, PATH_KEYS, STAGES, OptionSpec, stage_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Where each stage reads its model from when the table does not say.
UPSTREAM_DEFAULTS = {
    "compress": ("teacher", ("finetune",)),
    "export": ("model", ("compress", "finetune")),
    "profile": ("targets", ("export",)),
}


@dataclass
class Stage:
    name: str
    out: Path
    values: dict[str, object]  # pipeline key -> value; paths resolved, "@stage" kept as references
    options: dict[str, OptionSpec] = field(repr=False, default_factory=dict)
    budgets: list[dict] = field(default_factory=list)  # inline [[profile.budget]] tables


@dataclass
class Pipeline:
    source: Path
    work: Path
    stages: list[Stage]

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)


def _canonical(key: str) -> str:
    return key.replace("_", "-")


# Options that name a model, which may be a hub id (org/name) rather than a folder.
MODEL_KEYS = {"model", "teacher", "student"}


def _resolve_path(value: object, base: Path, model: bool = False) -> object:
    """Relative paths are relative to the TOML; references and hub names (``hf:`` data, and for a
    ``model`` key an ``org/name`` that is no folder beside the TOML) stay as written."""
    if isinstance(value, list):
        return [_resolve_path(item, base, model) for item in value]
    if not isinstance(value, str) or value.startswith(("@", "hf:")):
        return value
    if model and looks_like_hub_id(value) and not (base / value).exists():
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _check_references(stage: Stage, earlier: list[str]) -> None:
    for key, value in stage.values.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("@") and item[1:] not in earlier:
                choices = ", ".join(f"@{name}" for name in earlier) or "none: this is the first stage"
                raise InputError(
                    f"[{stage.name}] {key} = {item!r} names no earlier stage of this pipeline "
                    f"(earlier stages: {choices}): point it at one of them or at a folder"
                )


# [pipeline] keys that mean something else to some stage: profile's --device is where to measure
# (a name from --devices), not the torch device that finetune and compress train on.
NOT_SHARED = {"device": ("profile",)}


def _stage(name: str, table: dict, shared: dict, base: Path, work: Path, earlier: list[str]) -> Stage:
    options = stage_options(name)
    budgets = table.pop("budget", []) if name == "profile" else []
    if not isinstance(budgets, list) or not all(isinstance(b, dict) for b in budgets):
        raise InputError(f"[{name}] budget must be [[profile.budget]] tables: see `codir-edge profile --help`")
    if budgets and "budgets" in table:
        raise InputError("[profile] has both a budgets file and [[profile.budget]] tables: keep one of them")
    out = table.pop("out", None)
    values: dict[str, object] = {}
    for raw_key, value in table.items():
        key = _canonical(raw_key)
        if key in OWNED:
            raise InputError(f"[{name}] {raw_key} is set by the pipeline itself: remove it from {base.name}")
        if key not in options:
            known = ", ".join(sorted(k for k in options if k not in OWNED and k != "out"))
            raise InputError(f"[{name}] has no option '{raw_key}' (codir-edge {name} takes: {known}, out)")
        values[key] = value
    for key, value in shared.items():
        if key in options and key not in values and key not in OWNED and name not in NOT_SHARED.get(key, ()):
            values[key] = value
    default = UPSTREAM_DEFAULTS.get(name)
    if default and default[0] not in values:
        upstream = next((s for s in default[1] if s in earlier), None)
        if upstream is not None:
            values[default[0]] = [f"@{upstream}"] if options[default[0]].is_list else f"@{upstream}"
    values = {k: (_resolve_path(v, base, k in MODEL_KEYS) if k in PATH_KEYS else v) for k, v in values.items()}
    missing = [key for key, spec in options.items() if spec.required and key not in values and key != "out"]
    if missing:
        raise InputError(f"[{name}] needs {' and '.join(missing)}: set it in [{name}] (or [pipeline])")
    if out is not None and not isinstance(out, str):
        raise InputError(f"[{name}] out = {out!r} must be a folder path")
    out_path = Path(_resolve_path(out, base)) if out else work / name
    stage = Stage(name, out_path, values, options, budgets)
    _check_references(stage, earlier)
    return stage


def read_pipeline(path: Path) -> Pipeline:
    """Parse and check the whole file up front: an error names the table, the key and the fix."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pipeline file {path} does not exist: pass a pipeline TOML (see codir-edge pipeline --help)")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: save the pipeline file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML ({exc}): fix the line it names") from None
    base = path.resolve().parent
    unknown = [key for key in document if key not in ("pipeline", *STAGES)]
    if unknown:
        raise InputError(f"{path}: unknown table [{unknown[0]}]: use [pipeline], {', '.join(f'[{s}]' for s in STAGES)}")
    for key, table in document.items():
        if not isinstance(table, dict):
            raise InputError(f"{path}: '{key}' must be a table ([{key}]), not a value")
    shared = {_canonical(k): v for k, v in document.get("pipeline", {}).items()}
    work_value = shared.pop("work", f"runs/{path.stem}")
    if not isinstance(work_value, str):
        raise InputError(f"[pipeline] work = {work_value!r} must be a folder path")
    work = Path(_resolve_path(work_value, base))
    present = [name for name in STAGES if name in document]
    if not present:
        raise InputError(f"{path} has no stage: add at least one of {', '.join(f'[{s}]' for s in STAGES)}")
    known_anywhere = set().union(*(stage_options(name) for name in present)) - OWNED
    stray = sorted(set(shared) - known_anywhere)
    if stray:
        raise InputError(f"[pipeline] {stray[0]} is an option of none of the stages {', '.join(present)}: remove it")
    stages: list[Stage] = []
    for name in present:
        stages.append(_stage(name, dict(document[name]), shared, base, work, [s.name for s in stages]))
    return Pipeline(path.resolve(), work, stages)
