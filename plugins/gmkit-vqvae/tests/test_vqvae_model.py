"""The VQ-VAE model: its bound against brute force, losses, evaluation keys, errors, conformance."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_vqvae.code_prior import UniformCodes
from gmkit_vqvae.likelihoods import DECODERS, DecodedImage

import gmkit_core as gm
from gmkit_core.data import Batch, DataSpec, load
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError, DataError, NotRegisteredError
from gmkit_core.heads import make_head
from gmkit_core.interfaces import likelihood_of
from gmkit_core.testing import check_model

SMALL = dict(hidden=16, res_blocks=1, codebook_size=8, code_dim=4, downsample=2, prior="uniform")


@pytest.fixture(scope="module")
def digits():
    return load("digits", "train")


def _model(**options):
    torch.manual_seed(0)
    return gm.registry.get(
        "model", "vqvae", data=DataSpec("digits", "image", (1, 8, 8), levels=17), **{**SMALL, **options}
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"codebook_update": "loss", "decoder": "categorical"},
        {"decoder": "mse"},
        {"decoder": "logistic", "downsample": 8},
    ],
)
def test_conformance(options):
    check_model("vqvae", data="digits", n_train=32, **{**SMALL, **options})


@pytest.mark.skipif("pixelcnn" not in gm.registry.names("model"), reason="needs gmkit-pixelcnn")
def test_conformance_with_a_pixelcnn_prior_submodule():
    check_model(
        "vqvae", data="digits", n_train=32, **{**SMALL, "prior": "pixelcnn", "prior_options": ("hidden=8", "layers=2")}
    )


@pytest.mark.parametrize("decoder", ["categorical", "logistic_mixture"])
def test_nll_is_an_upper_bound_on_the_brute_force_marginal(digits, decoder):
    # one latent position (downsample 8) and K = 3 codes: p(x) = sum_k p(k) p(x | e_k) is exact
    model = _model(decoder=decoder, downsample=8, codebook_size=3).double().eval()
    x = digits.x[:6]
    with torch.no_grad():
        per_code = torch.stack([model.decode(torch.full((6, 1, 1), k)).log_prob(x) for k in range(3)], -1)  # (6, 3)
        exact = -torch.logsumexp(per_code - math.log(3), -1)
        bound = model.nll(Batch(x))
        k = model.encode_codes(x).reshape(6)
    assert torch.all(bound >= exact - 1e-9)
    assert torch.allclose(bound, -per_code.gather(1, k[:, None]).squeeze(1) + math.log(3))


def test_nll_is_reconstruction_plus_uniform_code_cost(digits):
    model = _model().eval()
    x = digits.x[:10]
    with torch.no_grad():
        codes = model.encode_codes(x)
        recon = -model.decode(codes).log_prob(x)
        assert torch.allclose(model.nll(Batch(x)), recon + 16 * math.log(8))
        metrics = model.evaluate(load("digits", "test"))
    assert metrics["code_nats"] == pytest.approx(16 * math.log(8))
    assert metrics["nll_nats"] == pytest.approx(metrics["recon_nats"] + metrics["code_nats"])
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nll_nats"] / (64 * math.log(2)))
    assert metrics["exact"] is False and metrics["prior"] == "uniform"
    assert 0 < metrics["codebook_usage"] <= 1 and 1 <= metrics["perplexity"] <= 8


@pytest.mark.parametrize("update", ["ema", "loss"])
@pytest.mark.parametrize("beta", [0.25, 2.0])
def test_loss_combines_reconstruction_codebook_and_commitment(digits, update, beta):
    model = _model(codebook_update=update, beta=beta).train()
    batch = Batch(digits.x[:16])
    out = model.loss(batch)
    codebook = out["codebook"] if update == "loss" else 0.0
    assert ("codebook" in out) == (update == "loss")
    assert torch.allclose(out["loss"], out["recon"] + beta * out["commitment"] + codebook)
    assert {"perplexity", "usage"} <= set(out)
    if update == "ema":  # no gradient reaches an EMA codebook; the encoder gets the commitment gradient
        assert not any("codebook" in n for n, _ in model.named_parameters())


def test_evaluate_counts_codes_over_the_whole_split(digits):
    model = _model().eval()
    data = load("digits", "validation")
    with torch.no_grad():
        counts = torch.bincount(model.encode_codes(data.x).flatten(), minlength=8)
    metrics = model.evaluate(data, batch_size=64)
    assert metrics["codebook_usage"] == pytest.approx(float((counts > 0).double().mean()))
    p = counts.double() / counts.sum()
    entropy = -float((p[p > 0] * p[p > 0].log()).sum())
    assert metrics["perplexity"] == pytest.approx(math.exp(entropy))


def test_squared_error_decoder_reports_no_bound(digits):
    model = _model(decoder="mse").eval()
    assert type(model).likelihood_kind(model.data, model.config) == "none" and likelihood_of(model) == "none"
    assert "likelihood" not in model.__dict__  # declared by the class, not set on the instance
    metrics = model.evaluate(load("digits", "validation"))
    assert not {"nll_nats", "bits_per_dim", "recon_nats", "code_nats"} & set(metrics)
    assert "no likelihood bound" in metrics["note"]
    assert {"perplexity", "codebook_usage", "squared_error"} <= set(metrics)
    with pytest.raises(NotImplementedError, match="squared-error"):
        model.nll(Batch(digits.x[:2]))
    out = model.train().loss(Batch(digits.x[:4]))
    assert torch.allclose(out["loss"], out["recon"] + 0.25 * out["commitment"])


@pytest.mark.parametrize("kind", [k for k in DECODERS if k != "mse"])
def test_decoder_likelihoods_are_normalised_and_mode_is_the_argmax(kind):
    """Parameters (B, C P, H, W), channel c's P contiguous, read by the core head of that name."""
    torch.manual_seed(0)
    head = make_head(kind, 5, mixtures=3)
    params = torch.randn(3, 2 * head.params, 2, 2, dtype=torch.float64)
    decoded = DecodedImage(head, params, levels=5)
    by_channel = params.reshape(3, 2, head.params, 2, 2).permute(0, 1, 3, 4, 2)  # (B, C, H, W, P) by hand
    per_pixel = head.build(by_channel, 0)
    levels = torch.stack([per_pixel.log_prob(torch.full((3, 2, 2, 2), k)) for k in range(5)], -1)  # (3, 2, 2, 2, 5)
    assert torch.allclose(levels.logsumexp(-1), torch.zeros_like(levels[..., 0]), atol=1e-9)
    assert torch.equal(decoded.mode(), levels.argmax(-1))
    x = decoded.mode()
    assert torch.allclose(decoded.log_prob(x), levels.max(-1).values.sum((1, 2, 3)))
    s = decoded.sample(torch.Generator().manual_seed(0))
    assert s.shape == (3, 2, 2, 2) and s.dtype == torch.int64 and int(s.min()) >= 0 and int(s.max()) < 5


