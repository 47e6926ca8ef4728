"""Data: built-in sets, user files, and the one ``load`` that reads them all.

``load("digits", split="train")``; ``load("moons")``; ``load("npz:my.npz")``;
``load("my.npz")`` (the loader is chosen from the extension). Sources are
registered datasets, so plugins can add their own; file loaders are those
registered with ``kind="file"``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError, NotRegisteredError
from .dataset import Batch, Dataset
from .spec import SPLITS, DataSpec

__all__ = ["Batch", "Dataset", "DataSpec", "SPLITS", "absolute_source", "load", "resolve"]

_BY_SUFFIX = {".npz": "npz", ".h5": "h5", ".hdf5": "h5", ".gz": "idx"}


def resolve(source: str) -> tuple[str, str | None]:
    """``"name[:arg]"`` or a path -> (registered dataset name, argument)."""
    from ..registry import registry

    name, sep, arg = source.partition(":")
    if name in registry.names("dataset"):
        return name, arg if sep else None
    path = Path(source)
    if path.is_dir():
        return "png", source
    if path.suffix in _BY_SUFFIX or "idx" in path.name:
        return _BY_SUFFIX.get(path.suffix, "idx"), source
    if path.exists():
        raise DataError(f"{source}: unknown file type; use npz:, h5:, png: or idx:")
    known = ", ".join(registry.names("dataset"))
    raise DataError(f"unknown data '{source}': not a registered dataset ({known}) or an existing file")


def load(source: str, split: str = "train") -> Dataset:
    """One split of a data source as an in-memory :class:`Dataset`."""
    from ..registry import registry

    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'; splits: {', '.join(SPLITS)}")
    name, arg = resolve(source)
    try:
        factory = registry.entry("dataset", name).load()
    except NotRegisteredError as exc:
        raise DataError(str(exc)) from None
    return factory(arg, split)


def absolute_source(source: str) -> str:
    """``source`` with the path(s) of a file source made absolute against the current directory.

    ``npz:data/x.npz`` -> ``npz:/cwd/data/x.npz``; a plain path stays plain;
    ``idx:A,B`` resolves both paths; ``~`` is expanded. A registered dataset
    that is not a file loader (``digits``, ``moons:500``) is returned as is.
    Nothing is read, so the file need not exist yet when it has a prefix.
    """
    from ..registry import registry

    name, arg = resolve(source)
    if not arg or registry.entry("dataset", name).data_kind != "file":
        return source
    paths = ",".join(os.path.abspath(Path(part).expanduser()) if part else part for part in arg.split(","))
    return paths if arg == source else f"{name}:{paths}"
