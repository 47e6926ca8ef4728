"""Model configs: frozen attrs classes, validated, overridable from the CLI.

A plugin's model declares ``Config`` as a frozen attrs class whose fields have
defaults, types, validators (``attrs.validators.in_`` for choices) and a
``metadata={"help": ...}`` line. This module builds configs from overrides
(``--set key=value``, a TOML file, keyword arguments) with errors that name the
key and the allowed values, and writes them to and from JSON.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

import attrs

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found]  # Python 3.10 only

__all__ = [
    "option",
    "make_config",
    "parse_assignments",
    "parse_literal",
    "read_toml",
    "config_to_dict",
    "describe_options",
]


def option(default: Any, help: str, validator: Any = None, **kw: Any) -> Any:  # noqa: A002 - attrs' word
    """A config field: ``attrs.field(default=..., validator=..., metadata={"help": help}, **kw)``.

    ``validator`` is one attrs validator, a list of them (all must pass) or None;
    ``kw`` passes on (e.g. ``converter=tuple``). ``help`` is the line that
    ``gmkit describe`` and the model pages show.
    """
    if isinstance(validator, tuple):
        validator = list(validator)
    return attrs.field(default=default, validator=validator, metadata={"help": help, **kw.pop("metadata", {})}, **kw)


def _fields(cls: type) -> dict[str, attrs.Attribute]:
    attrs.resolve_types(cls)
    return {f.name: f for f in attrs.fields(cls)}


def make_config(cls: type, overrides: dict[str, Any], owner: str = "model") -> Any:
    """``cls(**defaults | overrides)`` with strings converted by field type.

    Unknown keys and invalid values raise :class:`ConfigError` naming the key and,
    where the field declares choices, the allowed values.
    """
    fields = _fields(cls)
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise ConfigError(f"{owner} has no option '{key}'; options: {', '.join(fields)}")
        values[key] = _convert(fields[key], raw, owner)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        bad = _blame(exc, fields)
        raise ConfigError(f"{owner}: invalid value for '{bad}': {_why(exc, fields.get(bad))}") from None


def _blame(exc: Exception, fields: dict[str, attrs.Attribute]) -> str:
    if len(exc.args) >= 2 and isinstance(exc.args[1], attrs.Attribute):
        return exc.args[1].name
    text = str(exc)
    return next((name for name in fields if f"'{name}'" in text or name in text.split()), "?")


def _why(exc: Exception, field: attrs.Attribute | None) -> str:
    choices = _choices(field) if field is not None else None
    if choices is not None:
        return f"must be one of {', '.join(map(str, choices))}"
    return str(exc.args[0]) if exc.args else str(exc)


def _optional_of(typ: Any) -> Any | None:
    """``T`` for ``T | None`` (or ``Optional[T]``); None for any other type."""
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    union = typing.get_origin(typ) in (typing.Union, types.UnionType)
    return args[0] if union and len(args) == 1 and len(typing.get_args(typ)) == 2 else None


def _choices(field: attrs.Attribute) -> tuple[Any, ...] | None:
    typ = _optional_of(field.type) or field.type
    if typing.get_origin(typ) is typing.Literal:
        return typing.get_args(typ)
    validator = field.validator
    options = getattr(validator, "options", None)
    return tuple(options) if options is not None else None


def _convert(field: attrs.Attribute, raw: Any, owner: str) -> Any:
    if not isinstance(raw, str):
        return tuple(raw) if isinstance(raw, list) else raw
    typ = field.type
    inner = _optional_of(typ)
    if inner is not None:
        if raw.lower() in ("none", "null", ""):
            return None
        typ = inner
    origin, args = typing.get_origin(typ), list(typing.get_args(typ))
    try:
        if typ is bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if typ is int:
            return int(float(raw)) if "e" in raw.lower() else int(raw)
        if typ is float:
            return float(raw)
        if origin is tuple:
            item = args[0] if args else str
            return tuple(item(v) for v in raw.replace(" ", "").split(",") if v)
        if origin is typing.Literal:
            for choice in typing.get_args(typ):
                if str(choice) == raw:
                    return choice
            raise ValueError(f"must be one of {', '.join(map(str, typing.get_args(typ)))}")
    except ValueError as exc:
        raise ConfigError(f"{owner}: invalid value '{raw}' for '{field.name}': {exc}") from None
    return raw


def parse_assignments(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a missing ``=`` is a ConfigError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{item}'")
        out[key.strip()] = value.strip()
    return out


def parse_literal(text: str) -> Any:
    """``"2000"`` -> 2000, ``"1e-3"`` -> 0.001, ``"true"``/``"false"`` -> bool, anything else unchanged.

    For options that have no declared type (sampler options, a stage's trainer settings).
    """
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a flat TOML table of options (a ``[model]`` table is also accepted)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    return dict(data.get("model", data))


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(attrs.asdict(config, recurse=True)))


def describe_options(cls: type) -> list[dict[str, Any]]:
    """One row per option: name, type, default, choices and help text."""
    rows = []
    for field in _fields(cls).values():
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()  # type: ignore[union-attr]
        choices = _choices(field)
        rows.append(
            {
                "name": field.name,
                "type": getattr(field.type, "__name__", str(field.type)),
                "default": default,
                "choices": list(choices) if choices else None,
                "help": field.metadata.get("help", ""),
            }
        )
    return rows
