"""Shared test settings: float64 math tests use ``torch.float64`` explicitly; Hypothesis kept small."""

from hypothesis import HealthCheck, settings

settings.register_profile("gmkit", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("gmkit")
