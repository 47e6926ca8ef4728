r"""From discrete images to a density on :math:`\mathbb R^D`, with every Jacobian counted.

An image :math:`x \in \{0..L-1\}^D` is dequantised, :math:`y = (x+u)/L`, :math:`u\sim U[0,1)^D`
(:func:`gmkit_core.distributions.dequantize`), then mapped to
:math:`z = \operatorname{logit}(\alpha + (1-2\alpha)\,y)` (:class:`Logit`), where the mixture
lives. A density :math:`p_Z` gives :math:`p_Y(y) = p_Z(z)\,|\det \partial z/\partial y|` on
:math:`[0,1]^D`, and :math:`-\log P(x) \le \mathbb E_u[-\log p_Y(y)] + D\log L`
(:func:`gmkit_core.distributions.dequantization_nats`). The logit puts the hard edges of
:math:`[0,1]` (pixels that are almost always 0 or L-1) at a finite, Gaussian-friendly place.
Reference: Dinh et al., Real NVP (2017, arXiv:1605.08803), section 4.1.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from gmkit_core.interfaces import Transform

__all__ = ["Logit"]


class Logit(Transform):
    r""":math:`z = \log s - \log(1-s)`, :math:`s = \alpha + (1-2\alpha)y`, elementwise on ``(B, D)``.

    :math:`\log|\det J| = \sum_d \log(1-2\alpha) - \log s_d - \log(1-s_d)`; ``alpha`` in ``(0, 1/2)``
    keeps :math:`z` finite on :math:`[0, 1]`.
    """

    def __init__(self, alpha: float):
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
        self.alpha = alpha

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * y
        log_s, log_1ms = s.log(), (-s).log1p()
        return log_s - log_1ms, (math.log1p(-2 * self.alpha) - log_s - log_1ms).sum(-1)

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        log_s, log_1ms = F.logsigmoid(z), F.logsigmoid(-z)
        y = (log_s.exp() - self.alpha) / (1 - 2 * self.alpha)
        return y, (log_s + log_1ms - math.log1p(-2 * self.alpha)).sum(-1)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
