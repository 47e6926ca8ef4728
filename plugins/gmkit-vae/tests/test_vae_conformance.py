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


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["gmm", "maf"])
@pytest.mark.parametrize("name", ["vae", "hvae"])
def test_conformance_with_priors_from_other_plugins(name: str, prior: str, gmkit_check) -> None:  # type: ignore[no-untyped-def]
    from gmkit_core.registry import registry

    if prior not in registry.names("prior"):
        pytest.skip(f"prior '{prior}' is not installed")
    gmkit_check(name, data="digits", prior=prior, **SMALL)


@pytest.mark.parametrize("name", ["vae", "cvae", "hvae"])
def test_latent_gmm_sampler_drives_encode_and_decode(name: str) -> None:
    import torch

    from gmkit_core.data import Dataset, load
    from gmkit_core.registry import registry

    if "gmm" not in registry.names("sampler"):
        pytest.skip("the gmm sampler is not installed")
    train = load("digits", "train")
    small = Dataset(train.x[:100], train.y[:100], train.spec, "train")
    torch.manual_seed(0)
    model = registry.get("model", name, data=train.spec, **SMALL)
    sampler = registry.get("sampler", "gmm", components=2)
    labels = torch.arange(6) % 10 if model.conditional else None
    x = sampler(model, 6, condition=labels, generator=torch.Generator().manual_seed(0), data=small)
    assert x.shape == (6, 1, 8, 8) and x.dtype == torch.int64
