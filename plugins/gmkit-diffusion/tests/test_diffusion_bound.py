"""The variational bound: KL terms against Monte Carlo, the SNR identity, a proper decoder,
and the bound against known NLLs (Gaussian vectors, uniform discrete levels)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusion_helpers import OracleGaussian, Zero
from gmkit_diffusion.bound import decoder_nll, kl_term, reverse_variance
from gmkit_diffusion.schedules import CosineSchedule, LinearSchedule

from gmkit_core.data import Batch, DataSpec
from gmkit_core.distributions import Normal
from gmkit_core.registry import registry


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
@pytest.mark.parametrize("t", [2, 37, 400])
def test_kl_term_matches_monte_carlo(variance, t):
    """E_{x_{t-1} ~ q(. | x_t, x_0)} [log q - log p] with the full means (x_t included)."""
    s = LinearSchedule(T=1000)
    g = torch.Generator().manual_seed(t)
    x0 = torch.rand(1, 3, generator=g, dtype=torch.float64) * 2 - 1
    x0_hat = x0 + 0.05 * torch.randn(1, 3, generator=g, dtype=torch.float64)
    tt = torch.tensor([t])
    xt = s.q_sample(x0, tt, torch.randn(1, 3, generator=g, dtype=torch.float64))
    mean_q, var_q = s.q_posterior(x0, xt, tt)
    mean_p, _ = s.q_posterior(x0_hat, xt, tt)
    q = Normal(mean_q, var_q.sqrt().expand_as(mean_q))
    p = Normal(mean_p, reverse_variance(s, tt, variance, x0).sqrt().expand_as(mean_p))
    draws = q.sample(g, (400_000,))  # (N, 1, 3)
    mc = (q.log_prob(draws.reshape(-1, 3)) - p.log_prob(draws.reshape(-1, 3))).mean()
    exact = float(kl_term(s, x0, x0_hat, tt, variance))
    assert exact == pytest.approx(float(mc), rel=2e-2, abs=2e-3)


def test_kl_term_with_posterior_variance_is_half_snr_difference_times_squared_error():
    s = CosineSchedule(T=200)
    x0 = torch.randn(5, 4, dtype=torch.float64)
    x0_hat = x0 + torch.randn(5, 4, dtype=torch.float64)
    t = torch.tensor([2, 3, 50, 120, 200])
    expected = 0.5 * (s.snr(t - 1) - s.snr(t)) * (x0 - x0_hat).square().sum(1)
    assert torch.allclose(kl_term(s, x0, x0_hat, t, "beta_tilde"), expected, rtol=1e-8)


def test_decoder_is_a_distribution_over_levels():
    s = LinearSchedule(T=1000)
    levels = 5
    x0_hat = torch.full((levels, 1), 0.23, dtype=torch.float64)  # one mean, every level
    x = torch.arange(levels).reshape(levels, 1)
    mass = torch.exp(-decoder_nll(s, x, x0_hat, levels))
    assert float(mass.sum()) == pytest.approx(1.0, abs=1e-9)


def _vector_model(mean, std, **cfg):
    spec = DataSpec("gauss", "vector", (len(mean),))
    model = registry.get("model", "ddpm", data=spec, prediction="eps", **cfg)
    model.network = OracleGaussian(model.schedule, torch.tensor(mean), std)
    return model.eval()


@pytest.mark.parametrize(
    ("schedule", "variance", "max_gap"),
    [
        ("linear", "beta", 0.3),
        ("loglinear", "beta", 0.3),
        ("loglinear", "beta_tilde", 0.4),
        ("linear", "beta_tilde", 1.5),
    ],
)
def test_bound_is_above_the_true_nll_of_gaussian_data(schedule, variance, max_gap):
    """x ~ N(m, s^2 I): true NLL known; the exact denoiser's bound lies above it. The gap is the
    fixed reverse variance's mismatch (sigma_t^2 = beta_t suits continuous data better than beta~_t)."""
    mean, std = [0.5, -1.0], 0.3
    model = _vector_model(mean, std, schedule=schedule, variance=variance)
    g = torch.Generator().manual_seed(0)
    x = torch.tensor(mean) + std * torch.randn(500, 2, generator=g)
    true_nll = (
        -Normal(torch.tensor(mean, dtype=torch.float64), torch.full((2,), std, dtype=torch.float64))
        .log_prob(x.double())
        .mean()
    )
    bounds = torch.stack([model.bound(Batch(x), seed=k) for k in range(4)])  # (seeds, examples)
    b, se = float(bounds.mean()), float(bounds.mean(0).std()) / math.sqrt(len(x))
    assert b >= float(true_nll) - 3 * se
    assert b - float(true_nll) < max_gap


def test_bound_with_a_wrong_denoiser_is_looser():
    mean, std = [0.5, -1.0], 0.3
    x = torch.tensor(mean) + std * torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    good = _vector_model(mean, std).bound(Batch(x)).mean()
    bad = _vector_model([0.0, 0.0], 1.0).bound(Batch(x)).mean()
    assert float(bad) > float(good) + 0.5


