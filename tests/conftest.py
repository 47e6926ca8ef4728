"""Shared test settings: float64 math tests use ``torch.float64`` explicitly; Hypothesis kept small."""

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "gmkit",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("gmkit")

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def test_models():
    """Registers the core's test models in the global registry."""
    import gmkit_testmodels

    from gmkit_core.registry import registry

    if "test_noisy" not in registry.names("model"):
        registry.add_plugin(gmkit_testmodels, name="gmkit-testmodels")
    return registry
