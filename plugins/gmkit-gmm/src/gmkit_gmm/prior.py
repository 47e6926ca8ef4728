r"""The ``gmm`` prior: a learned Gaussian mixture :math:`p(z) = \sum_k \pi_k \mathcal N(z; \mu_k, \Sigma_k)`.

A VAE asks for it by name, ``registry.get("prior", "gmm", shape=16, components=10)``,
and trains its parameters with the rest of the model: :meth:`MixturePrior.log_prob`
is differentiable in the weights, means and covariances. Its KL term has no closed
form, so the ELBO uses the Monte Carlo estimate :math:`\log q(z\mid x) - \log p(z)`.
References: Dilokthanakul et al., Gaussian mixture VAEs (2016, arXiv:1611.02648);
Tomczak & Welling, VampPrior (2018, arXiv:1705.07120).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gmkit_core.interfaces import Prior

from .mixture import COVARIANCES, GaussianMixture
from .options import as_choice, as_float, as_int

__all__ = ["MixturePrior"]


class MixturePrior(Prior):
    r"""Learned mixture over latents of shape ``shape`` (flattened to :math:`D` inside).

    ``components`` :math:`K`; ``covariance`` ``full``, ``diag`` (default) or ``spherical``.
    Initialisation: equal weights, unit covariances and means :math:`\mu_k \sim \mathcal N(0, \text{spread}^2 I)`
    drawn from ``seed``, so components start apart and two builds are identical.
    ``log_prob``: ``(B, *shape) -> (B,)``; ``sample(n)``: ``(n, *shape)``.
    """

    def __init__(self, shape: int | tuple[int, ...] = 1, components: int = 10, covariance: str = "diag",
                 spread: float = 1.0, seed: int = 0):
        super().__init__()
        owner = "prior 'gmm'"
        self.shape = (as_int(shape, "shape", owner, 1),) if not isinstance(shape, (tuple, list)) \
            else tuple(as_int(s, "shape", owner, 1) for s in shape)
        k = as_int(components, "components", owner, 1)
        covariance = as_choice(covariance, "covariance", owner, COVARIANCES)
        self.mixture = GaussianMixture(math.prod(self.shape), k, covariance)
        generator = torch.Generator().manual_seed(as_int(seed, "seed", owner))
        with torch.no_grad():
            self.mixture.loc.normal_(0.0, as_float(spread, "spread", owner, 0.0), generator=generator)

    def log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log p(z) = \operatorname{logsumexp}_k(\log\pi_k + \log\mathcal N(z;\mu_k,\Sigma_k))`, ``(B, *shape) -> (B,)``."""
        return self.mixture.log_prob(z.reshape(z.shape[0], -1))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.mixture.sample(n, generator).reshape(n, *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
