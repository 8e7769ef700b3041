"""Checks the stages' config dataclasses share, so that the same bad value gets the same message
from every command."""

from __future__ import annotations

from codir_edge.core.errors import InputError


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def require_positive(config, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if not value > 0:
            raise InputError(f"{_flag(name)} must be positive, got {value}: pass a value above 0")


def require_counts(config, names: tuple[str, ...]) -> None:
    """Optional counts (None means 'all') must be at least 1 when given."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise InputError(f"{_flag(name)} must be at least 1, got {value}: pass a positive count")


def require_warmup_ratio(value: float) -> None:
    if not 0 <= value < 1:
        raise InputError(f"warmup ratio must be in [0, 1), got {value}")
