"""The core's conformance kit (its no-likelihood path) on gan and cgan (``pytest --gmkit-device cuda`` for GPUs)."""

from __future__ import annotations

import pytest

SMALL = {"channels": 8, "features": 16, "latent_dim": 4, "hidden": (16,)}


@pytest.mark.parametrize("name", ["gan", "cgan"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"loss": "wgan_gp", "spectral_norm": True, "augment": "color,translation,cutout"},
        {"network": "mlp", "loss": "hinge", "r1_gamma": 0.0},
    ],
)
def test_conformance(name: str, options: dict, gmkit_check) -> None:  # type: ignore[no-untyped-def]
    report = gmkit_check(name, data="digits", **SMALL, **options)
    assert "nll" not in report.passed and "save_load" in report.passed


def test_conformance_on_vectors(gmkit_check) -> None:  # type: ignore[no-untyped-def]
    gmkit_check("gan", data="moons", **SMALL, loss="least_squares")
