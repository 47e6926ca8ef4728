"""Composition of :class:`~gmkit_core.interfaces.Transform` objects."""

from __future__ import annotations

from torch import Tensor, nn

from .interfaces import Transform

__all__ = ["Compose", "Inverse"]


class Compose(Transform):
    r""":math:`f = f_K \circ \dots \circ f_1`; :math:`\log|\det J_f(x)| = \sum_k \log|\det J_{f_k}(x_{k-1})|`."""

    def __init__(self, *transforms: Transform):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ladj = t(x)
            total = total + ladj
        return x, total

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])
        for t in reversed(self.transforms):
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
