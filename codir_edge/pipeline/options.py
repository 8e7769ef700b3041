"""What each stage command accepts, read from the stage's own declaration (``<stage>/options.py``).

A pipeline table uses the command's long option names (``student-layers``, ``max-length``), so the
names can never drift from the CLI: both are generated from the same declared settings
(``core/settings.py``), not listed here. Values are checked against the declared types before
anything runs, so a typo in the last stage fails in a second rather than after an hour of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codir_edge.core.errors import InputError
from codir_edge.core.settings import CommandSpec, scalar_type

STAGES = ("finetune", "compress", "export", "profile")
# Options the pipeline sets itself: where results go, and how the commands report.
OWNED = {"overwrite", "json", "markdown", "junit", "quiet", "resume"}
# Positional arguments get a pipeline key that says what they hold.
ARGUMENT_KEYS = {"model_dir": "model", "targets": "targets"}
# Options whose values are files or folders: relative paths are resolved against the TOML's folder,
# and the contents of the ones a stage reads are part of its record.
INPUT_PATH_KEYS = {
    "model",
    "teacher",
    "student",
    "data",
    "eval-data",
    "unlabeled",
    "budgets",
    "devices",
    "cache-from",
    "targets",
}
PATH_KEYS = INPUT_PATH_KEYS | {"plot"}


@dataclass(frozen=True)
class OptionSpec:
    key: str  # the pipeline key: the long option without dashes, or the argument's key
    flag: str | None  # "--student-layers"; None for a positional argument
    off_flag: str | None  # "--no-optimize" for boolean pairs
    kind: type  # int, float, str, bool or Path
    is_list: bool
    required: bool
    choices: tuple[str, ...] | None = None


def command_spec(stage: str) -> CommandSpec:
    """The declaration of ``stage``'s command (light: configs and declarations, no torch)."""
    if stage == "finetune":
        from codir_edge.finetune.options import FINETUNE as spec
    elif stage == "compress":
        from codir_edge.compress.options import COMPRESS as spec
    elif stage == "export":
        from codir_edge.export.options import EXPORT as spec
    else:
        from codir_edge.profile.options import PROFILE as spec
    return spec


def stage_options(stage: str) -> dict[str, OptionSpec]:
    """Every option of ``stage``'s command, keyed by its pipeline key."""
    options: dict[str, OptionSpec] = {}
    for option in command_spec(stage).options().values():
        kind, is_list = scalar_type(option.kind)
        if option.flag.argument:
            key = ARGUMENT_KEYS[option.name]
            options[key] = OptionSpec(key, None, None, kind, is_list, option.required)
            continue
        on = option.long_flag
        options[on[2:]] = OptionSpec(on[2:], on, option.off_flag, kind, is_list, option.required, option.flag.choices)
    return options


def _scalar(value, spec: OptionSpec, where: str) -> str:
    """One value as the command-line string the command parses, or an error naming the key."""
    kind = spec.kind
    if kind is bool:
        raise AssertionError("booleans are rendered as flags")
    if isinstance(value, (bool, dict, list)):
        raise InputError(f"{where} = {value!r} must be a {_type_word(spec)}: write it as one")
    if kind is int and not isinstance(value, int):
        raise InputError(f"{where} = {value!r} must be a whole number, like 3")
    if kind is float and not isinstance(value, (int, float)):
        raise InputError(f"{where} = {value!r} must be a number, like 0.1")
    if spec.choices is not None:
        allowed = spec.choices
        if value not in allowed:
            raise InputError(f"{where} = {value!r} is not one of {', '.join(allowed)}: pick one of them")
    if kind in (str, Path) and not isinstance(value, (str, int, float)):
        raise InputError(f"{where} = {value!r} must be a string")
    return str(value)


def _type_word(spec: OptionSpec) -> str:
    if spec.choices is not None:
        return "choice of " + ", ".join(spec.choices)
    return {int: "whole number", float: "number", bool: "true or false"}.get(spec.kind, "string")


def render(spec: OptionSpec, value, where: str) -> list[str]:
    """The command-line words for one pipeline value (a positional argument renders bare)."""
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where} = {value!r} must be true or false")
        if value:
            return [spec.flag]
        return [spec.off_flag] if spec.off_flag else []
    if spec.is_list:
        items = value if isinstance(value, list) else [value]
        words = [_scalar(item, spec, where) for item in items]
        if spec.flag is None:
            return words
        return [word for item in words for word in (spec.flag, item)]
    if isinstance(value, list) and spec.kind is str:  # threads = [1, 2] for the comma lists of profile
        value = ",".join(_scalar(item, spec, where) for item in value)
    word = _scalar(value, spec, where)
    return [word] if spec.flag is None else [spec.flag, word]
