"""One declaration per setting: a dataclass field that carries its flag, its help and its help section.

As transformers' ``HfArgumentParser`` and TRL's parser generate flags from dataclass fields, the
command line (``cli/generate.py``) and the pipeline's TOML keys (``pipeline/options.py``) are both read
from these declarations, so a setting's name, type, default and help are written once, on the field
of the config that uses it. A command's own inputs (its folders, ``--overwrite``, ``--json``) are
declared the same way, on a small dataclass beside the stage (``<stage>/options.py``), and a
:class:`CommandSpec` lists what a command takes and in which order its help shows it.

Nothing here imports typer: the declarations are data, read by the CLI and by the pipeline alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from codir_edge.core.errors import InputError

# Help sections, in the order a command's help shows them when it uses them.
DATA = "Data"
TRAINING = "Training"
RUNTIME = "Runtime"
CHECKPOINTS = "Checkpoints"


class _Same:
    """``Flag.cli_default`` when the command line's default is the field's own."""

    def __repr__(self) -> str:
        return "SAME"


SAME: Any = _Same()


@dataclass(frozen=True)
class Flag:
    """How a field appears on the command line and in a pipeline table.

    ``cli_type`` and ``parse`` exist for settings whose command-line form differs from the config's
    (``--tune-threads 1,4`` is a string there and a tuple in the config); ``parse`` raises an
    :class:`InputError` naming the flag. ``cli_default`` is the command line's default where it is not
    the field's own (a field without a default, or one that the command fills in later)."""

    help: str
    panel: str | None = None
    flags: tuple[str, ...] = ()  # ("--task", "-t"); default: --field-name, --x/--no-x for booleans
    choices: tuple[str, ...] | None = None
    show_default: bool | str = True
    metavar: str | None = None
    argument: bool = False  # positional
    cli_type: Any = None
    cli_default: Any = SAME
    parse: Callable[[Any], Any] | None = None


def setting(default: Any = MISSING, **flag: Any) -> Any:
    """A dataclass field declared once: ``setting(3, help="Passes over the training set.", panel=TRAINING)``."""
    return dataclasses.field(default=default, metadata={"cli": Flag(**flag)})


def like(cls: type, name: str, default: Any = MISSING, **changes: Any) -> Any:
    """Another class's declaration of ``name``, for a command that takes the same setting (``evaluate
    --seed`` is the training engine's ``--seed``); ``changes`` replace parts of it (its help, its section)."""
    item = next(f for f in dataclasses.fields(cls) if f.name == name)
    flag = dataclasses.replace(item.metadata["cli"], **changes)
    return dataclasses.field(default=item.default if default is MISSING else default, metadata={"cli": flag})


@dataclass(frozen=True)
class Option:
    """A declared setting as the generators read it: its command-line type and default resolved."""

    name: str
    flag: Flag
    kind: Any  # the command-line type: int, float, str, bool, Path, ``T | None``, ``list[T] | None``
    default: Any  # MISSING: required

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def long_flag(self) -> str:
        """``--student-layers``; the on-flag of a boolean pair."""
        declared = [d for d in self.flag.flags if d.startswith("--")]
        return declared[0].partition("/")[0] if declared else "--" + self.name.replace("_", "-")

    @property
    def off_flag(self) -> str | None:
        """``--no-optimize`` for boolean pairs; None for a lone flag (``--fp16``) or a non-boolean."""
        declared = [d for d in self.flag.flags if d.startswith("--")]
        if declared:
            return declared[0].partition("/")[2] or None
        return "--no-" + self.name.replace("_", "-") if scalar_type(self.kind)[0] is bool else None

    def parse(self, value: Any) -> Any:
        """The command-line value as the config holds it."""
        if self.flag.parse is not None:
            return self.flag.parse(value)
        return value


