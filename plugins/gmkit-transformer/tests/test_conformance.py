"""The conformance kit for every model of the plugin."""

import pytest

from gmkit_core.testing import check_model

SMALL = {
    "transformer": {"dim": 16, "layers": 1, "heads": 2},
    "ctransformer": {"dim": 16, "layers": 1, "heads": 2, "positions": "sinusoidal"},
    "latent": {
        "stage1_options": ("latent_dim=2", "hidden=32"),
        "stage2_options": ("layers=1", "hidden=16"),
        "iwae_k": 4,
    },
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_conformance(name):
    report = check_model(name, data="digits", **SMALL[name])
    assert report.passed == ["build", "loss", "samples", "nll", "seed", "save_load", "devices"]


def test_conformance_latent_over_vq_codes():
    check_model(
        "latent",
        data="digits",
        stage1_model="vqvae",
        stage1_options=("prior=uniform", "hidden=8", "codebook_size=8"),
        stage2_options=("dim=8", "layers=1", "heads=2"),
    )
