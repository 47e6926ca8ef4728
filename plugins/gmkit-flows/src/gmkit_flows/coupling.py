r"""Coupling layers: half the dimensions condition an elementwise map of the other half.

With a binary mask :math:`m` (1 = conditioning, kept), :math:`x_A = m \odot x`,

.. math::
    y = m \odot x + (1 - m) \odot g\big(x; \theta(x_A)\big),\qquad
    \log|\det J| = \sum_{i:\,m_i = 0} \log g'(x_i; \theta_i(x_A)),

the Jacobian being triangular. The inverse applies :math:`g^{-1}` with the same
:math:`\theta(x_A)` (since :math:`y_A = x_A`). The map ``g`` makes the layer
NICE (:class:`~gmkit_flows.elementwise.Additive`), RealNVP
(:class:`~gmkit_flows.elementwise.Affine`) or a spline coupling
(:class:`~gmkit_flows.elementwise.RationalQuadraticSpline`).

Shapes: ``x`` is ``(B, *event)``; the mask has shape ``event``; the
conditioner maps ``(B, *event) -> (B, *event, P)``.

References: Dinh et al., NICE (2014, arXiv:1410.8516); RealNVP (2016,
arXiv:1605.08803); Durkan et al., Neural Spline Flows (2019, arXiv:1906.04032).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Transform

from .elementwise import Elementwise, make_elementwise
from .nets import MLP, ConvNet

__all__ = ["Coupling", "checkerboard_mask", "channel_mask", "half_mask", "coupling"]


def half_mask(features: int, parity: int = 0) -> Tensor:
    """``(D,)``: the first half of the dimensions conditions (``parity=1``: the second half)."""
    m = torch.arange(features) < features // 2
    return m if parity == 0 else ~m


def checkerboard_mask(shape: tuple[int, int, int], parity: int = 0) -> Tensor:
    """``(C, H, W)``: pixels with ``(h + w + parity)`` even condition (RealNVP's spatial mask)."""
    c, h, w = shape
    board = (torch.arange(h)[:, None] + torch.arange(w)[None, :] + parity) % 2 == 0
    return board.expand(c, h, w).clone()


def channel_mask(shape: tuple[int, int, int], parity: int = 0) -> Tensor:
    """``(C, H, W)``: the first half of the channels condition (``parity=1``: the second half)."""
    c, h, w = shape
    m = (torch.arange(c) < c // 2)[:, None, None].expand(c, h, w).clone()
    return m if parity == 0 else ~m


class Coupling(Transform):
    """``y = m*x + (1-m)*g(x; net(m*x))``; see the module docstring for the math."""

    mask: Tensor

    def __init__(self, mask: Tensor, elementwise: Elementwise, net: nn.Module):
        super().__init__()
        self.register_buffer("mask", mask.bool())
        self.elementwise, self.net = elementwise, net

    def _theta(self, x: Tensor) -> Tensor:
        return self.net(x * self.mask.to(x.dtype))  # (B, *event, P)

    def _finish(self, x: Tensor, y: Tensor, ladj: Tensor) -> tuple[Tensor, Tensor]:
        y = torch.where(self.mask, x, y)
        ladj = torch.where(self.mask, torch.zeros_like(ladj), ladj)
        return y, ladj.flatten(1).sum(1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, ladj = self.elementwise.forward(x, self._theta(x))
        return self._finish(x, y, ladj)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x, ladj = self.elementwise.inverse(y, self._theta(y))
        return self._finish(y, x, ladj)


def coupling(
    shape: int | tuple[int, ...],
    kind: str = "affine",
    mask: str = "half",
    parity: int = 0,
    hidden: int = 64,
    depth: int = 2,
    dropout: float = 0.0,
    bins: int = 8,
    bound: float = 5.0,
) -> Coupling:
    """A coupling layer by option names (the registered ``transform`` components).

    ``shape``: ``D`` for vectors (``mask="half"``, MLP conditioner with ``depth``
    hidden layers of width ``hidden``) or ``(C, H, W)`` for images
    (``mask="checkerboard"`` or ``"channel"``, residual CNN with ``depth`` blocks).
    ``kind``: ``additive`` (NICE), ``affine`` (RealNVP) or ``spline`` (NSF, ``bins``, ``bound``).
    """
    g = make_elementwise(kind, bins=bins, bound=bound)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if len(shape) == 1:
        if mask != "half":
            raise ConfigError(f"vector coupling uses mask 'half', got '{mask}'")
        net = MLP(shape[0], shape[0], g.params, (hidden,) * depth, dropout)
        return Coupling(half_mask(shape[0], parity), g, net)
    if len(shape) != 3 or mask not in ("checkerboard", "channel"):
        raise ConfigError(
            f"image coupling needs shape (C, H, W) and mask 'checkerboard' or 'channel', got {shape}, '{mask}'"
        )
    m = checkerboard_mask(shape, parity) if mask == "checkerboard" else channel_mask(shape, parity)
    return Coupling(m, g, ConvNet(shape[0], shape[0], g.params, hidden, depth, dropout))
