"""Stage 2: fitting a prior over code maps through the registry, with a local loop and the core trainer."""

from __future__ import annotations

import math
import sys
import types
from typing import Any, ClassVar

import attrs
import gmkit_vqvae.model as vq_model
import pytest
import torch

import gmkit_core as gm
from gmkit_core.data import Batch, Dataset, load
from gmkit_core.distributions import Categorical, sample_categorical
from gmkit_core.interfaces import GenerativeModel
from gmkit_core.registry import Registry

SMALL = dict(hidden=16, res_blocks=1, codebook_size=8, code_dim=4, downsample=2)


@attrs.frozen
class _IndependentConfig:
    scale: float = attrs.field(default=1.0, metadata={"help": "initial logit scale"})


class IndependentCodes(GenerativeModel):
    """A stand-in code prior: an independent categorical per position (exact likelihood)."""

    Config = _IndependentConfig
    likelihood: ClassVar[str] = "exact"
    train_defaults: ClassVar[dict[str, Any]] = {"steps": 5, "batch_size": 32, "lr": 0.1}

    def __init__(self, config: _IndependentConfig, data: Any):
        super().__init__(config, data)
        self.logits = torch.nn.Parameter(config.scale * torch.zeros(*data.shape, data.levels))

    def nll(self, batch: Batch) -> torch.Tensor:
        return -Categorical(self.logits.expand(*batch.x.shape, -1)).log_prob(batch.x)

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": self.nll(batch).mean()}

    def sample(self, n: int, *, condition: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_categorical(self.logits.expand(n, *self.logits.shape), generator)


@pytest.fixture
def prior_registry(monkeypatch):
    """A registry holding the core plugin and one holding the stand-in prior ``independent``."""
    plugin = types.ModuleType("vqvae_test_prior_plugin")
    plugin.GMKIT_API = 2
    plugin.IndependentCodes = IndependentCodes

    @gm.hookimpl
    def gmkit_register_models(register):  # type: ignore[no-untyped-def]
        register("independent", "vqvae_test_prior_plugin:IndependentCodes")

    plugin.gmkit_register_models = gmkit_register_models
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    import gmkit_core.builtin as core_plugin

    reg = Registry(plugins=[core_plugin, plugin])
    monkeypatch.setattr(vq_model, "registry", reg)
    return reg


@pytest.fixture(scope="module")
def splits():
    return {s: load("digits", s) for s in ("train", "validation")}


def _local_fit(model: GenerativeModel, data: dict[str, Dataset], steps: int = 60, lr: float = 0.1) -> GenerativeModel:
    """The smallest trainer: Adam on the mean loss of the whole training split."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batch = data["train"].batch(slice(None))
    for _ in range(steps):
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    return model


def test_finish_fits_the_prior_on_code_maps_and_uses_it(prior_registry, splits):
    torch.manual_seed(0)
    model = gm.registry.get(
        "model", "vqvae", data=splits["train"].spec, prior="independent", prior_train=("steps=30", "lr=0.2"), **SMALL
    )
    model.prepare(splits["train"])
    model.eval()
    test = load("digits", "test")
    before = model.evaluate(test)
    assert before["prior"] == "uniform" and before["code_nats"] == pytest.approx(16 * math.log(8))
    seen: dict[str, Any] = {}

    def fit(prior, data, **overrides):
        seen.update(overrides, splits=sorted(data), spec=data["train"].spec, n=len(data["train"]))
        return _local_fit(prior, data, **overrides)

    model.finish(splits, fit)
    assert seen["steps"] == 30 and seen["lr"] == 0.2  # prior_train strings arrive as numbers
    assert seen["splits"] == ["train", "validation"] and seen["n"] == 1000
    assert seen["spec"].shape == (1, 4, 4) and seen["spec"].levels == 8
    assert int(model.prior_fitted) == 1
    after = model.evaluate(test)
    assert after["prior"] == "independent (fitted)"
    assert after["recon_nats"] == pytest.approx(before["recon_nats"])
    assert after["code_nats"] < before["code_nats"]  # a fitted prior beats log K per code on held-out maps
    x = test.x[:5]
    codes = model.encode_codes(x)
    expected = -model.decode(codes).log_prob(x) + model.prior_model.nll(Batch(codes.unsqueeze(1)))
    assert torch.allclose(model.nll(Batch(x)), expected)
    # samples decode the prior's codes: the same generator stream gives the same codes
    g = torch.Generator().manual_seed(3)
    codes = model.prior_model.sample(6, generator=g).squeeze(1)
    expected = model.decode(codes).sample(g)
    assert torch.equal(model.sample(6, generator=torch.Generator().manual_seed(3)), expected)


def test_finish_with_the_core_trainer_keeps_prior_in_the_state(prior_registry, splits):
    from gmkit_core.training import TrainConfig, nested_fit

    torch.manual_seed(0)
    model = gm.registry.get(
        "model", "vqvae", data=splits["train"].spec, prior="independent", prior_train=("steps=20",), **SMALL
    )
    model.finish(splits, nested_fit(TrainConfig(quiet=True, device="cpu", eval_every=10)))
    state = model.state_dict()
    assert "prior_model.logits" in state and int(state["prior_fitted"]) == 1
    assert float(state["prior_model.logits"].abs().sum()) > 0


def test_uniform_prior_has_no_stage_two(splits):
    model = gm.registry.get("model", "vqvae", data=splits["train"].spec, prior="uniform", **SMALL)
    model.finish(splits, lambda *a, **k: pytest.fail("fit must not be called"))
    assert model.prior_model is None and int(model.prior_fitted) == 0


def test_prior_without_likelihood_or_with_labels_is_refused(prior_registry, monkeypatch, splits):
    """The check reads the prior's class declarations (likelihood_kind, conditional), not the registration."""
    monkeypatch.setattr(IndependentCodes, "likelihood", "none")
    with pytest.raises(gm.ConfigError, match="likelihood"):
        gm.registry.get("model", "vqvae", data=splits["train"].spec, prior="independent", **SMALL)
    monkeypatch.setattr(IndependentCodes, "likelihood", "exact")
    monkeypatch.setattr(IndependentCodes, "conditional", True)
    with pytest.raises(gm.ConfigError, match="unconditional"):
        gm.registry.get("model", "vqvae", data=splits["train"].spec, prior="independent", **SMALL)


@pytest.mark.skipif("pixelcnn" not in gm.registry.names("model"), reason="needs gmkit-pixelcnn")
def test_two_stage_run_with_pixelcnn_round_trips_through_a_run_file(tmp_path, splits):
    from gmkit_core.artifact import RunRecord, write_run
    from gmkit_core.artifact import load as load_run
    from gmkit_core.config import config_to_dict
    from gmkit_core.training import TrainConfig, nested_fit

    torch.manual_seed(0)
    model = gm.registry.get(
        "model",
        "vqvae",
        data=splits["train"].spec,
        prior="pixelcnn",
        prior_options=("hidden=8", "layers=2"),
        prior_train=("steps=5", "batch_size=32"),
        **SMALL,
    )
    model.finish(splits, nested_fit(TrainConfig(quiet=True, device="cpu", eval_every=5)))
    model.eval()
    assert int(model.prior_fitted) == 1 and type(model.prior_model).__name__ != "UniformCodes"
    x = splits["validation"].x[:4]
    codes = model.encode_codes(x)
    assert torch.allclose(
        model.nll(Batch(x)), -model.decode(codes).log_prob(x) + model.prior_model.nll(Batch(codes.unsqueeze(1)))
    )
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path = tmp_path / "vq.h5"
    write_run(
        path,
        RunRecord(
            model="vqvae",
            plugin="gmkit-vqvae",
            plugin_version="0.1.0",
            config_class="gmkit_vqvae.model.VQVAEConfig",
            config=config_to_dict(model.config),
            train_config={},
            data={"source": "digits", "spec": splits["train"].spec.to_json()},
            best=state,
        ),
    )
    other = load_run(path).model
    assert int(other.prior_fitted) == 1
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 8, 8) and a.dtype == torch.int64
    assert torch.equal(a, other.sample(3, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(model.nll(Batch(x)), other.nll(Batch(x)))
