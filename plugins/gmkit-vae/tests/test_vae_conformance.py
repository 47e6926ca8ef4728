"""The core's conformance kit on every registered VAE variant (``pytest --gmkit-device cuda`` for GPUs)."""

from __future__ import annotations

import pytest

SMALL = {"latent_dim": 4, "hidden": (32,), "iwae_k": 4, "iwae_chunk": 2}


@pytest.mark.parametrize("name", ["vae", "beta_vae", "cvae", "iwae", "hvae"])
def test_conformance(name: str, gmkit_check) -> None:  # type: ignore[no-untyped-def]
    gmkit_check(name, data="digits", **SMALL)


@pytest.mark.parametrize("name", ["vae", "hvae"])
def test_conformance_on_vectors(name: str, gmkit_check) -> None:  # type: ignore[no-untyped-def]
    gmkit_check(name, data="moons", **SMALL)
