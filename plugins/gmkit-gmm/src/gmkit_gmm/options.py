"""Component options may arrive as strings (``--option components=10``); convert them with one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gmkit_core.errors import ConfigError

__all__ = ["as_int", "as_float", "as_choice"]


def as_int(value: Any, name: str, owner: str, minimum: int | None = None) -> int:
    try:
        out = int(float(value))
        if float(value) != out:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: option '{name}' must be an integer, got {value!r}") from None
    if minimum is not None and out < minimum:
        raise ConfigError(f"{owner}: option '{name}' must be >= {minimum}, got {out}")
    return out


def as_float(value: Any, name: str, owner: str, minimum: float | None = None) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: option '{name}' must be a number, got {value!r}") from None
    if minimum is not None and not out >= minimum:
        raise ConfigError(f"{owner}: option '{name}' must be >= {minimum}, got {out}")
    return out


def as_choice(value: Any, name: str, owner: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"{owner}: option '{name}' must be one of {', '.join(choices)}, got {value!r}")
    return str(value)