def test_uniform_code_prior():
    prior = UniformCodes((2, 3), levels=7)
    z = prior.sample(5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 2, 3) and z.dtype == torch.int64 and int(z.min()) >= 0 and int(z.max()) < 7
    assert torch.allclose(prior.log_prob(z), torch.full((5,), -6 * math.log(7)))
    assert torch.equal(z, prior.sample(5, generator=torch.Generator().manual_seed(0)))
    assert gm.registry.entry("prior", "uniform_codes").load() is UniformCodes


def test_user_errors_are_one_line():
    with pytest.raises(DataError, match="vqvae models images"):
        gm.registry.get("model", "vqvae", data=load("moons").spec, prior="uniform")
    with pytest.raises(ConfigError, match="decoder"):
        _model(decoder="gaussian")
    with pytest.raises(ConfigError, match="downsample"):
        gm.registry.get(
            "model", "vqvae", data=DataSpec("odd", "image", (1, 6, 6), levels=4), prior="uniform", downsample=4
        )
    with pytest.raises(ConfigError, match="key=value"):
        _model(prior_options=("layers",))


def test_missing_pixelcnn_names_the_plugin(monkeypatch):
    import gmkit_vqvae.model as vq_model

    import gmkit_core.builtin as core_plugin
    from gmkit_core.registry import Registry

    monkeypatch.setattr(vq_model, "registry", Registry(plugins=[core_plugin]))  # as if gmkit-pixelcnn were absent
    with pytest.raises(
        NotRegisteredError,
        match=r"install the plugin gmkit-pixelcnn \(pip install gmkit-pixelcnn\), or set prior=uniform",
    ):
        gm.registry.get("model", "vqvae", data=load("digits").spec)


def test_prepare_seeds_codebook_with_encoder_outputs(digits):
    model = _model()
    model.prepare(digits)
    with torch.no_grad():
        z_e = model.encoder(to_unit_interval(digits.x, 17)).permute(0, 2, 3, 1).reshape(-1, 4)
    matches = (model.quantizer.codebook.unsqueeze(1) == z_e.unsqueeze(0)).all(-1).any(-1)
    assert bool(matches.all())