@pytest.mark.parametrize(("schedule", "max_gap"), [("linear", 0.25), ("cosine", 0.2), ("loglinear", 0.05)])
def test_bound_is_above_log_levels_for_uniform_discrete_data(schedule, max_gap):
    """Independent uniform levels: NLL = D log L; prediction=levels with zero logits is the exact denoiser."""
    L = 17
    spec = DataSpec("uniform", "image", (1, 2, 2), levels=L)
    model = registry.get("model", "ddpm", data=spec, schedule=schedule, mults=(1,), attention=())
    model.network = Zero(L)
    model.eval()
    x = torch.randint(L, (500, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    per_dim = float(model.bound(Batch(x)).mean()) / 4
    assert math.log(L) - 0.01 <= per_dim <= math.log(L) + max_gap


def test_stratified_subset_estimate_is_unbiased():
    mean, std = [0.2], 0.5
    model = _vector_model(mean, std, T=200)
    x = torch.tensor(mean) + std * torch.randn(64, 1, generator=torch.Generator().manual_seed(2))
    full = torch.stack([model.bound(Batch(x), seed=k).mean() for k in range(40)])  # the noise of eps alone
    estimates = torch.stack([model.bound(Batch(x), steps=10, seed=k).mean() for k in range(200)])
    se = math.hypot(float(estimates.std()) / math.sqrt(len(estimates)), float(full.std()) / math.sqrt(len(full)))
    assert abs(float(estimates.mean() - full.mean())) < 4 * se


def test_sampled_bound_draws_new_steps_for_each_batch_and_the_same_for_the_same_batch():
    """An image at the same position of two batches gets independent draws (a per-call reseed would repeat them)."""
    model = _vector_model([0.2], 0.5, T=200)
    x = torch.randn(3, 1, generator=torch.Generator().manual_seed(0))
    other = torch.cat([x[:1] + 1.0, x[1:]])  # position 1 and 2 unchanged
    first = model.bound(Batch(x), steps=5)
    assert torch.equal(first, model.bound(Batch(x), steps=5))
    assert not torch.allclose(first[1:], model.bound(Batch(other), steps=5)[1:])


def test_marginal_nll_adds_log_num_classes_and_is_looser_than_the_log_mean_exp_over_labels():
    """-log p(x) <= b(x, y) + log K (marginal_nll, one bound) and >= -log mean_y exp(-b(x, y)) (all K labels)."""
    spec = DataSpec("toy", "image", (1, 4, 4), levels=3, num_classes=4)
    model = registry.get("model", "ddpm", data=spec, T=20, channels=8, mults=(1,), attention=(), blocks=1).eval()
    with torch.no_grad():  # labels must matter: perturb the zero-initialised output layer
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x = torch.randint(3, (3, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2])
    conditional, marginal = model.nll(Batch(x, y)), model.marginal_nll(Batch(x, y))
    assert torch.allclose(marginal - conditional, torch.full((3,), math.log(4)), atol=1e-5)
    per_label = torch.stack([model.nll(Batch(x, torch.full((3,), k))) for k in range(4)], 1).double()  # (B, K)
    log_mean_exp = -(torch.logsumexp(-per_label, 1) - math.log(4))
    assert not torch.allclose(per_label[:, 0], per_label[:, 1])
    assert bool((log_mean_exp <= marginal.double() + 1e-6).all())
    assert bool((log_mean_exp >= per_label.min(1).values - 1e-6).all())
    report = model.evaluate(_labelled(x, y, spec), batch_size=8)
    assert report["conditional"] and report["likelihood"] == "bound"
    assert report["nll_nats"] == pytest.approx(float(marginal.double().mean()), rel=1e-6)
    assert report["conditional_nll_nats"] == pytest.approx(float(conditional.double().mean()), rel=1e-6)
    unconditional = registry.get(
        "model", "ddpm", data=spec, T=20, channels=8, mults=(1,), attention=(), blocks=1, class_conditional=False
    )
    assert unconditional.num_classes is None and not unconditional.conditional


def _labelled(x, y, spec):  # noqa: ANN001, ANN202
    from gmkit_core.data import Dataset

    return Dataset(x, y, spec, "test")


def test_vector_scale_adds_its_log_jacobian():
    """Diffusing x / s: bound(s x) with scale s equals bound(x) with scale 1 plus D log s."""
    mean, std = [0.5, -1.0], 0.3
    x = torch.tensor(mean) + std * torch.randn(50, 2, generator=torch.Generator().manual_seed(4))
    plain, scaled = _vector_model(mean, std, T=100), _vector_model(mean, std, T=100)
    scaled.scale.fill_(3.0)
    expected = plain.bound(Batch(x), generator=torch.Generator().manual_seed(0)) + 2 * math.log(3.0)
    assert torch.allclose(scaled.bound(Batch(3.0 * x), generator=torch.Generator().manual_seed(0)), expected, rtol=1e-5)


def test_prepare_sets_the_scale_of_vectors_only():
    from gmkit_core.data import load

    train = load("moons", "train")
    model = registry.get("model", "ddpm", data=train.spec, T=10)
    model.prepare(train)
    assert float(model.scale) == pytest.approx(float(train.x.double().std()), rel=1e-6)
