r"""Expectation-maximisation for :class:`~gmkit_gmm.mixture.GaussianMixture`, in torch.

Given data :math:`x_{1..N}` (``(N, D)``), each iteration

- **E-step**: responsibilities :math:`r_{nk} = \pi_k\mathcal N(x_n;\mu_k,\Sigma_k) / p(x_n)`
  and the mean log-likelihood :math:`\ell = \frac1N\sum_n \log p(x_n)`;
- **M-step**: with :math:`N_k = \sum_n r_{nk}`,
  :math:`\pi_k = N_k/N`, :math:`\mu_k = \frac{1}{N_k}\sum_n r_{nk} x_n` and
  :math:`\Sigma_k = \frac{1}{N_k}\sum_n r_{nk}(x_n-\mu_k)(x_n-\mu_k)^\top + \lambda I`
  (``diag`` keeps the diagonal, ``spherical`` its mean), where :math:`\lambda`
  (``reg_covar``) keeps every covariance positive definite.

With :math:`\lambda = 0` no iteration lowers :math:`\ell` (Dempster, Laird & Rubin, 1977);
the fit stops when :math:`\ell` changes by less than ``tol`` nats per example.
Initialisation: k-means++ seeding (Arthur & Vassilvitskii, 2007) refined by a few
Lloyd iterations, then one M-step from the hard assignments.
Reference: Bishop, Pattern Recognition and Machine Learning (2006), section 9.2.2.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from .mixture import GaussianMixture

__all__ = ["EMResult", "kmeans_plusplus", "kmeans", "e_step", "m_step", "initialize", "fit_em"]


@attrs.frozen
class EMResult:
    """``log_likelihood[i]``: mean :math:`\\ell` (nats per example) after ``i`` M-steps; ``converged`` within ``tol``."""

    log_likelihood: tuple[float, ...]
    converged: bool

    @property
    def iterations(self) -> int:
        return len(self.log_likelihood) - 1

    @property
    def final(self) -> float:
        return self.log_likelihood[-1]


def kmeans_plusplus(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    r"""``k`` centres ``(k, D)`` from ``x`` ``(N, D)``: the first uniform, each next with probability :math:`\propto` squared distance to the nearest chosen."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator, device=x.device))
    centres = [x[first]]
    d2 = (x - x[first]).square().sum(-1).double()
    for _ in range(1, k):
        total = float(d2.sum())
        probs = d2 / total if total > 0 else torch.full_like(d2, 1.0 / n)
        i = int(torch.multinomial(probs, 1, generator=generator))
        centres.append(x[i])
        d2 = torch.minimum(d2, (x - x[i]).square().sum(-1).double())
    return torch.stack(centres)


def kmeans(x: Tensor, k: int, iterations: int = 10, generator: torch.Generator | None = None) -> Tensor:
    """Cluster labels ``(N,)`` after k-means++ seeding and ``iterations`` Lloyd steps (empty clusters keep their centre)."""
    centres = kmeans_plusplus(x, k, generator)
    labels = torch.cdist(x, centres).argmin(-1)
    for _ in range(iterations):
        counts = torch.bincount(labels, minlength=k).to(x.dtype)  # (k,)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        new = torch.cdist(x, centres).argmin(-1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


@torch.no_grad()
def e_step(mixture: GaussianMixture, x: Tensor, batch_size: int = 4096) -> tuple[Tensor, float]:
    """Responsibilities ``(N, K)`` and the mean log-likelihood, in batches of ``batch_size`` rows."""
    resp, total = [], 0.0
    for chunk in x.split(batch_size):
        joint = mixture.joint_log_prob(chunk)  # (b, K)
        log_px = torch.logsumexp(joint, -1, keepdim=True)
        resp.append(torch.exp(joint - log_px))
        total += float(log_px.double().sum())
    return torch.cat(resp), total / x.shape[0]


@torch.no_grad()
def m_step(mixture: GaussianMixture, x: Tensor, resp: Tensor, reg_covar: float) -> None:
    r"""Closed-form maximiser of the expected complete-data log-likelihood, written into ``mixture``.

    ``x``: ``(N, D)``, ``resp``: ``(N, K)`` (rows sum to one). Sums run in float64.
    """
    x, resp = x.double(), resp.double()
    nk = resp.sum(0) + 10 * torch.finfo(torch.float64).eps  # (K,)
    loc = (resp.T @ x) / nk[:, None]  # (K, D)
    if mixture.covariance == "full":
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        cov = torch.stack([(x - loc[k]).T @ ((x - loc[k]) * resp[:, k : k + 1]) for k in range(mixture.components)])
        cov = cov / nk[:, None, None]  # (K, D, D)
        cov = 0.5 * (cov + cov.transpose(-1, -2)) + reg_covar * eye
    else:
        var = (resp.T @ x.square()) / nk[:, None] - loc.square()  # E_r[x^2] - mu^2, (K, D)
        var = var.clamp_min(0) + reg_covar  # (K, D)
        cov = var if mixture.covariance == "diag" else var.mean(-1)
    mixture.set_parameters(nk / nk.sum(), loc, cov)


@torch.no_grad()
def initialize(
    mixture: GaussianMixture,
    x: Tensor,
    reg_covar: float,
    kmeans_iterations: int = 10,
    generator: torch.Generator | None = None,
) -> None:
    """k-means++ and Lloyd steps give hard assignments; one M-step turns them into a mixture."""
    labels = kmeans(x, mixture.components, kmeans_iterations, generator)
    resp = torch.nn.functional.one_hot(labels, mixture.components).to(x.dtype)
    m_step(mixture, x, resp, reg_covar)


@torch.no_grad()
def fit_em(
    mixture: GaussianMixture,
    x: Tensor,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    reg_covar: float = 1e-6,
    kmeans_iterations: int = 10,
    init: bool = True,
    generator: torch.Generator | None = None,
) -> EMResult:
    r"""Fit ``mixture`` to ``x`` ``(N, D)`` by EM; returns the :math:`\ell` trace.

    ``init=False`` starts from the mixture's current parameters. Stops after
    ``max_iter`` M-steps or once :math:`|\ell_i - \ell_{i-1}| <` ``tol``.
    """
    if x.shape[0] < mixture.components:
        raise ValueError(f"EM needs at least as many points ({x.shape[0]}) as components ({mixture.components})")
    x = x.to(mixture.loc.dtype)
    if init:
        initialize(mixture, x, reg_covar, kmeans_iterations, generator)
    trace: list[float] = []
    converged = False
    for _ in range(max_iter + 1):
        resp, ll = e_step(mixture, x)
        if not math.isfinite(ll):
            raise FloatingPointError("EM log-likelihood is not finite; raise reg_covar")
        converged = bool(trace) and abs(ll - trace[-1]) < tol
        trace.append(ll)
        if converged or len(trace) > max_iter:
            break
        m_step(mixture, x, resp, reg_covar)
    return EMResult(tuple(trace), converged)
