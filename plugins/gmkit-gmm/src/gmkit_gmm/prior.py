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
from typing import Any

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.config import make_config, option
from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Prior

from .mixture import COVARIANCES, GaussianMixture

__all__ = ["MixturePrior"]


@attrs.frozen
class MixturePriorOptions:
    """Options of the ``gmm`` prior (strings from the command line are converted and checked)."""

    components: int = option(10, "number of components K", v.ge(1))
    covariance: str = option("diag", "covariance of each component: full, diag or spherical", v.in_(COVARIANCES))
    spread: float = option(1.0, "standard deviation of the initial means", v.ge(0.0))
    seed: int = option(0, "seed of the initial means")


class MixturePrior(Prior):
    r"""Learned mixture over latents of shape ``shape`` (flattened to :math:`D` inside).

    ``components`` :math:`K`; ``covariance`` ``full``, ``diag`` (default) or ``spherical``.
    Initialisation: equal weights, unit covariances and means :math:`\mu_k \sim \mathcal N(0, \text{spread}^2 I)`
    drawn from ``seed``, so components start apart and two builds are identical.
    ``log_prob``: ``(B, *shape) -> (B,)``; ``sample(n)``: ``(n, *shape)``.
    """

    def __init__(self, shape: int | tuple[int, ...] = 1, **options: Any):
        super().__init__()
        owner = "prior 'gmm'"
        try:
            self.shape = tuple(int(s) for s in ((shape,) if isinstance(shape, (int, str)) else shape))
        except (TypeError, ValueError):
            raise ConfigError(f"{owner}: shape must be positive integers, got {shape!r}") from None
        if not self.shape or min(self.shape) < 1:
            raise ConfigError(f"{owner}: shape must be positive integers, got {shape!r}")
        self.options = make_config(MixturePriorOptions, options, owner=owner)
        self.mixture = GaussianMixture(math.prod(self.shape), self.options.components, self.options.covariance)
        generator = torch.Generator().manual_seed(self.options.seed)
        with torch.no_grad():
            self.mixture.loc.normal_(0.0, self.options.spread, generator=generator)

    def log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log p(z) = \operatorname{logsumexp}_k(\log\pi_k + \log\mathcal N(z;\mu_k,\Sigma_k))`, ``(B, *shape) -> (B,)``."""
        return self.mixture.log_prob(z.reshape(z.shape[0], -1))

    @torch.no_grad()
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if condition is not None:
            raise ConfigError("prior 'gmm' is unconditional")
        return self.mixture.sample(n, generator).reshape(n, *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
