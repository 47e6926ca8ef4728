"""EM: monotone likelihood, stationary M-step, recovery of a known mixture (float64)."""

from __future__ import annotations

import itertools

import pytest
import torch
from gmkit_gmm.em import e_step, fit_em, kmeans_plusplus, m_step
from gmkit_gmm.mixture import COVARIANCES, GaussianMixture
from hypothesis import given, settings
from hypothesis import strategies as st

F64 = torch.float64


def true_mixture(covariance: str) -> GaussianMixture:
    """Three well-separated 2D components with unequal weights."""
    m = GaussianMixture(2, 3, covariance).double()
    loc = torch.tensor([[-4.0, 0.0], [4.0, 1.0], [0.0, 5.0]], dtype=F64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    if covariance == "full":
        cov = torch.tensor([[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 1.2]], [[0.7, 0.0], [0.0, 0.3]]], dtype=F64)
    elif covariance == "diag":
        cov = torch.tensor([[1.0, 0.4], [0.3, 1.2], [0.7, 0.5]], dtype=F64)
    else:
        cov = torch.tensor([1.0, 0.5, 0.3], dtype=F64)
    m.set_parameters(weights, loc, cov)
    return m


@settings(max_examples=6, deadline=None)
@given(covariance=st.sampled_from(COVARIANCES), k=st.integers(1, 4), dim=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_em_never_lowers_the_training_likelihood(covariance: str, k: int, dim: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(120, dim, generator=g, dtype=F64) * (torch.rand(dim, generator=g, dtype=F64) + 0.5)
    x[:50] += 3.0
    m = GaussianMixture(dim, k, covariance).double()
    result = fit_em(m, x, max_iter=10, tol=1e-300, reg_covar=0.0, generator=g)
    ll = torch.tensor(result.log_likelihood, dtype=F64)
    assert len(ll) >= 2
    assert bool((ll[1:] - ll[:-1] >= -1e-9).all()), ll


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_m_step_is_a_stationary_point_of_q(covariance: str) -> None:
    """With responsibilities fixed, the M-step maximises Q = sum_nk r_nk log(pi_k N(x_n; theta_k)): zero gradient."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=F64)
    resp = torch.softmax(torch.randn(200, 4, generator=g, dtype=F64), -1)
    m = GaussianMixture(3, 4, covariance).double()
    m_step(m, x, resp, reg_covar=0.0)
    q = (resp * m.joint_log_prob(x)).sum()
    grads = torch.autograd.grad(q, list(m.parameters()))
    for grad in grads:
        torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-8, rtol=0)


def test_reg_covar_is_added_to_the_diagonal() -> None:
    x = torch.randn(100, 2, dtype=F64)
    resp = torch.ones(100, 1, dtype=F64)
    a, b = GaussianMixture(2, 1, "full").double(), GaussianMixture(2, 1, "full").double()
    m_step(a, x, resp, 0.0)
    m_step(b, x, resp, 0.25)
    torch.testing.assert_close(b.covariance_matrix - a.covariance_matrix, 0.25 * torch.eye(2, dtype=F64)[None])
    torch.testing.assert_close(a.covariance_matrix[0], torch.cov(x.T, correction=0))


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_em_recovers_a_known_mixture(covariance: str) -> None:
    truth = true_mixture(covariance)
    g = torch.Generator().manual_seed(1)
    train, test = truth.sample(4000, g), truth.sample(4000, g)
    fitted = GaussianMixture(2, 3, covariance).double()
    result = fit_em(fitted, train, max_iter=200, tol=1e-8, reg_covar=1e-6, generator=g)
    assert result.converged
    with torch.no_grad():
        # match components up to permutation by the closest means
        perm = min(
            itertools.permutations(range(3)), key=lambda p: float((fitted.loc[list(p)] - truth.loc).square().sum())
        )
        idx = list(perm)
        torch.testing.assert_close(fitted.loc[idx], truth.loc, atol=0.1, rtol=0)
        torch.testing.assert_close(torch.exp(fitted.log_weights[idx]), torch.exp(truth.log_weights), atol=0.03, rtol=0)
        torch.testing.assert_close(fitted.covariance_matrix[idx], truth.covariance_matrix, atol=0.12, rtol=0)
        gap = float(truth.log_prob(test).mean() - fitted.log_prob(test).mean())
    assert abs(gap) < 0.01, gap


def test_fit_stops_on_likelihood_change() -> None:
    truth = true_mixture("full")
    x = truth.sample(1000, torch.Generator().manual_seed(4))
    m = GaussianMixture(2, 3, "full").double()
    result = fit_em(m, x, max_iter=500, tol=1e-3, generator=torch.Generator().manual_seed(0))
    assert result.converged and result.iterations < 500
    assert abs(result.log_likelihood[-1] - result.log_likelihood[-2]) < 1e-3
    assert all(abs(b - a) >= 1e-3 for a, b in itertools.pairwise(result.log_likelihood[:-1]))
    assert abs(result.final - e_step(m, x)[1]) < 1e-12  # the kept parameters are the ones scored last


def test_kmeans_plusplus_spreads_over_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0], [50.0, 50.0]], dtype=F64)
    x = (centres[:, None, :] + torch.randn(4, 100, 2, generator=g, dtype=F64)).reshape(-1, 2)
    chosen = kmeans_plusplus(x, 4, g)
    assert all(bool((x == c).all(-1).any()) for c in chosen)  # picks data points
    nearest = torch.cdist(chosen, centres).argmin(-1)
    assert sorted(nearest.tolist()) == [0, 1, 2, 3]


def test_em_is_deterministic_given_the_generator() -> None:
    x = true_mixture("diag").sample(500, torch.Generator().manual_seed(2))
    a, b = GaussianMixture(2, 3, "diag").double(), GaussianMixture(2, 3, "diag").double()
    fit_em(a, x, generator=torch.Generator().manual_seed(9))
    fit_em(b, x, generator=torch.Generator().manual_seed(9))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_too_few_points_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least as many points"):
        fit_em(GaussianMixture(2, 5).double(), torch.randn(3, 2, dtype=F64))