def scalar_type(kind: Any) -> tuple[Any, bool]:
    """(scalar type, is a list) of ``T``, ``T | None``, ``list[T] | None``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is list:
        return typing.get_args(kind)[0], True
    return kind, False


def options_of(cls: type) -> dict[str, Option]:
    """The declared settings of one dataclass, in field order (inherited fields first, as dataclasses
    order them; a subclass that re-declares a field keeps its place and replaces its declaration)."""
    hints = typing.get_type_hints(cls)
    found = {}
    for item in dataclasses.fields(cls):
        flag = item.metadata.get("cli")
        if flag is None:
            continue
        kind = flag.cli_type if flag.cli_type is not None else hints[item.name]
        default = item.default if flag.cli_default is SAME else flag.cli_default
        found[item.name] = Option(item.name, flag, kind, default)
    return found


@dataclass(frozen=True)
class CommandSpec:
    """What one command takes: the declared settings of ``sources`` (config classes and the command's
    own inputs), listed in ``order`` by the help; a setting not named there follows the named ones of
    its section. The same name in two sources must be one declaration (a shared base class's field)."""

    sources: tuple[type, ...]
    order: tuple[str, ...] = ()

    def options(self) -> dict[str, Option]:
        merged: dict[str, Option] = {}
        for source in self.sources:
            for name, option in options_of(source).items():
                if name in merged and merged[name] != option:
                    raise AssertionError(f"{name} is declared twice, differently, in {self.sources}")
                merged.setdefault(name, option)
        unknown = [name for name in self.order if name not in merged]
        if unknown:
            raise AssertionError(f"order names undeclared settings {unknown}")
        named = [merged[name] for name in self.order]
        rest = [option for name, option in merged.items() if name not in self.order]
        return {option.name: option for option in _by_section(named, rest)}


def _by_section(named: list[Option], rest: list[Option]) -> list[Option]:
    """``named`` in their order, each unnamed option placed after the last named one of its section."""
    placed = list(named)
    for option in rest:
        same = [i for i, o in enumerate(placed) if o.flag.panel == option.flag.panel]
        placed.insert(same[-1] + 1 if same else len(placed), option)
    return placed


def given(option: Option, value: Any) -> bool:
    """Whether a command-line value differs from the option's default, so the user set it."""
    return option.required or value != option.default


# Small parsers shared by several declarations.


def choice_value(value: Any) -> Any:
    """An Enum member of a generated choice as the plain string the config holds."""
    return getattr(value, "value", value)


def optional_str(value: Path | str | None) -> str | None:
    """A path option that the config holds as a string (configs are written to JSON)."""
    return None if value is None else str(value)


def labels_list(labels: str | None) -> tuple[str, ...] | None:
    """``--labels 'neg,pos'`` -> ('neg', 'pos')."""
    if labels is None:
        return None
    parts = tuple(part.strip() for part in labels.split(","))
    if not all(parts) or len(set(parts)) != len(parts):
        raise InputError(f"--labels '{labels}' must list distinct, non-empty labels separated by commas")
    return parts


def int_list(value: str | None, option: str, minimum: int = 1) -> tuple[int, ...] | None:
    """'1,2' -> (1, 2); None stays None (the option was not given)."""
    if value is None:
        return None
    try:
        items = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{option} '{value}' must be comma-separated integers, like 1,2") from None
    if not items or any(i < minimum for i in items):
        raise InputError(f"{option} '{value}' must list integers of at least {minimum}, like 1,2")
    return items


def seq_lens_list(value: str | None, option: str) -> tuple[int | str, ...] | None:
    """'16,128,real' -> (16, 128, 'real'); None stays None."""
    if value is None:
        return None
    items: list[int | str] = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        if part == "real":
            items.append(part)
        elif part.lstrip("-").isdigit() and int(part) >= 1:
            items.append(int(part))
        else:
            raise InputError(f"{option} '{value}' must list positive integers or 'real', like 16,128,real")
    return tuple(items) or None
