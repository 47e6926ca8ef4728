"""Schedules: monotone abar, one-step kernels compose to q(x_t | x_0), posterior = Bayes' rule, L_T ~ 0."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_diffusion.bound import prior_term
from gmkit_diffusion.schedules import CosineSchedule, CustomSchedule, LinearSchedule, LogLinearSchedule
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry

betas_lists = st.lists(st.floats(1e-5, 0.6), min_size=1, max_size=60)
FEW = settings(max_examples=25, deadline=None)


@pytest.mark.parametrize("name", ["linear", "cosine", "loglinear"])
def test_registry_builds_float64_schedules_of_length_T(name):
    s = registry.get("schedule", name, T=1000)
    assert s.betas.dtype == torch.float64 and s.alphas_cumprod.dtype == torch.float64
    assert s.betas.shape == (1000,) and s.alphas_cumprod.shape == (1000,) and s.T == 1000


def test_linear_end_points_and_spacing():
    s = LinearSchedule(T=1000)
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    assert torch.allclose(s.betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64))


def test_cosine_matches_its_formula_where_unclipped():
    T, s_ = 1000, 0.008
    s = CosineSchedule(T=T)
    f = [math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2 for t in range(T + 1)]
    for t in (1, 10, 500, 900):
        assert float(s.alphas_cumprod[t - 1]) == pytest.approx(f[t] / f[0], rel=1e-9)
    assert float(s.betas.max()) == pytest.approx(0.999)


def test_loglinear_has_evenly_spaced_log_snr():
    s = LogLinearSchedule(T=500, logsnr_max=8.0, logsnr_min=-6.0)
    logsnr = torch.log(s.snr(torch.arange(1, 501)))
    assert torch.allclose(logsnr, torch.linspace(8.0, -6.0, 500, dtype=torch.float64), atol=1e-8)


@FEW
@given(betas_lists)
def test_abar_strictly_decreasing_in_unit_interval_custom(betas):
    abar = CustomSchedule(betas).alphas_cumprod
    assert bool(((abar > 0) & (abar < 1)).all())
    assert bool((abar.diff() < 0).all())


@FEW
@given(st.sampled_from([LinearSchedule, CosineSchedule, LogLinearSchedule]), st.integers(2, 3000))
def test_abar_strictly_decreasing_in_unit_interval_standard(cls, T):
    abar = cls(T=T).alphas_cumprod
    assert bool(((abar > 0) & (abar < 1)).all())
    assert bool((abar.diff() < 0).all())


@FEW
@given(betas_lists, st.floats(-2, 2))
def test_composed_one_step_kernels_give_closed_form_moments(betas, x0):
    """Iterate mean <- sqrt(1-b) mean, var <- (1-b) var + b, and compare with q(x_t | x_0)."""
    s = CustomSchedule(betas)
    mean, var = x0, 0.0
    for t, b in enumerate(betas, start=1):
        mean, var = math.sqrt(1 - b) * mean, (1 - b) * var + b
        tt = torch.tensor([t])
        eps0 = s.q_sample(torch.tensor([x0], dtype=torch.float64), tt, torch.zeros(1, dtype=torch.float64))
        eps1 = s.q_sample(torch.tensor([x0], dtype=torch.float64), tt, torch.ones(1, dtype=torch.float64))
        assert float(eps0) == pytest.approx(mean, abs=1e-12)
        assert float(eps1 - eps0) ** 2 == pytest.approx(var, rel=1e-9)


def test_composed_kernels_monte_carlo():
    """Simulate the chain step by step; the sample moments match the closed form."""
    s = CosineSchedule(T=50)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    x = x0.clone()
    for t in range(1, 51):
        b = float(s.betas[t - 1])
        x = math.sqrt(1 - b) * x + math.sqrt(b) * torch.randn(x.shape, generator=g, dtype=torch.float64)
        if t in (1, 10, 50):
            abar = float(s.alphas_cumprod[t - 1])
            assert float(x.mean()) == pytest.approx(math.sqrt(abar) * 0.7, abs=5e-3)
            assert float(x.var()) == pytest.approx(1 - abar, rel=2e-2, abs=1e-4)


@FEW
@given(betas_lists.filter(lambda b: len(b) >= 2), st.data())
def test_posterior_is_bayes_rule(betas, data):
    """q(x_{t-1} | x_t, x_0) from N(x_{t-1}; sqrt(abar_{t-1}) x_0, 1-abar_{t-1}) N(x_t; sqrt(alpha_t) x_{t-1}, beta_t)."""
    s = CustomSchedule(betas)
    t = data.draw(st.integers(2, len(betas)))
    x0, xt = data.draw(st.floats(-3, 3)), data.draw(st.floats(-3, 3))
    abar_prev = math.prod(1 - b for b in betas[: t - 1])
    beta = betas[t - 1]
    prior_prec, like_prec = 1 / (1 - abar_prev), (1 - beta) / beta
    var = 1 / (prior_prec + like_prec)
    mean = var * (math.sqrt(abar_prev) * x0 * prior_prec + xt * math.sqrt(1 - beta) / beta)
    m, v = s.q_posterior(
        torch.tensor([x0], dtype=torch.float64), torch.tensor([xt], dtype=torch.float64), torch.tensor([t])
    )
    assert float(m) == pytest.approx(mean, rel=1e-9, abs=1e-9)
    assert float(v) == pytest.approx(var, rel=1e-9)


@pytest.mark.parametrize("name", ["linear", "cosine", "loglinear"])
def test_prior_term_near_zero_for_standard_schedules(name):
    s = registry.get("schedule", name, T=1000)
    x0 = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    assert float(prior_term(s, x0)) < 64 * 1e-4


def test_prior_term_is_not_zero_for_a_short_schedule():
    s = LinearSchedule(T=10)
    assert float(prior_term(s, torch.ones(1, 4, dtype=torch.float64))) > 0.1


@pytest.mark.parametrize("kwargs", [dict(T=0), dict(beta_start=0.1, beta_end=0.01)])
def test_bad_linear_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        LinearSchedule(**kwargs)


def test_bad_custom_betas_raise_config_error():
    with pytest.raises(ConfigError):
        registry.get("schedule", "custom", betas=[0.1, 1.0])
