r"""Training objectives for one energy :math:`E_\theta`, ``(B,)`` tensors in, a scalar loss out.

- Contrastive divergence with an energy-magnitude penalty (Du and Mordatch,
  2019, arXiv:1903.08689):
  :math:`\mathcal L = \overline{E(x^+)} - \overline{E(x^-)} + \alpha\,\overline{E(x^+)^2 + E(x^-)^2}`,
  whose gradient in :math:`\theta` estimates that of the negative log-likelihood
  when :math:`x^-` are (approximate) model samples held fixed.
- Denoising score matching (Vincent, 2011): with :math:`\tilde x = x + \sigma\epsilon`,
  :math:`\mathcal L = \tfrac{\sigma^2}{2}\,\overline{\lVert -\nabla_{\tilde x}E(\tilde x) + \epsilon/\sigma\rVert^2}`,
  minimised when :math:`-\nabla E` is the score of the data smoothed by :math:`\mathcal N(0, \sigma^2 I)`.
- Noise-contrastive estimation (Gutmann and Hyvärinen, 2010), one noise draw per
  datum: with :math:`G(x) = \log p_\theta(x) - \log q(x)` and :math:`\log p_\theta = -E - c`
  (:math:`c` a learned :math:`\log Z`),
  :math:`\mathcal L = \overline{\operatorname{softplus}(-G(x))} + \overline{\operatorname{softplus}(G(y))}`,
  :math:`y \sim q`; at the optimum :math:`p_\theta` is the data density and :math:`c = \log Z`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .langevin import Energy, energy_grad

__all__ = ["contrastive_divergence", "denoising_score_matching", "noise_contrastive", "GaussianNoise"]


def contrastive_divergence(e_data: Tensor, e_sample: Tensor, alpha: float) -> Tensor:
    """CD loss with the ``alpha`` energy-magnitude penalty; ``e_data``, ``e_sample``: ``(B,)``."""
    return e_data.mean() - e_sample.mean() + alpha * (e_data.pow(2) + e_sample.pow(2)).mean()


def denoising_score_matching(energy: Energy, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """``(loss, E(x~) (B,))`` for ``x`` ``(B, *shape)``; the noise comes from torch's global RNG."""
    eps = torch.randn_like(x)
    noisy = (x + sigma * eps).requires_grad_(True)
    e, grad = energy_grad(energy, noisy, create_graph=True)
    residual = (-grad + eps / sigma).flatten(1)  # score minus the target score, (B, D)
    return 0.5 * sigma**2 * residual.pow(2).sum(1).mean(), e


def noise_contrastive(log_ratio_data: Tensor, log_ratio_noise: Tensor) -> Tensor:
    r"""NCE loss from :math:`G = \log p_\theta - \log q` at the data and at the noise draws, ``(B,)`` each."""
    return F.softplus(-log_ratio_data).mean() + F.softplus(log_ratio_noise).mean()


class GaussianNoise(nn.Module):
    r"""The NCE noise :math:`q = \mathcal N(\mu, LL^\top)` fitted to the data (flattened to ``D``).

    ``fit(x)`` sets :math:`\mu` and the Cholesky factor :math:`L` of the sample covariance plus
    ``jitter * I``; both are persistent buffers.
    """

    loc: Tensor
    tril: Tensor

    def __init__(self, dim: int, jitter: float = 1e-3):
        super().__init__()
        self.jitter = jitter
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("tril", torch.eye(dim))

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        x = x.flatten(1).double()
        cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1]) + self.jitter * torch.eye(x.shape[1], dtype=x.dtype)
        self.loc.copy_(x.mean(0))
        self.tril.copy_(torch.linalg.cholesky(cov))

    def sample(self, n: int) -> Tensor:
        """``(n, D)`` draws from torch's global RNG."""
        return self.loc + torch.randn(n, self.loc.numel(), dtype=self.loc.dtype, device=self.loc.device) @ self.tril.T

    def log_prob(self, x: Tensor) -> Tensor:
        """``(B,)`` nats of ``x`` ``(B, D)``."""
        z = torch.linalg.solve_triangular(self.tril, (x - self.loc).T, upper=False).T  # (B, D)
        half_logdet = torch.log(torch.diagonal(self.tril)).sum()
        return -0.5 * z.pow(2).sum(1) - half_logdet - 0.5 * x.shape[1] * math.log(2 * math.pi)
