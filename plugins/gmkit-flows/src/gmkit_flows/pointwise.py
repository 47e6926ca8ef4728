r"""Fixed elementwise transforms for preprocessing, with exact log-dets.

- :class:`~gmkit_core.transforms.Logit` (the core's, registered here as ``logit``):
  :math:`y = \operatorname{logit}(\alpha + (1 - 2\alpha) x)` maps :math:`(0, 1)` to :math:`\mathbb R`.
- :func:`sigmoid`: the inverse of ``Logit``, as :class:`gmkit_core.transforms.Inverse`.
- :class:`ScaleShift`: :math:`y = a x + b` with fixed scalars, :math:`\log|\det J| = D \log|a|`.

``x`` is ``(B, *)``; ``D`` the number of elements per example.
Reference: Dinh et al., RealNVP (2016, arXiv:1605.08803), sec. 4.1.
"""

from __future__ import annotations

import math

from torch import Tensor

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Transform
from gmkit_core.transforms import Inverse, Logit

__all__ = ["Logit", "sigmoid", "ScaleShift"]


def _dims(x: Tensor) -> int:
    return math.prod(x.shape[1:])


def sigmoid(alpha: float = 0.0) -> Inverse:
    r""":math:`\mathbb R \to (0, 1)`: :math:`x = (\sigma(y) - \alpha)/(1 - 2\alpha)`, the inverse of :class:`Logit`."""
    return Inverse(Logit(alpha))


class ScaleShift(Transform):
    r""":math:`y = a x + b` elementwise with fixed scalars ``scale`` :math:`a \ne 0` and ``shift`` :math:`b`."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0):
        super().__init__()
        if scale == 0:
            raise ConfigError("scale must be non-zero")
        self.scale, self.shift = float(scale), float(shift)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * self.scale + self.shift, x.new_full((x.shape[0],), _dims(x) * math.log(abs(self.scale)))

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return (y - self.shift) / self.scale, y.new_full((y.shape[0],), -_dims(y) * math.log(abs(self.scale)))
