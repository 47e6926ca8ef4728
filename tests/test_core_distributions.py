"""Shared distributions against independent computations (scipy, Monte Carlo, brute force)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from gmkit_core.distributions import (
    Bernoulli,
    Categorical,
    DiscretizedGaussian,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    Normal,
    StandardNormal,
    bits_per_dim,
    dequantization_nats,
    dequantize,
    kl_normal,
    quantize,
    to_unit_interval,
)

scipy_stats = pytest.importorskip("scipy.stats")

floats = st.floats(-3, 3)
log_scales = st.floats(-2, 1.5)


def _normal(mu, log_sigma):
    return Normal(torch.tensor([mu], dtype=torch.float64), torch.tensor([log_sigma], dtype=torch.float64).exp())


@given(floats, log_scales, floats, log_scales)
def test_kl_closed_form_is_nonnegative_and_zero_only_for_equal(m1, s1, m2, s2):
    kl = float(kl_normal(_normal(m1, s1), _normal(m2, s2)))
    assert kl >= -1e-12
    assert float(kl_normal(_normal(m1, s1), _normal(m1, s1))) == pytest.approx(0, abs=1e-12)
    if abs(m1 - m2) > 1e-3 or abs(s1 - s2) > 1e-3:
        assert kl > 0


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    q = Normal(
        torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 1.3, 0.8], dtype=torch.float64), 1
    )
    p = Normal(
        torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.7, 2.0], dtype=torch.float64), 1
    )
    z = q.sample(g, (200_000,))
    ratio = q.log_prob(z) - p.log_prob(z)
    standard_error = float(ratio.std()) / math.sqrt(len(ratio))
    assert abs(float(q.kl(p)) - float(ratio.mean())) < 4 * standard_error
    # and against scipy's densities (independent log_prob)
    x = np.array([0.1, 0.2, -0.3])
    ref = scipy_stats.norm(q.loc.numpy(), q.scale.numpy()).logpdf(x).sum()
    assert float(q.log_prob(torch.tensor(x))) == pytest.approx(ref, rel=1e-12)


def test_reparameterised_sample_moments_and_gradients():
    loc = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    z = Normal(loc, scale).rsample(torch.Generator().manual_seed(1), (100_000,))
    assert torch.allclose(z.mean(0), loc.detach(), atol=0.02)
    assert torch.allclose(z.std(0), scale.detach(), atol=0.02)
    z.mean().backward()
    assert torch.allclose(loc.grad, torch.full((2,), 0.5, dtype=torch.float64))
    assert scale.grad is not None and torch.isfinite(scale.grad).all()


def test_standard_normal_prior_log_prob_and_samples():
    prior = StandardNormal(3).double()
    z = torch.randn(5, 3, dtype=torch.float64)
    ref = scipy_stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z.numpy())
    assert np.allclose(prior.log_prob(z).numpy(), ref)
    assert prior.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 3)
    assert float(kl_normal(Normal(z, torch.ones_like(z)), prior.as_normal(z))[0]) == pytest.approx(
        0.5 * float((z[0] ** 2).sum())
    )


def _all_levels(levels, shape):
    return torch.arange(levels).reshape(levels, *([1] * len(shape))).expand(levels, *shape)


@given(st.integers(2, 40), st.floats(-1.5, 1.5), st.floats(-6, 2))
def test_discretized_logistic_sums_to_one_and_matches_scipy(levels, mu, log_s):
    loc = torch.full((1,), mu, dtype=torch.float64)
    log_scale = torch.full((1,), log_s, dtype=torch.float64)
    x = torch.arange(levels).unsqueeze(1)
    lp = DiscretizedLogistic(loc, log_scale, levels).log_prob(x)
    assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-9)
    # independent: explicit CDF differences from scipy, outer bins open
    c = 2 * np.arange(levels) / (levels - 1) - 1
    h = 1 / (levels - 1)
    cdf = scipy_stats.logistic(mu, math.exp(log_s)).cdf
    upper = np.where(np.arange(levels) == levels - 1, 1.0, cdf(c + h))
    lower = np.where(np.arange(levels) == 0, 0.0, cdf(c - h))
    ref = upper - lower
    mask = ref > 1e-200
    assert np.allclose(np.exp(lp.numpy())[mask], ref[mask], rtol=1e-6, atol=1e-12)


@given(st.integers(2, 40), st.floats(-1.5, 1.5), st.floats(-6, 2))
def test_discretized_gaussian_sums_to_one_and_matches_scipy(levels, mu, log_s):
    loc = torch.full((1,), mu, dtype=torch.float64)
    lp = DiscretizedGaussian(loc, torch.full((1,), log_s, dtype=torch.float64), levels).log_prob(
        torch.arange(levels).unsqueeze(1)
    )
    assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-9)
    c = 2 * np.arange(levels) / (levels - 1) - 1
    h = 1 / (levels - 1)
    dist = scipy_stats.norm(mu, math.exp(log_s))
    ref = np.where(np.arange(levels) == levels - 1, 1.0, dist.cdf(c + h)) - np.where(
        np.arange(levels) == 0, 0.0, dist.cdf(c - h)
    )
    mask = ref > 1e-200
    assert np.allclose(np.exp(lp.numpy())[mask], ref[mask], rtol=1e-6, atol=1e-12)


def test_discretized_tails_are_finite_with_finite_gradients():
    loc = torch.tensor([-30.0, 30.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor([-7.0, -7.0, -7.0, 5.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[16, 0, 8, 3]])
    for cls in (DiscretizedLogistic, DiscretizedGaussian):
        lp = cls(loc, log_scale, 17, event_dims=0).log_prob(x)
        assert (
            torch.isfinite(lp).all() or cls is DiscretizedGaussian
        )  # Gaussian tails may underflow to -inf only far out
        lp[torch.isfinite(lp)].sum().backward()
        assert torch.isfinite(loc.grad).all() and torch.isfinite(log_scale.grad).all()
        loc.grad = log_scale.grad = None


def test_mixture_sums_to_one_and_equals_weighted_components():
    g = torch.Generator().manual_seed(0)
    K, L = 3, 9
    w, loc, ls = (torch.randn(K, generator=g, dtype=torch.float64) for _ in range(3))
    mix = DiscretizedLogisticMixture(w, loc, ls * 0.5, L)
    x = torch.arange(L).unsqueeze(1)
    lp = mix.log_prob(x)
    assert float(torch.logsumexp(lp, 0)) == pytest.approx(0.0, abs=1e-9)
    pi = torch.softmax(w, 0)
    direct = sum(
        pi[k] * DiscretizedLogistic(loc[k : k + 1], ls[k : k + 1] * 0.5, L).log_prob(x).exp() for k in range(K)
    )
    assert torch.allclose(lp.exp(), direct, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Bernoulli(torch.tensor([0.7], dtype=torch.float64)),
        lambda: Categorical(torch.tensor([[0.1, -1.0, 2.0, 0.3]], dtype=torch.float64)),
        lambda: DiscretizedLogistic(
            torch.tensor([0.2], dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64), 5
        ),
        lambda: DiscretizedGaussian(
            torch.tensor([-0.3], dtype=torch.float64), torch.tensor([-1.2], dtype=torch.float64), 5
        ),
        lambda: DiscretizedLogisticMixture(
            torch.tensor([[0.0, 1.0]], dtype=torch.float64),
            torch.tensor([[-0.5, 0.5]], dtype=torch.float64),
            torch.tensor([[-1.5, -1.0]], dtype=torch.float64),
            5,
        ),
    ],
)
def test_samples_follow_the_probabilities(make):
    d = make()
    levels = 2 if isinstance(d, Bernoulli) else 4 if isinstance(d, Categorical) else 5
    probs = d.log_prob(torch.arange(levels).unsqueeze(1)).exp()
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-9)
    n = 40_000
    big = make()
    for attr in ("logits", "loc", "log_scale", "logit_weights"):
        if hasattr(big, attr):
            setattr(big, attr, getattr(big, attr).expand(n, *getattr(big, attr).shape[1:]))
    if isinstance(big, DiscretizedLogisticMixture):
        big.components = DiscretizedLogistic(big.components.loc.expand(n, 2), big.components.log_scale.expand(n, 2), 5)
    s = big.sample(torch.Generator().manual_seed(0)).reshape(-1)
    freq = torch.bincount(s, minlength=levels).double() / n
    assert torch.allclose(freq, probs, atol=0.01)


def test_bits_per_dim_and_unit_interval():
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert torch.equal(to_unit_interval(torch.tensor([0, 8, 16]), 17), torch.tensor([-1.0, 0.0, 1.0]))


def test_dequantization_gives_an_upper_bound_on_discrete_nll():
    # A density on [0,1]: p(y) = 2y. Its exact bin masses are ((k+1)^2 - k^2) / L^2.
    levels = 4
    x = torch.arange(levels)
    exact = -torch.log(((x + 1) ** 2 - x**2).double() / levels**2)
    y = dequantize(x.repeat(50_000), levels, torch.Generator().manual_seed(0)).double()
    bound = (-torch.log(2 * y)).reshape(50_000, levels).mean(0) + dequantization_nats(1, levels)
    assert (bound >= exact - 1e-3).all()
    assert (bound - exact).max() < 0.6  # Jensen gap is small but positive


@given(st.integers(2, 300), st.integers(0, 2**31 - 1))
@example(levels=41, seed=44677)  # float32 once rounded 38 + u up to 39
def test_quantize_inverts_dequantize_for_every_level(levels, seed):
    x = torch.arange(levels).repeat(3)  # every level, three noise draws each
    y = dequantize(x, levels, torch.Generator().manual_seed(seed))
    assert torch.equal(quantize(y, levels), x)
    edges = torch.tensor([0.0, 1 - 1e-6], dtype=torch.float64)  # both ends of each bin, by hand
    for u in edges:
        assert torch.equal(
            quantize((torch.arange(levels, dtype=torch.float64) + u) / levels, levels), torch.arange(levels)
        )


@given(st.integers(2, 300))
def test_quantize_centred_inverts_to_unit_interval_and_finds_the_nearest_centre(levels):
    x = torch.arange(levels)
    assert torch.equal(quantize(to_unit_interval(x, levels), levels, centred=True), x)
    y = torch.linspace(-1.2, 1.2, 997, dtype=torch.float64)
    centres = to_unit_interval(torch.arange(levels), levels, torch.float64)
    nearest = (y[:, None] - centres[None]).abs().argmin(1)  # brute force over all centres
    got = quantize(y, levels, centred=True)
    tie = (y[:, None] - centres[None]).abs().sort(1).values.diff(dim=1)[:, 0] < 1e-9
    assert torch.equal(got[~tie], nearest[~tie])
    assert int(quantize(torch.tensor([-5.0, 5.0]), levels, centred=True)[1]) == levels - 1
