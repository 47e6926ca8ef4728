"""The plugin registry: entry points in, named models and components out.

Plugins are found through the entry-point group ``gmkit.plugins`` and loaded
lazily on first use. Each plugin is loaded and registered in isolation, its
hooks called through pluggy's hook caller: one that fails to import, targets
another API version, implements an unknown hook or fails while registering is
recorded with its error, and everything else keeps working. A name claimed by
two plugins is refused for both (using it is an error naming both
distributions), while their other names keep working. Registrations name their
target as a ``"module:attr"`` string, so listing plugins and datasets imports
neither torch nor model code; a model's likelihood kind and conditionality are
declared on its class and read from it when asked for.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from importlib import metadata
from types import ModuleType
from typing import Any

import attrs
import pluggy

from . import hookspecs
from ._version import API_VERSION
from .errors import ConfigError, NotRegisteredError

__all__ = ["KINDS", "Entry", "PluginInfo", "Registry", "registry"]

GROUP = "gmkit.plugins"
KINDS = ("model", "prior", "transform", "schedule", "network", "sampler", "dataset", "trainer", "feature")
HOOKS = ("gmkit_register_models", "gmkit_register_components", "gmkit_register_datasets")


@attrs.frozen
class Entry:
    """One registered model, component or dataset.

    ``target`` is ``"module:attr"``; it is imported by :meth:`load` only.
    """

    kind: str
    name: str
    target: str
    plugin: str
    description: str = ""
    family: str = ""
    data_kind: str = ""

    def load(self) -> Any:
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # the plugin's code is broken, not the user's input
            raise NotRegisteredError(
                f"{self.kind} '{self.name}' from {self.plugin} cannot be loaded "
                f"({self.target}): {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def model_traits(self) -> dict[str, Any]:
        """``likelihood`` (the class's declaration, e.g. ``"bound"`` or ``"exact (vector), bound (image)"``)
        and ``conditional``, read from the model class (imports it); ``error`` if it cannot load."""
        try:
            cls = self.load()
            return {"likelihood": cls.likelihood_kind(), "conditional": bool(cls.conditional)}
        except NotRegisteredError as exc:
            return {"likelihood": "?", "conditional": False, "error": str(exc)}

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        if self.kind == "model":
            data.update(self.model_traits())
        else:
            data.pop("family")
        if self.kind != "dataset":
            data.pop("data_kind")
        return data


@attrs.define
class PluginInfo:
    """A plugin as found: its distribution, version, what it registers, its error."""

    name: str
    version: str
    module: str
    api: int | None = None
    registers: list[str] = attrs.field(factory=list)
    error: str | None = None
    #: names this plugin claimed that another plugin claims too (refused for both)
    conflicts: list[str] = attrs.field(factory=list)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Registry:
    """Named models, components and datasets contributed by plugins.

    ``Registry()`` reads the installed entry points on first use;
    ``Registry(plugins=[...])`` takes plugin modules directly (used by tests and
    by programs that embed gmkit without installing a distribution).
    """

    def __init__(self, plugins: Iterable[ModuleType | tuple[str, ModuleType]] | None = None):
        self._explicit = list(plugins) if plugins is not None else None
        self._loaded = False
        self._plugins: dict[str, PluginInfo] = {}
        self._entries: dict[tuple[str, str], Entry] = {}
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self._pm = pluggy.PluginManager("gmkit")
        self._pm.add_hookspecs(hookspecs)

    # -- loading ---------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._explicit is not None:
            for item in self._explicit:
                name, module = item if isinstance(item, tuple) else (item.__name__, item)
                self._add(PluginInfo(name, "0", module.__name__), _returning(module))
            return
        eps = sorted(metadata.entry_points(group=GROUP), key=lambda ep: (ep.name != "gmkit-core", ep.name))
        for ep in eps:
            dist = ep.dist
            self._add(PluginInfo(dist.name if dist else ep.name, dist.version if dist else "?", ep.value), ep.load)

    def add_plugin(self, module: ModuleType, name: str | None = None, version: str = "0") -> PluginInfo:
        """Register a plugin module by hand (after the installed ones)."""
        self._ensure_loaded()
        return self._add(PluginInfo(name or module.__name__, version, module.__name__), lambda: module)

    def _add(self, info: PluginInfo, load: Callable[[], ModuleType]) -> PluginInfo:
        self._plugins[info.name] = info
        try:
            module = load()
        except Exception as exc:
            info.error = f"import failed: {type(exc).__name__}: {exc}"
            return info
        info.api = getattr(module, "GMKIT_API", None)
        if info.api != API_VERSION:
            info.error = (
                f"targets gmkit core API {info.api}, this gmkit-core provides API {API_VERSION}; "
                f"upgrade {info.name} or gmkit-core"
            )
            return info
        try:
            self._pm.register(module, name=info.name)
            self._pm.check_pending()
        except Exception as exc:
            if self._pm.is_registered(module):
                self._pm.unregister(module)
            info.error = f"invalid hooks: {exc}"
            return info
        staged: list[Entry] = []
        others = [m for m in self._pm.get_plugins() if m is not module]
        try:
            for hook, register in zip(
                HOOKS,
                (
                    self._model_register(info, staged),
                    self._component_register(info, staged),
                    self._dataset_register(info, staged),
                ),
                strict=True,
            ):
                # this plugin's implementation only, through the hook caller (hookimpl options apply)
                self._pm.subset_hook_caller(hook, remove_plugins=others)(register=register)
        except Exception as exc:
            self._pm.unregister(module)
            info.error = f"registration failed: {type(exc).__name__}: {exc}"
            return info
        for entry in staged:
            self._add_entry(info, entry)
        return info

    def _add_entry(self, info: PluginInfo, entry: Entry) -> None:
        key = (entry.kind, entry.name)
        if key in self._conflicts:
            self._conflicts[key].append(info.name)
        elif key in self._entries:
            holder = self._entries.pop(key)
            self._conflicts[key] = [holder.plugin, info.name]
            first = self._plugins[holder.plugin]
            first.registers.remove(f"{entry.kind}:{entry.name}")
            first.conflicts.append(f"{entry.kind}:{entry.name}")
        else:
            self._entries[key] = entry
            info.registers.append(f"{entry.kind}:{entry.name}")
            return
        info.conflicts.append(f"{entry.kind}:{entry.name}")

    @staticmethod
    def _claim(info: PluginInfo, staged: list[Entry], entry: Entry) -> None:
        if entry.kind not in KINDS:
            raise ValueError(f"unknown kind '{entry.kind}'; kinds: {', '.join(KINDS)}")
        if ":" not in entry.target:
            raise ValueError(f"target of {entry.kind} '{entry.name}' must be 'module:attr', got '{entry.target}'")
        if any((e.kind, e.name) == (entry.kind, entry.name) for e in staged):
            raise ValueError(f"{entry.kind} '{entry.name}' is registered twice by {info.name}")
        staged.append(entry)

    def _model_register(self, info: PluginInfo, staged: list[Entry]) -> Callable[..., None]:
        def register(name: str, target: str, *, family: str = "", description: str = "") -> None:
            self._claim(info, staged, Entry("model", name, target, info.name, description, family))

        return register

    def _component_register(self, info: PluginInfo, staged: list[Entry]) -> Callable[..., None]:
        def register(kind: str, name: str, target: str, *, description: str = "") -> None:
            if kind in ("model", "dataset"):
                raise ValueError(f"register {kind}s through gmkit_register_{kind}s")
            self._claim(info, staged, Entry(kind, name, target, info.name, description))

        return register

    def _dataset_register(self, info: PluginInfo, staged: list[Entry]) -> Callable[..., None]:
        def register(name: str, target: str, *, description: str = "", kind: str = "image") -> None:
            self._claim(info, staged, Entry("dataset", name, target, info.name, description, data_kind=kind))

        return register

    def add_commands(self, cli: Any) -> None:
        """Let each loaded plugin add click commands to ``cli``, through the hook caller, one plugin at a time.

        A plugin whose hook raises is marked with the error; the CLI keeps working.
        """
        self._ensure_loaded()
        modules = self._pm.get_plugins()
        for module in modules:
            info = self._plugins.get(self._pm.get_name(module) or "")
            if info is None or info.error:
                continue
            caller = self._pm.subset_hook_caller(
                "gmkit_register_commands", remove_plugins=[m for m in modules if m is not module]
            )
            try:
                caller(cli=cli)
            except Exception as exc:  # a broken plugin must not take the CLI down
                info.error = f"command registration failed: {type(exc).__name__}: {exc}"

    # -- queries ---------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        self._ensure_loaded()
        return list(self._plugins.values())

    def entries(self, kind: str) -> list[Entry]:
        self._check_kind(kind)
        self._ensure_loaded()
        return sorted((e for e in self._entries.values() if e.kind == kind), key=lambda e: e.name)

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries(kind)]

    def entry(self, kind: str, name: str) -> Entry:
        self._check_kind(kind)
        self._ensure_loaded()
        found = self._entries.get((kind, name))
        if found is not None:
            return found
        claimants = self._conflicts.get((kind, name))
        if claimants:
            raise NotRegisteredError(
                f"{kind} '{name}' is registered by both {' and '.join(claimants)}, so neither is used; "
                f"uninstall one of them (pip uninstall {claimants[-1]})"
            )
        message = f"no {kind} named '{name}'; available: {', '.join(self.names(kind)) or 'none installed'}"
        failed = [p for p in self._plugins.values() if p.error]
        if failed:
            reasons = "; ".join(f"{p.name}: {p.error}" for p in failed)
            raise NotRegisteredError(f"{message}. Plugins that failed to load and may provide it: {reasons}")
        raise NotRegisteredError(
            f"{message} (a plugin that provides it may not be installed; gmkit plugins lists what is)"
        )

    def get(self, kind: str, name: str, /, **cfg: Any) -> Any:
        """Build a registered model or component with validated options.

        Models take ``data=`` (a :class:`~gmkit_core.data.DataSpec`) and config
        fields of their attrs ``Config``; components take their keyword arguments.
        """
        target = self.entry(kind, name).load()
        if kind == "model":
            if "data" not in cfg:
                raise ConfigError(f"model '{name}' needs data=DataSpec")
            data = cfg.pop("data")
            return target(target.configure(data, cfg, owner=f"model '{name}'"), data)
        return call_checked(target, cfg, owner=f"{kind} '{name}'")

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown kind '{kind}'; kinds: {', '.join(KINDS)}")


def _returning(module: ModuleType) -> Callable[[], ModuleType]:
    return lambda: module


def call_checked(target: Callable[..., Any], kwargs: dict[str, Any], owner: str) -> Any:
    """Call ``target(**kwargs)``, turning unknown or missing keywords into a ConfigError."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return target(**kwargs)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        allowed = ", ".join(p for p in signature.parameters if p != "self")
        raise ConfigError(f"{owner}: {exc}; options: {allowed}") from None
    return target(**kwargs)


registry = Registry()
