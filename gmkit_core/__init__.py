"""gmkit: deep generative models behind one interface.

``import gmkit_core as gm`` gives the registry, data loading and run files::

    gm.registry.names("model")
    model = gm.registry.get("model", "vae", data=gm.data.load("digits").spec)
    run = gm.load("run.h5")

Heavy modules (torch) load on first attribute access, so the CLI's listing
commands stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import API_VERSION, __version__
from .errors import (
    ArtifactError,
    ConfigError,
    DataError,
    GmkitError,
    NotRegisteredError,
    TrainingError,
)
from .hookspecs import hookimpl
from .registry import registry

__all__ = [
    "API_VERSION",
    "__version__",
    "hookimpl",
    "registry",
    "data",
    "load",
    "GmkitError",
    "ConfigError",
    "DataError",
    "ArtifactError",
    "NotRegisteredError",
    "TrainingError",
]

_LAZY = {
    "data": ("gmkit_core.data", None),
    "distributions": ("gmkit_core.distributions", None),
    "interfaces": ("gmkit_core.interfaces", None),
    "load": ("gmkit_core.artifact", "load"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'gmkit_core' has no attribute '{name}'")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)
