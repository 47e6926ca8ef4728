"""``gauss_levels`` prediction and the settings for many levels (256): the windowed / continuous
posterior mean against the sum over every level, the full ``levels`` computation with Gaussian
logits, the bound of the exact denoiser of uniform 256-level data, and per-example sampling of
the stratified bound (unbiased, with a standard error that carries its noise)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from diffusion_helpers import Constant
from gmkit_diffusion import parameterization
from gmkit_diffusion.parameterization import gauss_levels_mean, to_x0

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry


def _centres(levels: int) -> torch.Tensor:
    return torch.linspace(-1, 1, levels, dtype=torch.float64)


def _brute_mean(mu: torch.Tensor, sd: torch.Tensor, levels: int) -> torch.Tensor:
    c = _centres(levels)
    w = torch.softmax(-(c - mu[:, None]).square() / (2 * sd[:, None].square()), dim=-1)
    return (w * c).sum(-1)


@pytest.mark.parametrize("levels", [17, 256])
def test_gauss_levels_mean_matches_the_sum_over_every_level(levels):
    g = torch.Generator().manual_seed(levels)
    n, delta = 20_000, 2 / (levels - 1)
    mu = (torch.rand(n, generator=g, dtype=torch.float64) * 4 - 2) * 1.2
    sd = torch.exp(torch.rand(n, generator=g, dtype=torch.float64) * 16 - 14)  # 8e-7 .. 7
    got, want = gauss_levels_mean(mu, sd, levels), _brute_mean(mu, sd, levels)
    err = (got - want).abs()
    assert float(err.max()) < delta / 2  # the documented bound, reached only near the ends
    fine = sd < delta  # summed over the nearest levels: exact
    assert float(err[fine].max()) < 1e-4 * delta
    interior = ~fine & (mu.abs() + 5 * sd < 1)  # the continuous limit, five sd or more from the ends
    assert interior.sum() > 20 and float(err[interior].max()) < 1e-6 * delta


def test_gauss_levels_mean_is_finite_with_finite_gradients_everywhere():
    mu = torch.tensor([-50.0, -3.0, -1.0, -0.3, 0.0, 0.999, 1.0, 7.0, 80.0], dtype=torch.float64)
    mu = mu.repeat(4)
    sd = torch.tensor([1e-6, 1e-3, 0.3, 40.0], dtype=torch.float64).repeat_interleave(9)
    mu.requires_grad_(), sd.requires_grad_()
    out = gauss_levels_mean(mu, sd, 256)
    out.sum().backward()
    assert torch.isfinite(out).all() and out.abs().max() <= 1
    assert torch.isfinite(mu.grad).all() and torch.isfinite(sd.grad).all()


def test_gauss_levels_is_the_levels_posterior_under_gaussian_logits():
    """x0^ of gauss_levels (m, u) = x0^ of levels with logits -(c_k - m)^2 / (2 e^u), computed over all L."""
    levels = 256
    model = registry.get("model", "ddpm", data=DataSpec("p", "image", (2, 4, 4), levels=levels))
    g = torch.Generator().manual_seed(0)
    B = 64
    x0 = _centres(levels)[torch.randint(levels, (B, 2, 4, 4), generator=g)].float()
    t = torch.randint(1, 1001, (B,), generator=g)
    xt = model.schedule.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    m = 0.6 * torch.randn(B, 2, 4, 4, generator=g)
    u = torch.randn(B, 2, 4, 4, generator=g) * 3 - 4
    got = to_x0(model.schedule, "gauss_levels", torch.cat([m, u], 1), xt, t, levels).double()
    logits = -(_centres(levels)[None, None, :, None, None] - m.double().unsqueeze(2)).square() / (
        2 * u.double().exp().unsqueeze(2)
    )
    want = to_x0(model.schedule, "levels", logits.flatten(1, 2), xt.double(), t, levels)
    err = (got - want).abs()
    assert float(err.max()) < 2 / (levels - 1) / 2
    assert float(err.median()) < 1e-4 * 2 / (levels - 1)


def test_many_levels_start_the_schedule_at_the_same_noise_per_level_spacing():
    def noise_per_spacing(levels: int) -> float:
        model = registry.get("model", "ddpm", data=DataSpec("p", "image", (1, 4, 4), levels=levels))
        abar = float(model.schedule.alphas_cumprod[0])
        return math.sqrt((1 - abar) / abar) / (2 / (levels - 1))

    assert registry.get("model", "ddpm", data=DataSpec("d", "image", (1, 8, 8), levels=17)).config.logsnr_max == 9.2
    assert noise_per_spacing(256) == pytest.approx(noise_per_spacing(17), rel=1e-2)


def test_bound_of_the_exact_denoiser_of_uniform_256_level_data_is_log_256():
    """A flat prior (m = 0, u = 20) makes gauss_levels the exact denoiser of independent uniform levels;
    the gap is the discretisation in time (0.065 nats/dim at T = 1000, 0.034 at the T = 2000 chosen for 256 levels)."""
    levels = 256
    spec = DataSpec("uniform", "image", (1, 2, 2), levels=levels)
    model = registry.get("model", "ddpm", data=spec, prediction="gauss_levels", mults=(1,), attention=())
    assert model.schedule.T == 2000
    model.network = Constant([0.0, 20.0])
    model.eval()
    x = torch.randint(levels, (400, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    per_dim = float(model.bound(Batch(x)).mean()) / 4
    assert math.log(levels) - 0.01 <= per_dim <= math.log(levels) + 0.04


def test_tiny_space_bound_of_gauss_levels_is_valid():
    """sum_x exp(-E[bound(x)]) <= 1 over all 3^4 images of 1x2x2 pixels with 3 levels: perturbed networks
    (several initial weights), and the flat prior (the exact denoiser of uniform levels). The bound is an
    expectation over its noise (one draw can put the sum above 1), so each image's is averaged over 32 seeds."""

    def mass(model) -> float:  # noqa: ANN001
        bounds = torch.stack([model.bound(Batch(x), seed=k) for k in range(32)]).double()
        return float(torch.exp(-bounds.mean(0)).sum())

    spec = DataSpec("tiny", "image", (1, 2, 2), levels=3)
    x = torch.tensor(list(itertools.product(range(3), repeat=4))).reshape(-1, 1, 2, 2)
    for seed in range(3):
        torch.manual_seed(seed)
        model = registry.get(
            "model", "ddpm", data=spec, prediction="gauss_levels", T=100, channels=8, mults=(1,), attention=(), blocks=1
        )
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        assert 0.1 < mass(model.eval()) <= 1.0, seed
    model.network = Constant([0.0, 20.0])
    assert 0.5 < mass(model) <= 1.0


