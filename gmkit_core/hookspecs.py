"""The hooks a gmkit plugin implements.

A plugin is a module named by an entry point in the group ``gmkit.plugins``. It
sets ``GMKIT_API`` to the core API version it targets and implements any of the
hooks below with ``@gmkit_core.hookimpl``. Every hook receives a ``register``
callback (or the CLI group), so registering is cheap: targets are
``"module:attr"`` strings imported only when used, and a plugin module must not
import torch at import time.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("gmkit")
hookimpl = pluggy.HookimplMarker("gmkit")


@hookspec
def gmkit_register_models(register):
    """Register models: ``register(name, target, family=, description=)``; the class declares likelihood and conditional."""


@hookspec
def gmkit_register_components(register):
    """Register components: ``register(kind, name, target, description=)``; kind in prior, transform, schedule, network, sampler, trainer, feature."""


@hookspec
def gmkit_register_datasets(register):
    """Register datasets: ``register(name, target, description=, kind=)``; target(arg, split) -> Dataset."""


@hookspec
def gmkit_register_commands(cli):
    """Add click commands to the ``gmkit`` group ``cli``."""
