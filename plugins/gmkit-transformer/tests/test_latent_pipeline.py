"""The latent model end to end: stage one from a run file, stage two in finish, one self-contained run file."""

import pytest
import torch

from gmkit_core import load
from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry
from gmkit_core.training import train


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory):
    out = tmp_path_factory.mktemp("stage1") / "vae.h5"
    train(
        "vae",
        "digits",
        out,
        steps=20,
        overrides={"latent_dim": 2, "hidden": (32,)},
        train_overrides={"threads": 1, "quiet": True, "eval_every": 0, "batch_size": 32},
        pictures=False,
    )
    return out


def test_run_file_holds_both_stages_and_the_provenance(stage_one, tmp_path):
    from gmkit_transformer.stages import sha256

    out = tmp_path / "latent.h5"
    result = train(
        "latent",
        "digits",
        out,
        steps=3,
        overrides={"stage1": str(stage_one), "stage2": "gmm", "stage2_options": ("components=3",), "iwae_k": 8},
        train_overrides={"threads": 1, "quiet": True, "eval_every": 0},
        pictures=False,
    )
    model = result.run.model
    assert bool(model.stage2_fitted)
    frozen = load(stage_one).model.state_dict()
    for key, value in frozen.items():  # stage one is the file's, untouched by this run
        assert torch.equal(model.stage1.state_dict()[key], value)
    digest = sha256(stage_one)
    before = load(out).evaluate(split="test")
    stage_one.rename(stage_one.with_suffix(".moved"))  # the run no longer needs the stage-one file
    try:
        run = load(out)
        after = run.evaluate(split="test")
    finally:
        stage_one.with_suffix(".moved").rename(stage_one)
    assert after["stage1"]["sha256"] == digest and after["stage1"]["model"] == "vae"
    assert after["stage2"] == {"model": "gmm", "likelihood": "exact", "fitted": True}
    assert after["nll_nats"] == pytest.approx(before["nll_nats"], rel=1e-9)
    assert after["nll_nats"] == pytest.approx(after["recon_nats"] - after["entropy_nats"] + after["latent_nats"])
    assert after["iwae_nll_nats"] <= after["nll_nats"] + 1.0
    x = run.sample(5, seed=1)
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.int64


def test_stage_two_must_accept_the_latents():
    spec = DataSpec("digits", "image", (1, 8, 8), levels=17)
    with pytest.raises(ConfigError, match="stage two 'transformer' does not model vectors"):
        registry.get("model", "latent", data=spec, stage2="transformer", stage1_options=("latent_dim=2",))


def test_a_missing_stage_one_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such run file"):
        train(
            "latent",
            "digits",
            tmp_path / "x.h5",
            steps=1,
            overrides={"stage1": str(tmp_path / "none.h5")},
            train_overrides={"threads": 1, "quiet": True},
            pictures=False,
        )


def test_a_stage_one_without_the_contract_is_refused():
    spec = DataSpec("digits", "image", (1, 8, 8), levels=17)
    with pytest.raises(ConfigError, match="does not keep the contract"):
        registry.get("model", "latent", data=spec, stage1_model="pixelcnn")


def test_the_latent_sampler_passes_options_to_stage_two():
    from gmkit_transformer.latent import LatentSampler

    spec = DataSpec("digits", "image", (1, 8, 8), levels=17)
    torch.manual_seed(0)
    model = registry.get(
        "model",
        "latent",
        data=spec,
        stage1_options=("latent_dim=2", "hidden=16"),
        stage2="ddpm",
        stage2_options=("network=mlp", "hidden=16", "depth=1", "T=20"),
    ).eval()
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    a = LatentSampler(sampler="ddim", steps=3)(model, 3, generator=g())
    b = LatentSampler(sampler="ddim", steps=3)(model, 3, generator=g())
    c = LatentSampler(guidance=1.0)(model, 3, generator=g())
    assert a.shape == c.shape == (3, 1, 8, 8) and a.dtype == torch.int64 and torch.equal(a, b)
    with pytest.raises(ConfigError, match="has no option 'bogus'"):
        LatentSampler(bogus=1)(model, 2, generator=g())
    with pytest.raises(ConfigError, match="needs a 'latent' model"):
        LatentSampler()(model.stage2, 2)
