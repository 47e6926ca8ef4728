"""NoiseSchedule math against independent computations."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gmkit_core.interfaces import NoiseSchedule

betas_st = st.lists(st.floats(1e-4, 0.3), min_size=2, max_size=30)


@given(betas_st)
def test_alphas_cumprod_strictly_decreasing_in_unit_interval(betas):
    s = NoiseSchedule(torch.tensor(betas))
    abar = s.alphas_cumprod
    assert abar.dtype == torch.float64 and len(abar) == len(betas)
    assert bool(((abar > 0) & (abar < 1)).all())
    assert bool((abar[1:] < abar[:-1]).all())
    assert torch.allclose(s.snr(torch.arange(1, len(betas) + 1)), abar / (1 - abar))


@given(betas_st, st.data())
def test_posterior_matches_bayes_rule(betas, data):
    s = NoiseSchedule(torch.tensor(betas, dtype=torch.float64))
    t = data.draw(st.integers(2, len(betas)))
    x0, xt = data.draw(st.floats(-2, 2)), data.draw(st.floats(-3, 3))
    mean, var = s.q_posterior(
        torch.tensor([x0], dtype=torch.float64), torch.tensor([xt], dtype=torch.float64), torch.tensor([t])
    )
    # Bayes for Gaussians: prior x_{t-1} ~ N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}); likelihood x_t | x_{t-1} ~ N(sqrt(a_t) x_{t-1}, b_t)
    abar_prev = float(np.prod(1 - np.array(betas[: t - 1])))
    b = betas[t - 1]
    prior_mean, prior_var = np.sqrt(abar_prev) * x0, 1 - abar_prev
    post_var = 1 / (1 / prior_var + (1 - b) / b)
    post_mean = post_var * (prior_mean / prior_var + np.sqrt(1 - b) * xt / b)
    assert float(var.reshape(())) == pytest.approx(post_var, rel=1e-9)
    assert float(mean) == pytest.approx(post_mean, rel=1e-9, abs=1e-12)


def test_composed_one_step_kernels_give_closed_form_marginal():
    betas = torch.linspace(1e-3, 0.2, 12, dtype=torch.float64)
    s = NoiseSchedule(betas)
    x0 = torch.tensor([1.5], dtype=torch.float64)
    mean, var = x0.clone(), torch.zeros(1, dtype=torch.float64)
    for t in range(1, 13):
        b = betas[t - 1]
        mean, var = (1 - b).sqrt() * mean, (1 - b) * var + b
        eps0 = torch.zeros(1, dtype=torch.float64)
        assert torch.allclose(s.q_sample(x0, torch.tensor([t]), eps0), mean)
        eps1 = torch.ones(1, dtype=torch.float64)
        assert torch.allclose(s.q_sample(x0, torch.tensor([t]), eps1) - mean, var.sqrt())


def test_bad_betas_rejected():
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.1, 1.2]))
