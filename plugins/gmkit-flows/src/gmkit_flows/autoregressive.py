r"""Masked autoregressive layers: MAF, IAF and autoregressive neural splines.

With an order :math:`\pi` of the ``D`` dimensions and a MADE conditioner,

.. math::
    y_i = g\big(x_i;\ \theta_i(x_{\pi < \pi_i})\big),\qquad
    \log|\det J| = \sum_i \log g'(x_i; \theta_i),

the Jacobian being triangular in the order :math:`\pi`. ``forward`` takes one
network pass; ``inverse`` needs ``D`` passes (dimension :math:`\pi_i` is exact
after pass :math:`\pi_i`, a fixed-point sweep). With the model direction
data -> noise this is MAF (fast density, slow sampling); wrapped in
:class:`gmkit_core.transforms.Inverse` it is IAF (fast sampling, slow density).
``g`` affine gives MAF/IAF, ``g`` a rational-quadratic spline gives the
autoregressive NSF.

Shapes: ``x`` is ``(B, D)``; the layer's parameters live in a
:class:`~gmkit_flows.nets.MADE` ``(B, D) -> (B, D, P)``.

References: Papamakarios et al., MAF (2017, arXiv:1705.07057); Kingma et al.,
IAF (2016, arXiv:1606.04934); Durkan et al., NSF (2019, arXiv:1906.04032).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Transform
from gmkit_core.transforms import Inverse

from .elementwise import Elementwise, make_elementwise
from .nets import MADE

__all__ = ["MaskedAutoregressive", "maf_layer", "iaf_layer"]


class MaskedAutoregressive(Transform):
    r"""``y_i = g(x_i; theta_i(x_{<i}))`` with a MADE conditioner; see the module docstring."""

    def __init__(self, elementwise: Elementwise, made: MADE):
        super().__init__()
        self.elementwise, self.made = elementwise, made

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj = self.elementwise.forward(x, self.made(x))
        return y, ladj.sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(y)
        for _ in range(self.made.features):
            x, ladj = self.elementwise.inverse(y, self.made(x))
        return x, ladj.sum(-1)


def maf_layer(
    features: int,
    kind: str = "affine",
    hidden: int = 64,
    depth: int = 2,
    order: str = "forward",
    dropout: float = 0.0,
    bins: int = 8,
    bound: float = 5.0,
    seed: int = 0,
) -> MaskedAutoregressive:
    """A masked autoregressive layer by option names (registered as transforms ``maf`` and ``made_spline``).

    ``order``: ``forward`` (1..D), ``reverse`` (D..1) or ``random`` (a permutation drawn from ``seed``).
    ``kind``: ``affine`` (MAF), ``additive`` or ``spline`` (autoregressive NSF with ``bins``, ``bound``).
    """
    if order == "forward":
        degrees = torch.arange(1, features + 1)
    elif order == "reverse":
        degrees = torch.arange(features, 0, -1)
    elif order == "random":
        degrees = torch.randperm(features, generator=torch.Generator().manual_seed(seed)) + 1
    else:
        raise ConfigError(f"order must be forward, reverse or random, got '{order}'")
    g = make_elementwise(kind, bins=bins, bound=bound)
    return MaskedAutoregressive(g, MADE(features, g.params, (hidden,) * depth, degrees, dropout))


def iaf_layer(
    features: int,
    kind: str = "affine",
    hidden: int = 64,
    depth: int = 2,
    order: str = "forward",
    dropout: float = 0.0,
    bins: int = 8,
    bound: float = 5.0,
    seed: int = 0,
) -> Inverse:
    """IAF: the inverse of :func:`maf_layer` (one pass to sample, ``D`` passes to evaluate a density)."""
    return Inverse(maf_layer(features, kind, hidden, depth, order, dropout, bins, bound, seed))
