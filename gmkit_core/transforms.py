r"""Transforms shared by the families: composition, inversion and the logit preprocessing.

- :class:`Compose` and :class:`Inverse` build new :class:`~gmkit_core.interfaces.Transform` objects.
- :class:`Logit`: :math:`y = \operatorname{logit}(p)`, :math:`p = \alpha + (1 - 2\alpha) x`, maps
  :math:`(0, 1)` (dequantised data, :func:`gmkit_core.distributions.dequantize`) to :math:`\mathbb R`;
  the squeeze :math:`\alpha` keeps the edges of :math:`[0, 1]` at a finite place (RealNVP uses
  :math:`\alpha = 0.05`). Its log-Jacobian is
  :math:`\log|\det J| = \sum_i \log(1-2\alpha) - \log p_i - \log(1-p_i)`.

Reference: Dinh et al., RealNVP (2017, arXiv:1605.08803), section 4.1.
"""

from __future__ import annotations

import math
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError
from .interfaces import Transform

__all__ = ["Compose", "Inverse", "Logit"]


class Compose(Transform):
    r""":math:`f = f_K \circ \dots \circ f_1`; :math:`\log|\det J_f(x)| = \sum_k \log|\det J_{f_k}(x_{k-1})|`."""

    def __init__(self, *transforms: Transform):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def _steps(self) -> list[Transform]:
        return [cast(Transform, t) for t in self.transforms]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for t in self._steps():
            x, ladj = t(x)
            total = total + ladj
        return x, total

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])
        for t in reversed(self._steps()):
            y, ladj = t.inverse(y)
            total = total + ladj
        return y, total


class Inverse(Transform):
    """:math:`f^{-1}` as a transform (e.g. IAF from MAF): forward and inverse swapped."""

    def __init__(self, transform: Transform):
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(y)


class Logit(Transform):
    r""":math:`(0,1) \to \mathbb R` elementwise on ``(B, *)``: :math:`y = \log p - \log(1-p)`, :math:`p = \alpha + (1-2\alpha)x`.

    ``alpha`` in ``[0, 1/2)``; log-dets ``(B,)`` sum over all but the first dimension.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ConfigError(f"logit alpha must lie in [0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_q = p.log(), (-p).log1p()
        ladj = math.log1p(-2 * self.alpha) - log_p - log_q
        return log_p - log_q, ladj.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        log_p, log_q = F.logsigmoid(y), F.logsigmoid(-y)
        x = (log_p.exp() - self.alpha) / (1 - 2 * self.alpha)
        return x, (log_p + log_q - math.log1p(-2 * self.alpha)).flatten(1).sum(1)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
