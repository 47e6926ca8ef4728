"""The gmkit conformance kit for every registered flow model, on images and on vectors."""

from __future__ import annotations

import pytest

SMALL = {
    "realnvp": {"scales": 2, "steps": 1, "hidden": 8, "depth": 1},
    "glow": {"levels": 2, "steps": 1, "hidden": 8, "blocks": 1},
    "maf": {"layers": 2, "hidden": 16},
    "nsf": {"layers": 1, "hidden": 8, "bins": 4},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_conformance_on_digits(gmkit_check, name: str) -> None:  # noqa: ANN001
    report = gmkit_check(name, data="digits", nll_samples=2, **SMALL[name])
    assert "save_load" in report.passed


def test_conformance_variational_dequantization(gmkit_check) -> None:  # noqa: ANN001
    gmkit_check("maf", data="digits", dequantization="variational", dequantizer_hidden=4, **SMALL["maf"])


@pytest.mark.parametrize("name", ["realnvp", "maf", "nsf"])
def test_conformance_on_vectors(gmkit_check, name: str) -> None:  # noqa: ANN001
    options = {k: v for k, v in SMALL[name].items() if k != "scales"}
    gmkit_check(name, data="moons", **options)


@pytest.mark.parametrize("prior", ["maf", "nsf", "realnvp"])
def test_vae_with_a_flow_prior_through_the_registry(gmkit_check, prior: str) -> None:  # noqa: ANN001
    from gmkit_core.registry import registry

    if "vae" not in registry.names("model"):
        pytest.skip("gmkit-vae is not installed")
    gmkit_check("vae", data="digits", prior=prior, latent_dim=4, hidden=(32,), iwae_k=4, iwae_chunk=4)
