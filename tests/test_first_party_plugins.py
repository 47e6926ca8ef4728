"""Every first-party plugin in this repository is installed and loads cleanly: a broken one fails the tests.

(Cross-plugin tests skip what is not installed, so without this a plugin that
failed to import would only show up as skips.)
"""

import sys
from pathlib import Path

import pytest

from gmkit_core.registry import registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = sorted(
    tomllib.loads(p.read_text())["project"]["name"]
    for p in [*ROOT.glob("plugins/gmkit-*/pyproject.toml"), ROOT / "tests/example_plugin/pyproject.toml"]
)


def test_the_repository_has_plugins():
    assert len(FIRST_PARTY) >= 7


@pytest.mark.parametrize("name", ["gmkit-core", *FIRST_PARTY])
def test_plugin_loads_and_registers(name):
    found = {p.name: p for p in registry.plugins()}
    assert name in found, f"{name} is not installed (pip install -e plugins/{name})"
    info = found[name]
    assert info.error is None, f"{name} failed to load: {info.error}"
    assert info.registers, f"{name} registers nothing"
    assert not info.conflicts, f"{name} claims names another plugin claims too: {info.conflicts}"
