"""The DDPM model: the GenerativeModel contract (conformance kit) for every network, a bound
that is a valid upper bound on a tiny image space, networks, options and errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gmkit_core.data import Batch, DataSpec
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.registry import registry
from gmkit_core.testing import check_model

SMALL = {
    "unet": dict(network="unet", channels=8, mults=(1, 2), attention=(4,), blocks=1, heads=2),
    "dit": dict(network="dit", hidden=16, depth=1, heads=2, patch_size=2),
}


@pytest.mark.parametrize("name", ["unet", "dit"])
@pytest.mark.parametrize("prediction", ["levels", "eps"])
def test_conformance_on_digits(name, prediction):
    check_model("ddpm", data="digits", T=20, prediction=prediction, **SMALL[name])


def test_conformance_on_2d_toy():
    check_model("ddpm", data="checkerboard", T=20, hidden=16, depth=1)


def test_conformance_unconditional_v_prediction():
    check_model(
        "ddpm",
        data="digits",
        T=20,
        prediction="v",
        class_conditional=False,
        sampler="ddim",
        sample_steps=5,
        **SMALL["unet"],
    )


def _perturbed(model, scale=0.3):  # noqa: ANN001, ANN202
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model.eval()


@pytest.mark.parametrize("prediction", ["levels", "eps", "x0"])
def test_bound_is_a_valid_upper_bound_on_a_tiny_image_space(prediction):
    """sum_x exp(-bound(x)) <= sum_x p(x) = 1 over all 3^4 images of 1x2x2 pixels with 3 levels."""
    spec = DataSpec("tiny", "image", (1, 2, 2), levels=3)
    model = _perturbed(
        registry.get(
            "model", "ddpm", data=spec, prediction=prediction, T=100, channels=8, mults=(1,), attention=(), blocks=1
        )
    )
    x = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 1, 2, 2)
    mass = float(torch.exp(-model.bound(Batch(x))).sum())
    assert mass <= 1.0 + 1e-3
    if prediction == "levels":  # and not vacuous: the levels denoiser rounds exactly at small t
        assert mass > 0.5


def test_nll_is_seeded_and_follows_nll_steps():
    spec = DataSpec("d", "image", (1, 4, 4), levels=5)
    model = _perturbed(
        registry.get("model", "ddpm", data=spec, T=100, channels=8, mults=(1, 2), attention=(), nll_steps=10), 0.05
    )
    x = torch.randint(5, (6, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    a, b = model.nll(Batch(x)), model.nll(Batch(x))
    assert torch.equal(a, b)
    assert torch.allclose(a.double(), model.bound(Batch(x), steps=10), rtol=1e-6)
    assert not torch.allclose(a.double(), model.bound(Batch(x)), rtol=1e-3)


def test_evaluate_gives_the_standard_error_of_a_sampled_bound_only():
    from gmkit_core.data import Dataset

    spec = DataSpec("d", "image", (1, 4, 4), levels=5)
    x = torch.randint(5, (9, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    data = Dataset(x, None, spec, "test")
    options = dict(T=100, channels=8, mults=(1, 2), attention=())
    sampled = _perturbed(registry.get("model", "ddpm", data=spec, nll_steps=10, **options), 0.05)
    out = sampled.evaluate(data, batch_size=9)  # one batch: the same noise as the direct call
    per_example = sampled.bound(Batch(x), steps=10)
    assert out["nll_nats"] == pytest.approx(float(per_example.mean()), rel=1e-6)
    assert out["nll_stderr_nats"] == pytest.approx(float(per_example.std() / 3), rel=1e-5)
    assert out["bits_per_dim_stderr"] == pytest.approx(out["nll_stderr_nats"] / (16 * math.log(2)))
    full = registry.get("model", "ddpm", data=spec, nll_steps=0, **options)
    assert "nll_stderr_nats" not in full.evaluate(data, batch_size=4)


@pytest.mark.parametrize("net", ["unet", "dit"])
def test_networks_start_at_zero_and_use_the_class(net):
    spec = DataSpec("d", "image", (1, 8, 8), levels=17, num_classes=10)
    model = registry.get("model", "ddpm", data=spec, **SMALL[net])
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([1, 10, 100, 1000])
    y = torch.tensor([0, 1, 2, 3])
    assert torch.equal(model.network(x, t, y), torch.zeros(4, 17, 8, 8))  # levels: C * L outputs
    _perturbed(model, 0.1)
    assert not torch.allclose(model.network(x, t, y), model.network(x, t, torch.full_like(y, 10)))


def test_dit_null_class_and_patches_derive_from_the_data():
    spec = DataSpec("d", "image", (3, 12, 12), levels=4, num_classes=7)
    model = registry.get("model", "ddpm", data=spec, network="dit", hidden=16, depth=1, heads=2, patch_size=3)
    assert model.network.conditioning.label.num_embeddings == 8  # 7 classes + the null class
    assert model.network.pos.shape == (16, 16)  # (12/3)^2 tokens
    assert model.network(torch.randn(2, 3, 12, 12), torch.tensor([5, 6])).shape == (2, 12, 12, 12)


def test_dit_unpatchify_inverts_patchify_layout():
    """With the head reading pixel (i, j) of a patch from the matching input pixel, the net is the identity."""
    spec = DataSpec("d", "image", (1, 4, 4), levels=4)
    model = registry.get(
        "model", "ddpm", data=spec, network="dit", hidden=16, depth=1, heads=2, patch_size=2, prediction="x0"
    )
    net = model.network
    with torch.no_grad():
        net.patch.weight.zero_()
        net.patch.bias.zero_()
        for k in range(4):  # token feature k = pixel k of the patch, row-major
            net.patch.weight[k, 0, k // 2, k % 2] = 1.0
        net.pos.zero_()
        for block in net.blocks:
            block.ada.bias.zero_()  # gates 0: blocks are the identity
        net.head.weight.zero_()
        net.head.weight[:4, :4] = torch.eye(4)
    norm = net.norm
    net.norm = torch.nn.Identity()
    x = torch.randn(2, 1, 4, 4)
    assert torch.allclose(net(x, torch.tensor([1, 2])), x, atol=1e-6)
    net.norm = norm


def test_loss_reports_simple_and_bound_terms():
    spec = DataSpec("d", "image", (1, 4, 4), levels=5)
    for loss in ("simple", "vlb", "hybrid"):
        model = registry.get("model", "ddpm", data=spec, T=50, channels=8, mults=(1,), attention=(), loss=loss)
        out = {k: float(v.detach()) for k, v in model.loss(Batch(torch.randint(5, (8, 1, 4, 4)))).items()}
        assert set(out) == {"loss", "simple", "vlb_nats_per_dim"} and math.isfinite(out["loss"])
        expected = {
            "simple": out["simple"],
            "vlb": out["vlb_nats_per_dim"],
            "hybrid": out["simple"] + out["vlb_nats_per_dim"],
        }[loss]
        assert out["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("data", "cfg", "error"),
    [
        (DataSpec("v", "vector", (2,)), dict(network="unet"), ConfigError),
        (DataSpec("v", "vector", (2,)), dict(network="dit"), ConfigError),
        (DataSpec("v", "vector", (2,)), dict(prediction="levels"), ConfigError),
        (DataSpec("i", "image", (1, 8, 8), levels=3), dict(network="mlp"), ConfigError),
        (DataSpec("i", "image", (1, 6, 6), levels=3), dict(mults=(1, 2, 2)), ConfigError),
        (DataSpec("i", "image", (1, 6, 6), levels=3), dict(network="dit", patch_size=4), ConfigError),
        (DataSpec("i", "image", (1, 8, 8), levels=3), dict(schedule="custom"), ConfigError),
        (DataSpec("i", "image", (1, 8, 8), levels=3), dict(betas=(0.1, 0.2)), ConfigError),
        (DataSpec("i", "image", (1, 8, 8), levels=3), dict(prediction="score"), ConfigError),
        (DataSpec("i", "image", (1, 8, 8)), {}, DataError),
    ],
)
def test_user_errors_are_clear(data, cfg, error):
    with pytest.raises(error):
        registry.get("model", "ddpm", data=data, **cfg)


def test_custom_schedule_from_config():
    spec = DataSpec("v", "vector", (2,))
    model = registry.get("model", "ddpm", data=spec, schedule="custom", betas="0.1,0.2,0.3")
    assert model.schedule.T == 3 and torch.allclose(model.schedule.betas, torch.tensor([0.1, 0.2, 0.3]).double())


@pytest.mark.parametrize("channels", [4, 8, 16])
def test_narrow_unets_still_see_time_and_label(channels):
    """Group norm never gets one-channel groups, which would erase the per-channel conditioning vector."""
    spec = DataSpec("d", "image", (1, 8, 8), levels=5, num_classes=3)
    model = registry.get(
        "model", "ddpm", data=spec, channels=channels, mults=(1,), attention=(), blocks=1, heads=1, prediction="eps"
    ).eval()  # eval: no dropout, so only t and y can differ
    _perturbed(model, 0.1)
    x = torch.randn(1, 1, 8, 8).expand(2, -1, -1, -1)
    same_y = torch.tensor([1, 1])
    assert not torch.allclose(
        model.network(x, torch.tensor([3, 700]), same_y)[0],
        model.network(x, torch.tensor([3, 700]), same_y)[1],
        atol=1e-6,
    )
    assert not torch.allclose(
        model.network(x, torch.tensor([5, 5]), torch.tensor([0, 2]))[0],
        model.network(x, torch.tensor([5, 5]), torch.tensor([0, 2]))[1],
        atol=1e-6,
    )
