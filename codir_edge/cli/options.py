"""What the command files share beyond the generated options: writing a --json report and rebuilding
the running command line for provenance."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


def write_json(path: Path | None, payload: dict) -> None:
    """Write a JSON report atomically (a CI job reading it never sees half a file)."""
    if path is None:
        return
    import json

    write_report(path, json.dumps(payload, indent=2, default=str) + "\n", "--json")


def write_report(path: Path, text: str, option: str) -> None:
    """Write the report ``option`` asked for, atomically, its folder made; one line when it cannot be."""
    from codir_edge.core.atomic import atomic_write_text
    from codir_edge.core.errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {option} {path} ({exc.strerror}): choose a writable path") from exc


def command_line(ctx: typer.Context) -> str:
    """The running command rebuilt from its parsed parameters, so an artifact records a command that
    reproduces it even when it was started from Python or a test runner (where argv is not ours)."""
    import shlex

    words = ["codir-edge", ctx.info_name or ""]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or param.name == "json_path":
            continue
        value = value.value if isinstance(value, Enum) else value
        if param.param_type_name == "argument":
            words.append(str(value))
        elif isinstance(value, bool):
            flags = param.opts if value else param.secondary_opts
            if flags and value != param.default:
                words.append(flags[0])
        elif isinstance(value, (list, tuple)):
            for item in value:
                words += [param.opts[0], str(item)]
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)
