"""Results that are slow to work out and fixed by their inputs, kept on disk between runs.

Used where a result depends only on a small description of its inputs: export's candidate timings
(graph contents and machine) and what a tokenizer's normalizer does to each code point (its JSON and
the tokenizers version). The key is the sha256 of that description, so a changed input is a miss,
never a stale hit. The folder is ``$CODIR_EDGE_CACHE``, else ``$XDG_CACHE_HOME/codir-edge``, else
``~/.cache/codir-edge``. A cache that cannot be read or written costs the work again, never the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

_memory: dict[tuple[str, str, str], object] = {}  # (folder, kind, key): what this process read or worked out


def cache_root() -> Path:
    if os.environ.get("CODIR_EDGE_CACHE"):
        return Path(os.environ["CODIR_EDGE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "codir-edge"


def key_of(description: object) -> str:
    """The sha256 of a JSON-able description (keys sorted, so dict order does not matter)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


def load(kind: str, key: str):
    """The JSON value stored under ``kind``/``key``, or None when absent or unreadable."""
    where = (str(cache_root()), kind, key)
    if where in _memory:
        return _memory[where]
    try:
        value = json.loads((cache_root() / kind / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or cut short: work it out again
        return None
    _memory[where] = value
    return value


def save(kind: str, key: str, value) -> None:
    """Store ``value`` (JSON-able) atomically; a folder that cannot be written is left alone."""
    _memory[(str(cache_root()), kind, key)] = value
    folder = cache_root() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(value), encoding="utf-8")
        temporary.replace(folder / f"{key}.json")
    except (OSError, TypeError, ValueError):  # unwritable, or a value JSON cannot hold: kept in memory only
        return


def cached(kind: str, description: object, compute: Callable[[], object], use: bool = True):
    """``compute()``'s JSON value for ``description``, from the cache when it is there (and ``use``)."""
    if not use:
        return compute()
    key = key_of(description)
    found = load(kind, key)
    if found is None:
        found = compute()
        save(kind, key, found)
    return found
