r"""Conditioner networks: they map the conditioning part of the input to the
parameters :math:`\theta` of an elementwise transform.

- :class:`MLP`: ``(B, D_in) -> (B, D, P)`` for coupling layers on vectors.
- :class:`MADE`: ``(B, D) -> (B, D, P)`` where output ``i`` depends only on
  inputs that precede ``i`` in a given order (Germain et al., 2015, arXiv:1502.03509).
- :class:`ConvNet`: ``(B, C, H, W) -> (B, C, H, W, P)``, a small residual CNN for
  coupling layers on images.

Every network ends in a zero-initialised layer, so each flow layer starts as
the identity (all elementwise transforms map zero parameters to the identity).
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor, nn

__all__ = ["MLP", "MADE", "ConvNet", "MaskedLinear"]

#: layers with a ``weight`` and a ``bias`` (what :func:`_zero` initialises)
_Layer = TypeVar("_Layer", bound=nn.Linear | nn.Conv2d)


def _zero(layer: _Layer) -> _Layer:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:  # every caller's layer has one; Conv2d types it optional
        nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """``(B, D_in) -> (B, D, P)``: residual-free MLP with GELU and optional dropout."""

    def __init__(
        self, in_features: int, features: int, params: int, hidden: tuple[int, ...] = (64, 64), dropout: float = 0.0
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(_zero(nn.Linear(width, features * params)))
        self.net = nn.Sequential(*layers)
        self.features, self.params = features, params

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).unflatten(-1, (self.features, self.params))  # (B, D, P)


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed binary connectivity mask ``M`` (out, in)."""

    mask: Tensor

    def __init__(self, mask: Tensor):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    r"""Masked autoencoder: ``(B, D) -> (B, D, P)``, output ``i`` a function of :math:`x_{<i}` only.

    Inputs and outputs carry the degree ``order[i]`` (a permutation of ``1..D``);
    hidden unit ``k`` of every layer gets degree ``k mod (D-1) + 1``. A hidden
    unit of degree ``m`` sees inputs of degree ``<= m``; output ``i`` sees hidden
    units of degree ``< order[i]``, so :math:`\partial \theta_i / \partial x_j = 0`
    unless ``order[j] < order[i]``. Hidden layers are residual when their widths
    match (Nash & Durkan, 2019), with GELU and optional dropout.

    Reference: Germain et al., MADE (2015, arXiv:1502.03509).
    """

    #: the degrees of the inputs and outputs, ``(D,)``
    order: Tensor

    def __init__(
        self,
        features: int,
        params: int,
        hidden: tuple[int, ...] = (64, 64),
        order: Tensor | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        order = torch.arange(1, features + 1) if order is None else torch.as_tensor(order)
        self.register_buffer("order", order.long())
        degrees = [order]
        for h in hidden:
            degrees.append(torch.arange(h) % max(features - 1, 1) + 1)
        self.hidden = nn.ModuleList(
            MaskedLinear((d_out[:, None] >= d_in[None, :]).long())
            for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True)
        )
        out_degrees = order.repeat(params)  # unit p*D + i is parameter p of feature i
        self.out = _zero(MaskedLinear((out_degrees[:, None] > degrees[-1][None, :]).long()))
        self.act, self.drop = nn.GELU(), nn.Dropout(dropout)
        self.features, self.params = features, params

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for i, layer in enumerate(self.hidden):
            a = self.drop(self.act(layer(h)))
            h = h + a if i > 0 and a.shape == h.shape else a
        return self.out(h).unflatten(-1, (self.params, self.features)).transpose(-1, -2)  # (B, D, P)


class _Block(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.GELU(), nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Dropout(dropout), nn.Conv2d(width, width, 1)
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class ConvNet(nn.Module):
    """``(B, C_in, H, W) -> (B, C, H, W, P)``: 3x3 conv, residual blocks, zero-initialised 3x3 conv."""

    def __init__(
        self, in_channels: int, channels: int, params: int, hidden: int = 64, blocks: int = 2, dropout: float = 0.0
    ):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            *[_Block(hidden, dropout) for _ in range(blocks)],
            nn.GELU(),
            _zero(nn.Conv2d(hidden, channels * params, 3, padding=1)),
        )
        self.channels, self.params = channels, params

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)  # (B, P*C, H, W)
        return out.unflatten(1, (self.params, self.channels)).movedim(1, -1)  # (B, C, H, W, P)