def test_sampled_bound_draws_steps_per_example_and_its_spread_is_its_noise():
    """One image repeated: the per-example estimates differ only by their own steps and noise; their
    mean is the full bound within a few standard errors, and that standard error is not zero."""
    spec = DataSpec("d", "image", (1, 4, 4), levels=5)
    model = registry.get("model", "ddpm", data=spec, T=200, channels=8, mults=(1, 2), attention=())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model.eval()
    x = torch.randint(5, (1, 1, 4, 4), generator=torch.Generator().manual_seed(3)).repeat(400, 1, 1, 1)
    full = model.bound(Batch(x[:50]), seed=1).mean()  # all 200 steps; its own noise averaged over 50 copies
    full_se = float(model.bound(Batch(x[:50]), seed=1).std()) / math.sqrt(50)
    sampled = model.bound(Batch(x), steps=8, seed=2)
    se = float(sampled.std()) / math.sqrt(len(sampled))
    assert se > 0
    assert abs(float(sampled.mean() - full)) < 4 * math.hypot(se, full_se)


def test_output_channels_of_gauss_levels():
    assert parameterization.output_channels("gauss_levels", 3, 256) == 6
    with pytest.raises(ValueError, match="levels"):
        parameterization.output_channels("gauss_levels", 3, None)


def test_conditional_evaluate_computes_the_bound_once_and_agrees_with_the_base_class():
    from gmkit_core.data import Dataset
    from gmkit_core.interfaces import GenerativeModel

    spec = DataSpec("d", "image", (1, 4, 4), levels=5, num_classes=3)
    g = torch.Generator().manual_seed(4)
    data = Dataset(torch.randint(5, (10, 1, 4, 4), generator=g), torch.randint(3, (10,), generator=g), spec, "test")
    torch.manual_seed(0)
    model = registry.get("model", "ddpm", data=spec, T=50, channels=8, mults=(1, 2), attention=(), nll_steps=5).eval()
    calls = []
    nll = model.nll
    model.nll = lambda b: calls.append(len(b.x)) or nll(b)  # type: ignore[method-assign]
    ours = model.evaluate(data, batch_size=4)
    assert sum(calls) == 10  # each example's bound once
    base = GenerativeModel.evaluate(model, data, batch_size=4)
    assert set(base) <= set(ours)
    for key, value in base.items():
        assert ours[key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), key
    assert "not itself a bound" in ours["bound_estimate"] and ours["bound_steps"] == 5
