r"""The bounds on a linear-Gaussian model (probabilistic PCA), where :math:`\log p(x)` is exact.

:math:`z \sim \mathcal N(0, I_d)`, :math:`x \mid z \sim \mathcal N(Wz + b, \sigma^2 I_n)`, so
:math:`x \sim \mathcal N(b, WW^\top + \sigma^2 I)` and the posterior is
:math:`\mathcal N(\Sigma W^\top (x-b)/\sigma^2, \Sigma)` with :math:`\Sigma = (I + W^\top W/\sigma^2)^{-1}`;
``W`` has orthogonal columns so that :math:`\Sigma` is diagonal and a diagonal ``q`` can equal it.
The encoder and decoder are small modules fed to the same :func:`elbo` and :func:`iwae` the models use.
"""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_vae.bounds import elbo, iwae
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from gmkit_core.distributions import Normal, StandardNormal

pytestmark = pytest.mark.usefixtures("float64_default")

SETTINGS = settings(max_examples=6, deadline=None)


class LinearGaussianEncoder(nn.Module):
    """:math:`q(z\\mid x) = \\mathcal N(A(x - b), \\mathrm{diag}\\, s^2)`."""

    def __init__(self, A: Tensor, b: Tensor, scale: Tensor):
        super().__init__()
        self.A, self.b, self.scale = A, b, scale

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Normal:
        loc = (x - self.b) @ self.A.T  # (B, d)
        return Normal(loc, self.scale.expand_as(loc), event_dims=1)


class LinearGaussianDecoder(nn.Module):
    """:math:`p(x\\mid z) = \\mathcal N(Wz + b, \\sigma^2 I)`."""

    def __init__(self, W: Tensor, b: Tensor, sigma: float):
        super().__init__()
        self.W, self.b, self.sigma = W, b, sigma

    def forward(self, z: Tensor, condition: Tensor | None = None) -> Normal:
        loc = z @ self.W.T + self.b  # (B, n)
        return Normal(loc, torch.full_like(loc, self.sigma), event_dims=1)


class PPCA:
    def __init__(self, seed: int, n: int, d: int):
        g = torch.Generator().manual_seed(seed)
        U, _ = torch.linalg.qr(torch.randn(n, d, generator=g))
        self.W = U * (0.5 + 2 * torch.rand(d, generator=g))  # orthogonal columns
        self.b = torch.randn(n, generator=g)
        self.sigma = 0.3 + 0.7 * float(torch.rand((), generator=g))
        self.x = torch.randn(3, n, generator=g) @ torch.linalg.cholesky(self.W @ self.W.T + torch.eye(n)).T + self.b
        self.decoder = LinearGaussianDecoder(self.W, self.b, self.sigma)
        self.prior = StandardNormal(d).double()

    def log_px(self) -> Tensor:
        n = self.W.shape[0]
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(n)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(self.x)  # (3,)

    def true_posterior(self) -> LinearGaussianEncoder:
        d = self.W.shape[1]
        Sigma = torch.linalg.inv(torch.eye(d) + self.W.T @ self.W / self.sigma**2)
        return LinearGaussianEncoder(Sigma @ self.W.T / self.sigma**2, self.b, Sigma.diagonal().sqrt())

    def poor_posterior(self) -> LinearGaussianEncoder:
        exact = self.true_posterior()
        return LinearGaussianEncoder(0.6 * exact.A, self.b, 1.8 * exact.scale)


def _repeated(x: Tensor, r: int) -> Tensor:
    return x.repeat(r, 1)  # (r*B, n): r independent estimates per example


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 5), d=st.integers(1, 2))
def test_bounds_equal_log_px_under_the_true_posterior(seed: int, n: int, d: int) -> None:
    m = PPCA(seed, n, d)
    q, g = m.true_posterior(), torch.Generator().manual_seed(seed)
    for k in (1, 5, 40):  # every importance weight equals p(x): exact for every draw
        torch.testing.assert_close(iwae(m.x, q, m.decoder, m.prior, k, generator=g, chunk=7), m.log_px())
    r = 2000
    bound = elbo(_repeated(m.x, r), q, m.decoder, m.prior, generator=g).elbo.view(r, -1)
    assert torch.all((bound.mean(0) - m.log_px()).abs() < 5 * bound.std(0) / math.sqrt(r) + 1e-9)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(2, 5), d=st.integers(1, 2))
def test_elbo_below_iwae_below_log_px_and_iwae_grows_with_k(seed: int, n: int, d: int) -> None:
    m = PPCA(seed, n, d)
    q, g, r = m.poor_posterior(), torch.Generator().manual_seed(seed), 400
    log_px = m.log_px()
    bound = elbo(_repeated(m.x, r), q, m.decoder, m.prior, generator=g).elbo.view(r, -1)
    means, errs = [bound.mean(0)], [bound.std(0) / math.sqrt(r)]
    for k in (1, 4, 16, 64):
        est = iwae(_repeated(m.x, r), q, m.decoder, m.prior, k, generator=g, chunk=10).view(r, -1)
        means.append(est.mean(0))
        errs.append(est.std(0) / math.sqrt(r))
    # ELBO and IWAE-1 estimate the same number
    assert torch.all((means[0] - means[1]).abs() < 5 * (errs[0] + errs[1]))
    for i in range(1, len(means) - 1):  # IWAE-k, k = 1, 4, 16, 64: non-decreasing
        assert torch.all(means[i + 1] > means[i] - 4 * (errs[i] + errs[i + 1])), (means[i], means[i + 1])
    assert torch.all(means[-1] <= log_px + 4 * errs[-1])
    # the ELBO's gap is KL(q(z|x) || p(z|x)), both diagonal here; IWAE-64 closes much of it
    exact = m.true_posterior()(m.x)
    gap = q(m.x).kl(exact)  # (3,)
    assert torch.all(gap > 0.05)
    assert torch.all((means[0] - (log_px - gap)).abs() < 5 * errs[0])
    assert torch.all(log_px - means[-1] < 0.5 * gap + 4 * errs[-1])


class _FixedDraws:
    """A posterior whose ``rsample`` hands out a fixed list of latents in order (to check chunking exactly)."""

    def __init__(self, q: Normal, z: Tensor):
        self.q, self.z, self.used = q, z, 0

    def rsample(self, generator: torch.Generator | None = None, sample_shape: tuple[int, ...] = ()) -> Tensor:
        k = sample_shape[0]
        out = self.z[self.used : self.used + k]
        self.used += k
        return out

    def log_prob(self, z: Tensor) -> Tensor:
        return self.q.log_prob(z)


def test_iwae_is_the_log_mean_of_the_importance_weights_in_any_chunking() -> None:
    m = PPCA(3, 4, 2)
    q = m.poor_posterior()(m.x)
    z = q.rsample(torch.Generator().manual_seed(0), (23,))  # (k, B, d)

    # independent computation, one latent at a time
    def log_normal(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        return (-0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum()

    log_w = torch.tensor(
        [
            [
                float(
                    log_normal(m.x[b], m.W @ z[i, b] + m.b, torch.tensor(m.sigma))
                    + log_normal(z[i, b], torch.zeros(2), torch.ones(2))
                    - log_normal(z[i, b], q.loc[b], q.scale[b])
                )
                for b in range(3)
            ]
            for i in range(23)
        ]
    )
    expected = torch.logsumexp(log_w, 0) - math.log(23)
    for chunk in (None, 1, 5, 23, 100):
        got = iwae(m.x, lambda x, c, q=q: _FixedDraws(q, z), m.decoder, m.prior, 23, chunk=chunk)
        torch.testing.assert_close(got, expected)
