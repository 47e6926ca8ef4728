r"""Volume-preserving rearrangements for images: squeeze, multi-scale split, reshape.

- :class:`Squeeze`: space-to-depth, ``(B, C, H, W) -> (B, 4C, H/2, W/2)``; each
  2x2 patch becomes 4 channels (RealNVP, Dinh et al., 2016, arXiv:1605.08803, fig. 3).
- :class:`Split`: the multi-scale architecture. Half the channels are factored
  out (passed through unchanged, later scored by the base density) and an inner
  transform acts on the rest: :math:`y = (x_{out},\ f(x_{in}))`, so
  :math:`\log|\det J| = \log|\det J_f(x_{in})|`. The output keeps the input's
  shape, so levels nest: ``Squeeze, steps, Split(Squeeze, steps, Split(...), Unsqueeze), Unsqueeze``.
- :class:`Reshape`: ``(B, *in) -> (B, *out)``, e.g. to run a vector flow on flattened images.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Transform

__all__ = ["Squeeze", "Split", "Reshape"]


class Squeeze(Transform):
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: channel ``4c + 2i + j`` holds pixel ``(2h+i, 2w+j)`` of channel ``c``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ConfigError(f"squeeze needs even height and width, got {h}x{w}")
        y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(b)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        b, c4, h, w = y.shape
        x = y.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)
        return x, y.new_zeros(b)


class Split(Transform):
    r"""``(x_out, x_in) -> (x_out, f(x_in))`` along channels; ``out_channels`` are factored out.

    ``f`` must keep the shape of ``x_in``. With a standard-normal base the
    factored-out channels are scored as :math:`\mathcal N(0, I)` directly, as in
    RealNVP's multi-scale architecture.
    """

    def __init__(self, out_channels: int, inner: Transform):
        super().__init__()
        self.out_channels, self.inner = out_channels, inner

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_out, x_in = x[:, : self.out_channels], x[:, self.out_channels :]
        y_in, ladj = self.inner(x_in)
        return torch.cat([x_out, y_in], 1), ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        y_out, y_in = y[:, : self.out_channels], y[:, self.out_channels :]
        x_in, ladj = self.inner.inverse(y_in)
        return torch.cat([y_out, x_in], 1), ladj


class Reshape(Transform):
    """``(B, *in_shape) <-> (B, *out_shape)`` (same number of elements), log-det 0."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        super().__init__()
        if math.prod(in_shape) != math.prod(out_shape):
            raise ConfigError(f"cannot reshape {in_shape} to {out_shape}")
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], *self.out_shape), x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.reshape(y.shape[0], *self.in_shape), y.new_zeros(y.shape[0])
