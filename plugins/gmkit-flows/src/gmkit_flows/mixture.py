r"""Mixture-of-Gaussians base densities: MADE MoG (the base of "MAF MoG") and a learned diagonal mixture.

**MADE MoG** (:class:`MADEMoG`).
Over ``u`` of shape ``(B, D)``, in an order :math:`\pi` of the dimensions,

.. math::
    p(u) = \prod_{i=1}^D \sum_{c=1}^C \pi_{ic}\,
           \mathcal N\big(u_i;\ \mu_{ic},\ \sigma_{ic}^2\big),\qquad
    (\pi_{i\cdot}, \mu_{i\cdot}, \log\sigma_{i\cdot}) = \theta_i(u_{\pi < \pi_i}),

with :math:`\pi_{i\cdot} = \operatorname{softmax}` of ``C`` logits and a MADE conditioner
(:class:`~gmkit_flows.nets.MADE`, ``(B, D) -> (B, D, 3C)``). The log-scales are
soft-clamped, :math:`\log\sigma = c\tanh(\tilde\ell / c)` with ``c = 5``, which
keeps a collapsing component from producing infinite densities.

MAF MoG puts this density on top of a MAF: :math:`\log p(x) = \log p_{\text{MoG}}(f(x)) +
\log|\det J_f(x)|` (Papamakarios et al., 2017, arXiv:1705.07057, section 3.4;
MADE MoG: Germain et al., 2015, arXiv:1502.03509 and Uria et al., 2016, arXiv:1605.02226).
Multimodal conditionals are then modelled by the mixture instead of by folding space
with affine layers.

The conditioner's last layer has zero weights, so every conditional starts independent
of the other dimensions; its biases place the ``C`` means at the standard-normal
quantiles :math:`\Phi^{-1}((c - \tfrac12)/C)` with a common scale
:math:`\sigma_0 = 1/\sqrt C`, which breaks the symmetry between components (equal
components would receive equal gradients forever). Sampling takes ``D`` passes of
the MADE, one per dimension in the order.

**Diagonal mixture** (:class:`GaussianMixture`), the base of coupling flows on vectors:

.. math::
    p(z) = \sum_{k=1}^K \pi_k \prod_{i=1}^D \mathcal N\big(z_i;\ \mu_{ki},\ \sigma_{ki}^2\big),

with learned logits, means and log-scales (FlowGMM's base, Izmailov et al., 2020,
arXiv:1912.13025). A flow with this base only has to move each cluster of the data onto
one component rather than tear one Gaussian into several modes. Initialisation: equal
weights, means :math:`\mathcal N(0, I)` drawn from ``seed`` (components start apart), scales
:math:`1/\sqrt K`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gmkit_core.interfaces import Prior

from .nets import MADE

__all__ = ["MADEMoG", "GaussianMixture"]

#: soft clamp of the log-scales (see the module docstring)
LOG_SCALE_CLAMP = 5.0


class MADEMoG(Prior):
    r"""Autoregressive mixture of ``components`` Gaussians per dimension over events of shape ``shape``.

    Events are flattened to ``D = prod(shape)`` dimensions; ``order``: their degrees (a
    permutation of ``1..D``), default ``1..D``.
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        components: int = 10,
        hidden: int = 128,
        depth: int = 2,
        order: Tensor | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        features = math.prod(self.shape)
        self.features, self.components = features, components
        self.made = MADE(features, 3 * components, (hidden,) * depth, order, dropout)
        with torch.no_grad():  # parameter p of feature i is output unit p * D + i (MADE's layout)
            bias = self.made.out.bias.view(3 * components, features)
            levels = (torch.arange(components, dtype=torch.float64) + 0.5) / components
            quantiles = math.sqrt(2) * torch.erfinv(2 * levels - 1)
            bias[components : 2 * components] = quantiles.to(bias.dtype)[:, None]
            bias[2 * components :] = -0.5 * math.log(components)

    def params(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log weights, means, log-scales)``, each ``(B, D, C)``, of the conditionals given flat ``u`` ``(B, D)``."""
        theta = self.made(u)  # (B, D, 3C)
        c = self.components
        logits, mean, raw = theta[..., :c], theta[..., c : 2 * c], theta[..., 2 * c :]
        log_scale = LOG_SCALE_CLAMP * torch.tanh(raw / LOG_SCALE_CLAMP)
        return torch.log_softmax(logits, -1), mean, log_scale

    def log_prob(self, u: Tensor) -> Tensor:
        r""":math:`\sum_i \log \sum_c \pi_{ic} \mathcal N(u_i; \mu_{ic}, \sigma_{ic}^2)`: ``(B, *shape) -> (B,)`` nats."""
        u = u.flatten(1)
        log_w, mean, log_scale = self.params(u)
        z = (u.unsqueeze(-1) - mean) * torch.exp(-log_scale)
        log_normal = -0.5 * z.square() - log_scale - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(log_w + log_normal, -1).sum(-1)

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *shape)`` draws: pass ``k`` of the MADE fixes the dimension of degree ``k``."""
        if condition is not None:
            raise ValueError("a MADE MoG is unconditional")
        weight = self.made.out.weight
        u = torch.zeros(n, self.features, dtype=weight.dtype, device=weight.device)
        order = self.made.order
        with torch.no_grad():
            for k in range(1, self.features + 1):
                log_w, mean, log_scale = self.params(u)
                pick = torch.multinomial(log_w.exp().flatten(0, 1), 1, generator=generator).view(n, self.features, 1)
                eps = torch.randn(u.shape, generator=generator, dtype=u.dtype, device=u.device)
                draw = mean.gather(-1, pick).squeeze(-1) + log_scale.gather(-1, pick).squeeze(-1).exp() * eps
                u = torch.where(order == k, draw, u)
        return u.view(n, *self.shape)


class GaussianMixture(Prior):
    r"""Learned mixture of ``components`` diagonal Gaussians over events of shape ``shape`` (flattened to ``D``)."""

    def __init__(self, shape: int | tuple[int, ...], components: int = 10, seed: int = 0):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        features = math.prod(self.shape)
        self.components = components
        means = torch.randn(components, features, generator=torch.Generator().manual_seed(seed))
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(means)
        self.log_scales = nn.Parameter(torch.full((components, features), -0.5 * math.log(components)))

    def log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log \sum_k \pi_k \prod_i \mathcal N(z_i; \mu_{ki}, \sigma_{ki}^2)`: ``(B, *shape) -> (B,)`` nats."""
        z = z.flatten(1).unsqueeze(1)  # (B, 1, D)
        log_scale = LOG_SCALE_CLAMP * torch.tanh(self.log_scales / LOG_SCALE_CLAMP)  # (K, D)
        w = (z - self.means) * torch.exp(-log_scale)
        log_normal = (-0.5 * w.square() - log_scale - 0.5 * math.log(2 * math.pi)).sum(-1)  # (B, K)
        return torch.logsumexp(torch.log_softmax(self.logits, 0) + log_normal, -1)

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *shape)`` draws: a component by its weight, then its Gaussian."""
        if condition is not None:
            raise ValueError("a Gaussian mixture base is unconditional")
        with torch.no_grad():
            pick = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True, generator=generator)
            eps = torch.randn(
                n, self.means.shape[1], generator=generator, dtype=self.means.dtype, device=self.means.device
            )
            log_scale = LOG_SCALE_CLAMP * torch.tanh(self.log_scales / LOG_SCALE_CLAMP)
            z = self.means[pick] + log_scale[pick].exp() * eps
        return z.view(n, *self.shape)
