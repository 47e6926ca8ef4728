"""GaussianMixture densities against independent computations (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_gmm.mixture import COVARIANCES, GaussianMixture
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.errors import ConfigError


def random_mixture(dim: int, k: int, covariance: str, seed: int) -> GaussianMixture:
    """A float64 mixture with random weights, means and well-conditioned covariances."""
    g = torch.Generator().manual_seed(seed)
    m = GaussianMixture(dim, k, covariance).double()
    weights = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    loc = torch.randn(k, dim, generator=g, dtype=torch.float64)
    if covariance == "full":
        a = torch.randn(k, dim, dim, generator=g, dtype=torch.float64)
        cov = a @ a.transpose(-1, -2) / dim + 0.3 * torch.eye(dim, dtype=torch.float64)
    elif covariance == "diag":
        cov = torch.rand(k, dim, generator=g, dtype=torch.float64) + 0.3
    else:
        cov = torch.rand(k, generator=g, dtype=torch.float64) + 0.3
    m.set_parameters(weights / weights.sum(), loc, cov)
    return m


def direct_density(m: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """sum_k pi_k (2 pi)^{-D/2} det(Sigma_k)^{-1/2} exp(-1/2 d^T Sigma_k^{-1} d), not in log space."""
    pi = torch.softmax(m.logits, -1)
    cov = m.covariance_matrix
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for k in range(m.components):
        d = x - m.loc[k]
        quad = torch.einsum("ni,ij,nj->n", d, torch.linalg.inv(cov[k]), d)
        norm = (2 * math.pi) ** (-m.dim / 2) * torch.linalg.det(cov[k]) ** -0.5
        total = total + pi[k] * norm * torch.exp(-0.5 * quad)
    return total


cases = given(
    dim=st.integers(1, 4), k=st.integers(1, 4), covariance=st.sampled_from(COVARIANCES), seed=st.integers(0, 2**16)
)


@settings(max_examples=15, deadline=None)
@cases
def test_log_prob_matches_direct_density(dim: int, k: int, covariance: str, seed: int) -> None:
    m = random_mixture(dim, k, covariance, seed)
    x = torch.randn(20, dim, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64) * 1.5
    with torch.no_grad():
        torch.testing.assert_close(m.log_prob(x), torch.log(direct_density(m, x)), rtol=1e-10, atol=1e-10)


@settings(max_examples=10, deadline=None)
@cases
def test_log_prob_matches_scipy(dim: int, k: int, covariance: str, seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    m = random_mixture(dim, k, covariance, seed)
    x = torch.randn(15, dim, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64) * 3
    with torch.no_grad():
        pi, loc, cov = torch.softmax(m.logits, -1).numpy(), m.loc.numpy(), m.covariance_matrix.numpy()
        per = [
            math.log(pi[j]) + stats.multivariate_normal(loc[j], cov[j]).logpdf(x.numpy()).reshape(-1) for j in range(k)
        ]
        expected = torch.from_numpy(special.logsumexp(per, axis=0))
        torch.testing.assert_close(m.log_prob(x), expected, rtol=1e-9, atol=1e-9)


def test_density_integrates_to_one_in_1d() -> None:
    m = random_mixture(1, 3, "full", seed=3)
    grid = torch.linspace(-15, 15, 60001, dtype=torch.float64)
    with torch.no_grad():
        mass = torch.trapezoid(torch.exp(m.log_prob(grid[:, None])), grid)
    assert abs(float(mass) - 1) < 1e-8


def test_log_prob_is_finite_far_from_every_component() -> None:
    m = random_mixture(3, 2, "full", seed=0)
    x = torch.full((1, 3), 1e3, dtype=torch.float64)
    with torch.no_grad():
        assert float(direct_density(m, x)) == 0.0  # underflows outside log space
        assert math.isfinite(float(m.log_prob(x)))


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_set_parameters_round_trip(covariance: str) -> None:
    m = random_mixture(3, 2, covariance, seed=5)
    cov, weights, loc = m.covariance_matrix.detach(), torch.softmax(m.logits, -1).detach(), m.loc.detach().clone()
    natural = {"full": cov, "diag": torch.diagonal(cov, 0, -2, -1), "spherical": cov[:, 0, 0]}[covariance]
    other = GaussianMixture(3, 2, covariance).double()
    other.set_parameters(weights, loc, natural)
    torch.testing.assert_close(other.covariance_matrix, cov)
    torch.testing.assert_close(torch.exp(other.log_weights), weights)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_gradients_match_finite_differences(covariance: str) -> None:
    m = random_mixture(2, 3, covariance, seed=11)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    names = [name for name, _ in m.named_parameters()]

    def f(*values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(m, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, tuple(p.detach().requires_grad_() for p in m.parameters()))


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_sample_moments_and_seed(covariance: str) -> None:
    m = random_mixture(2, 3, covariance, seed=7)
    a = m.sample(100_000, torch.Generator().manual_seed(1))
    b = m.sample(100_000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (100_000, 2) and a.dtype == torch.float64
    with torch.no_grad():
        pi = torch.softmax(m.logits, -1)
        mean = pi @ m.loc
        second = torch.einsum("k,kij->ij", pi, m.covariance_matrix + m.loc[:, :, None] * m.loc[:, None, :])
        cov = second - mean[:, None] * mean[None, :]
    torch.testing.assert_close(a.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(a.T), cov, atol=0.03, rtol=0)


def test_responsibilities_are_a_posterior() -> None:
    m = random_mixture(2, 4, "diag", seed=2)
    x = torch.randn(10, 2, dtype=torch.float64)
    with torch.no_grad():
        r = m.responsibilities(x)
        torch.testing.assert_close(r.sum(-1), torch.ones(10, dtype=torch.float64))
        joint = torch.exp(m.log_weights + m.component_log_prob(x))
        torch.testing.assert_close(r, joint / direct_density(m, x)[:, None])


def test_bad_covariance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="covariance"):
        GaussianMixture(2, 2, "tied")
