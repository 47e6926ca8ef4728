"""pytest plugin (entry point ``pytest11``): the ``gmkit_check`` fixture and ``--gmkit-device``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gmkit-device", default="cpu", help="device for gmkit conformance checks (default: cpu)")


@pytest.fixture
def gmkit_check(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``gmkit_check("model", data=..., **options)``: the conformance kit on the chosen device."""
    from . import check_model

    device = request.config.getoption("--gmkit-device")

    def check(model: Any, data: str = "digits", **options: Any) -> Any:
        return check_model(model, data=data, device=device, **options)

    return check
