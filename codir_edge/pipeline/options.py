"""What each stage command accepts, read from the command's own signature.

A pipeline table uses the command's long option names (``student-layers``, ``max-length``), so the
names can never drift from the CLI: they are read from the Typer declarations, not listed here.
Values are checked against the declared types before anything runs, so a typo in the last stage
fails in a second rather than after an hour of training.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import UnionType

import typer.models

from codir_edge.core.errors import InputError

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
    kind: type  # int, float, str, bool, Path or an Enum subclass
    is_list: bool
    required: bool


def _command(stage: str):
    """The undecorated command function of ``stage`` (imports only the light CLI module)."""
    import importlib

    module = importlib.import_module(f"codir_edge.cli.{stage}")
    return inspect.unwrap(getattr(module, stage))


def _base_type(annotation) -> tuple[type, bool]:
    """(scalar type, is a list) of ``T``, ``T | None``, ``list[T] | None``."""
    if isinstance(annotation, UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def _flags(name: str, info: typer.models.OptionInfo, kind: type) -> tuple[str, str | None]:
    declared = [d for d in (info.param_decls or ()) if d.startswith("--")]
    if declared:
        on, _, off = declared[0].partition("/")
        return on, off or None
    flag = "--" + name.replace("_", "-")
    return flag, ("--no-" + flag[2:] if kind is bool else None)


def stage_options(stage: str) -> dict[str, OptionSpec]:
    """Every option of ``stage``'s command, keyed by its pipeline key."""
    function = _command(stage)
    hints = typing.get_type_hints(function, include_extras=True)
    options: dict[str, OptionSpec] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        hint = hints[name]
        if typing.get_origin(hint) is not typing.Annotated:
            continue  # the Typer context
        annotation, info = typing.get_args(hint)[:2]
        kind, is_list = _base_type(annotation)
        required = parameter.default is inspect.Parameter.empty
        if isinstance(info, typer.models.ArgumentInfo):
            key = ARGUMENT_KEYS[name]
            options[key] = OptionSpec(key, None, None, kind, is_list, required)
            continue
        on, off = _flags(name, info, kind)
        options[on[2:]] = OptionSpec(on[2:], on, off, kind, is_list, required)
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
    if isinstance(kind, type) and issubclass(kind, Enum):
        allowed = [member.value for member in kind]
        if value not in allowed:
            raise InputError(f"{where} = {value!r} is not one of {', '.join(allowed)}: pick one of them")
    if kind in (str, Path) and not isinstance(value, (str, int, float)):
        raise InputError(f"{where} = {value!r} must be a string")
    return str(value)


def _type_word(spec: OptionSpec) -> str:
    if isinstance(spec.kind, type) and issubclass(spec.kind, Enum):
        return "choice of " + ", ".join(m.value for m in spec.kind)
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
