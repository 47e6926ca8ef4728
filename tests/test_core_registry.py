"""The plugin registry: discovery through entry points, isolation of failures, lookups."""

import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

from gmkit_core import hookimpl
from gmkit_core.errors import ConfigError, NotRegisteredError
from gmkit_core.registry import Registry


def _module(name, api=2, **hooks):
    m = types.ModuleType(name)
    m.GMKIT_API = api
    for hook, fn in hooks.items():
        setattr(m, hook, hookimpl(fn))
    return m


def _models(*names):
    def gmkit_register_models(register):
        for n in names:
            register(n, "gmkit_example.model:Independent", family="t")

    return gmkit_register_models


def test_registers_and_builds_with_validated_config():
    reg = Registry(plugins=[("good", _module("good", gmkit_register_models=_models("m1")))])
    assert reg.names("model") == ["m1"]
    entry = reg.entry("model", "m1")
    assert entry.plugin == "good"
    assert entry.model_traits() == {"likelihood": "exact", "conditional": False}  # declared by the class
    from gmkit_core.data import DataSpec

    spec = DataSpec("toy", "vector", (2,))
    model = reg.get("model", "m1", data=spec, smoothing="2.5")
    assert model.config.smoothing == 2.5
    with pytest.raises(ConfigError, match="no option 'nope'.*init_from_data, smoothing"):
        reg.get("model", "m1", data=spec, nope=1)
    with pytest.raises(ConfigError, match="smoothing"):
        reg.get("model", "m1", data=spec, smoothing=-1.0)


def test_failures_are_isolated_and_named():
    def raising(register):
        raise RuntimeError("boom")

    dup = _module("dup", gmkit_register_models=_models("m1", "d2"))
    bad_api = _module("old", api=0, gmkit_register_models=_models("m2"))
    unknown_hook = _module("typo")
    unknown_hook.gmkit_register_modles = hookimpl(lambda register: None)
    reg = Registry(
        plugins=[
            ("good", _module("good", gmkit_register_models=_models("m1"))),
            ("dup", dup),
            ("old", bad_api),
            ("typo", unknown_hook),
            ("raising", _module("raising", gmkit_register_models=raising)),
            ("after", _module("after", gmkit_register_models=_models("m3"))),
        ]
    )
    errors = {p.name: p.error for p in reg.plugins()}
    assert errors["good"] is None and errors["after"] is None and errors["dup"] is None
    assert "targets gmkit core API 0" in errors["old"]
    assert "gmkit_register_modles" in errors["typo"]
    assert "boom" in errors["raising"]
    # a name claimed twice is refused for both, naming both; the claimants' other names keep working
    assert reg.names("model") == ["d2", "m3"]
    with pytest.raises(NotRegisteredError, match="registered by both good and dup"):
        reg.entry("model", "m1")
    conflicts = {p.name: p.conflicts for p in reg.plugins()}
    assert conflicts["good"] == conflicts["dup"] == ["model:m1"]
    registers = {p.name: p.registers for p in reg.plugins()}
    assert registers["good"] == [] and registers["dup"] == ["model:d2"]


def test_an_intruder_cannot_take_a_name_from_a_plugin_with_several():
    reg = Registry(
        plugins=[
            ("gmkit-vae", _module("v", gmkit_register_models=_models("vae", "cvae", "hvae"))),
            ("gmkit-intruder", _module("i", gmkit_register_models=_models("vae"))),
        ]
    )
    assert reg.names("model") == ["cvae", "hvae"]
    with pytest.raises(NotRegisteredError, match="'vae' is registered by both gmkit-vae and gmkit-intruder"):
        reg.get("model", "vae")


def test_missing_names_list_what_exists_and_failed_plugins():
    reg = Registry(plugins=[])
    with pytest.raises(NotRegisteredError, match="no model named 'zzz'; available: none installed.*gmkit plugins"):
        reg.entry("model", "zzz")
    with pytest.raises(ConfigError, match="unknown kind"):
        reg.names("widget")
    broken = Registry(plugins=[("gmkit-vae", _module("v", api=1, gmkit_register_models=_models("vae")))])
    with pytest.raises(
        NotRegisteredError, match="failed to load and may provide it: gmkit-vae: targets gmkit core API 1"
    ):
        broken.entry("model", "vae")


def test_hooks_go_through_the_hook_caller():
    """A hookwrapper (a hookimpl option) sees the call: hooks are not called by getattr."""
    seen = []

    def gmkit_register_models(register):
        seen.append("wrapper before")
        yield
        seen.append("wrapper after")

    module = types.ModuleType("w")
    module.GMKIT_API = 2
    module.gmkit_register_models = hookimpl(hookwrapper=True)(gmkit_register_models)
    module.plain = None
    Registry(plugins=[("w", module)]).names("model")
    assert seen == ["wrapper before", "wrapper after"]


def test_component_keywords_are_checked():
    import gmkit_core.builtin

    reg = Registry(plugins=[("core", gmkit_core.builtin)])
    prior = reg.get("prior", "standard_normal", shape=3)
    assert prior.shape == (3,)
    with pytest.raises(ConfigError, match="prior 'standard_normal'.*options: shape"):
        reg.get("prior", "standard_normal", dim=3)


def _fake_dist(site, dist, module, body):
    (site / f"{module}.py").write_text(textwrap.dedent(body))
    info = site / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[gmkit.plugins]\n{dist} = {module}\n")


def test_entry_point_discovery_isolation_and_version_mismatch(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _fake_dist(site, "gmkit-broken", "gmkit_broken_plugin", "raise ImportError('missing dependency frob')\n")
    _fake_dist(site, "gmkit-future", "gmkit_future_plugin", "GMKIT_API = 99\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-m", "gmkit_core.cli", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert "missing dependency frob" in plugins["gmkit-broken"]["error"]
    assert "targets gmkit core API 99" in plugins["gmkit-future"]["error"]
    assert plugins["gmkit-core"]["error"] is None
    assert plugins["gmkit-example"]["error"] is None and "model:independent" in plugins["gmkit-example"]["registers"]
    models = json.loads(
        subprocess.run(
            [sys.executable, "-m", "gmkit_core.cli", "models", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert "independent" in [m["name"] for m in models]
