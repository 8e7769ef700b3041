"""Hub ids where a model folder is expected (``--teacher org/name``), as Optimum's CLI takes them.

An id resolves to its snapshot in huggingface_hub's cache, so a model fetched once works offline
for good; without the cache it is downloaded unless the hub is off (``HF_HUB_OFFLINE=1``) or out of
reach, and then one line says how to fetch it. A path that exists always wins over an id.
"""

from __future__ import annotations

import re
from pathlib import Path

from codir_edge.core.errors import InputError, first_line

# org/name, as the hub spells repository ids (a bare name is read as a local path: too easy to mistype)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(value: Path | str) -> bool:
    text = str(value)
    return bool(_HUB_ID.match(text)) and not text.startswith((".", "/")) and not Path(text).exists()


def cached_snapshot(value: Path | str) -> Path | None:
    """The snapshot of a hub id in huggingface_hub's cache, or None (nothing is fetched)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import HFValidationError

    try:
        return Path(snapshot_download(str(value), local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        return None


def resolve_model_dir(value: Path | str, option: str) -> Path:
    """``value`` itself when it exists or cannot be a hub id; else the cached (or fetched) snapshot."""
    if not looks_like_hub_id(value):
        return Path(value)
    text = str(value)
    cached = cached_snapshot(text)
    if cached is not None:
        return cached
    from huggingface_hub import snapshot_download

    if _offline():
        raise InputError(
            f"{option} {text} is neither a folder here nor in the Hugging Face cache, and the hub is off "
            f"(HF_HUB_OFFLINE): run `huggingface-cli download {text}` where the hub is reachable, or pass a folder"
        )
    try:
        return Path(snapshot_download(text))
    except Exception as exc:  # network, authentication and missing-repository errors all end here
        raise InputError(
            f"{option} {text} is not a folder here, and fetching it from the Hugging Face hub failed "
            f"({first_line(exc, 160)}): "
            f"check the id, or run `huggingface-cli download {text}` where the hub is reachable"
        ) from exc


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
