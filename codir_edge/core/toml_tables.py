"""Read a TOML file made of ``[[name]]`` tables (budgets, devices) so that errors can cite lines.

``tomllib`` returns values without positions; a user who mistyped a key in the ninth table wants
the line, so each table's keys are located in the text alongside the parse.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from codir_edge.core.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

Where = Callable[[str], str]  # key -> "devices.toml line 7"


def _key_lines(text: str, name: str) -> list[dict[str, int]]:
    """Line numbers of each key, per ``[[name]]`` table."""
    tables: list[dict[str, int]] = []
    header = re.compile(r"^\[\[\s*" + re.escape(name) + r"\s*\]\]")
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header.match(stripped):
            tables.append({f"[[{name}]]": number})
            in_table = True
        elif stripped.startswith("["):
            in_table = False  # a sub-table such as [device.env] keeps its own keys
        elif in_table and (match := re.match(r"^([A-Za-z0-9_\-\"']+)\s*=", stripped)):
            tables[-1].setdefault(match.group(1).strip("\"'"), number)
    return tables


def read_tables(text: str, name: str, source: str, what: str) -> list[tuple[dict, Where, int]]:
    """Each ``[[name]]`` table, a function that cites where one of its keys is, and its header line.

    ``what`` names the file in fixes ("the budgets file"). Other top-level keys and a file with no
    table are errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: invalid TOML ({exc}): fix {what}") from exc
    extra = set(data) - {name}
    if extra:
        raise InputError(f"{source}: unknown top-level key '{sorted(extra)[0]}': only [[{name}]] tables are allowed")
    tables = data.get(name, [])
    if not isinstance(tables, list) or not tables:
        raise InputError(f"{source}: no [[{name}]] tables: add at least one")
    lines = _key_lines(text, name)
    found: list[tuple[dict, Where, int]] = []
    for index, table in enumerate(tables):
        where_lines = lines[index] if index < len(lines) else {}

        def at(key: str, _lines=where_lines, _index=index) -> str:
            line = _lines.get(key, _lines.get(f"[[{name}]]"))
            return f"{source} line {line}" if line else f"{source} {name} #{_index + 1}"

        if not isinstance(table, dict):
            raise InputError(f"{at('')}: each {name} must be a [[{name}]] table")
        found.append((table, at, where_lines.get(f"[[{name}]]", 0)))
    return found


def read_text(path: Path, option: str) -> str:
    """A TOML file's text, or one line naming ``option`` and the fix."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{option} {path} does not exist: check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{option} {path} cannot be read as UTF-8 text ({exc}): fix the file") from exc


def check_unique(names: list[str], source: str, what: str) -> None:
    """Names that budgets and reports refer to must say which table they mean."""
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise InputError(f"{source}: two {what} are named '{twice}': give each a unique name")
