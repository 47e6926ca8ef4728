r"""The PixelCNN network: embedding -> causal stack -> per-sub-pixel parameters.

``x``: ``(B, C, H, W)`` int64 levels in ``[0, L)`` -> ``params``: ``(B, C, H, W, P)``,
where ``params[:, c, i, j]`` parameterises :math:`p(x_{i,j,c} \mid x_{<(i,j,c)}, y)`
and depends on nothing at or after ``(i, j, c)`` in model order.

1. Embedding: each channel ``c`` has its own table, ``e = E_c[x_c]``, laid out
   channel-major, ``(B, C*E, H, W)``, so group ``c`` of the input is channel ``c``.
2. A causal stack (:mod:`gmkit_pixelcnn.stacks`), ``(B, F, H, W)``.
3. Head: :math:`\mathrm{ReLU} \to 1{\times}1_B \to \mathrm{ReLU} \to 1{\times}1_B`
   to ``C*P`` outputs, where output group ``c`` holds channel ``c``'s parameters,
   plus (``position_bias``) a learned bias per sub-pixel and parameter,
   ``b``: ``(C*P, H, W)``, which no data enters, so causality is untouched; it
   gives the translation-equivariant convolutions each position's marginal
   (small images of centred objects, code maps with fixed layouts).

The incremental path (:meth:`PixelCNNNet.start`, :meth:`step`, :meth:`write`,
:meth:`end_row`) gives the same parameters one pixel at a time, for sampling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .conditioning import ConditionEncoder
from .config import PixelCNNConfig
from .masked import MaskedConv2d, centre_mask, groups
from .stacks import ARCHS, GatedStack, PlainStack

__all__ = ["PixelCNNNet", "Stepper", "ordinal_embedding"]


def ordinal_embedding(levels: int, dim: int) -> Tensor:
    r"""``(levels, dim)`` table with row ``l`` = :math:`\cos(\pi k u)`, :math:`u = l / (L - 1)`, ``k = 1..dim``.

    Low frequencies first: nearby levels get nearby rows (the first feature is
    monotone in the level), so a network over 256 levels need not learn their
    order from scratch.
    """
    u = torch.arange(levels, dtype=torch.float64) / max(levels - 1, 1)
    k = torch.arange(1, dim + 1, dtype=torch.float64)
    return torch.cos(torch.pi * u[:, None] * k[None, :]).to(torch.get_default_dtype())


class PixelCNNNet(nn.Module):
    """Masked network over ``channels``-channel images with ``levels`` levels and ``P`` outputs per sub-pixel."""

    offsets: Tensor

    def __init__(
        self,
        config: PixelCNNConfig,
        channels: int,
        levels: int,
        params_per_dim: int,
        condition_kind: str | None = None,
        condition_size: int = 0,
        size: tuple[int, int] | None = None,
    ):
        super().__init__()
        if config.hidden < channels:
            raise ValueError(f"hidden={config.hidden} must be at least the number of channels ({channels})")
        self.channels, self.levels, self.params_per_dim = channels, levels, params_per_dim
        self.embed_dim = config.embed_dim
        self.embedding = nn.Embedding(channels * levels, config.embed_dim)
        if config.embed_init == "ordinal":
            with torch.no_grad():
                self.embedding.weight.copy_(ordinal_embedding(levels, config.embed_dim).repeat(channels, 1))
        self.register_buffer("offsets", torch.arange(channels) * levels, persistent=False)
        self.condition = ConditionEncoder(condition_kind, condition_size)
        self.stack: GatedStack | PlainStack = ARCHS[config.arch](
            channels * config.embed_dim,
            config.hidden,
            channels,
            config.layers,
            config.kernel_size,
            config.first_kernel_size,
            self.condition.size,
            config.dropout,
        )
        g_hidden, g_out = groups(config.hidden, channels), groups(channels * params_per_dim, channels)
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(centre_mask(g_hidden, g_hidden, "B")[:, :, None, None], (0, 0)),
            nn.ReLU(),
            MaskedConv2d(centre_mask(g_hidden, g_out, "B")[:, :, None, None], (0, 0)),
        )
        self.size = size
        self.position_bias = None
        if config.position_bias:
            if size is None:
                raise ValueError("position_bias needs the image size")
            self.position_bias = nn.Parameter(torch.zeros(channels * params_per_dim, *size))

    def embed(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` levels -> ``(B, C*E, H, W)``; feature ``c*E + k`` is channel ``c``'s ``k``-th."""
        b, c, h, w = x.shape
        e = self.embedding(x + self.offsets[:, None, None])  # (B, C, H, W, E)
        return e.permute(0, 1, 4, 2, 3).reshape(b, c * self.embed_dim, h, w)

    def encode_condition(self, condition: Tensor | None, e: Tensor) -> Tensor | None:
        b, _, h, w = e.shape
        return self.condition(condition, b, h, w, like=e)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """``(B, C, H, W)`` int64 -> ``(B, C, H, W, P)`` parameters."""
        return self.from_embedding(self.embed(x), condition)

    def from_embedding(self, e: Tensor, condition: Tensor | None = None) -> Tensor:
        """The network after the embedding (differentiable in ``e``: the causality tests use it)."""
        if self.position_bias is not None and tuple(e.shape[-2:]) != self.size:
            raise ValueError(f"this PixelCNN was built for {self.size} images, got {tuple(e.shape[-2:])}")
        h = self.stack(e, self.encode_condition(condition, e))  # (B, F, H, W)
        out = self.head(h)  # (B, C*P, H, W)
        if self.position_bias is not None:
            out = out + self.position_bias
        return self._params(out)  # (B, C, H, W, P)

    def _params(self, out: Tensor) -> Tensor:
        b, _, h, w = out.shape
        return out.view(b, self.channels, self.params_per_dim, h, w).permute(0, 1, 3, 4, 2)

    # -- incremental evaluation (the fast sampler) ---------------------------------
    def start(self, x: Tensor, condition: Tensor | None = None) -> Stepper:
        """Caches for generating ``x`` ``(n, C, H, W)`` in place, pixel by pixel."""
        e = self.embed(x)
        return Stepper(self, x, e, self.stack.start(e, self.encode_condition(condition, e)))


class Stepper:
    """Drives :class:`PixelCNNNet` one pixel at a time over an image being filled in raster order.

    Per pixel ``(i, j)``: :meth:`params` (all layers at that pixel only) gives
    ``(n, C, P)``; after each channel is drawn into ``x``, :meth:`write` updates
    the embedding; after the last pixel of row ``i``, :meth:`end_row`.
    """

    def __init__(self, net: PixelCNNNet, x: Tensor, e: Tensor, cache: Any):
        self.net, self.x, self.e, self.cache = net, x, e, cache

    def params(self, i: int, j: int) -> Tensor:
        net = self.net
        out = net.head(net.stack.step(self.cache, i, j))  # (n, C*P, 1, 1)
        if net.position_bias is not None:
            out = out + net.position_bias[:, i : i + 1, j : j + 1]
        return net._params(out)[:, :, 0, 0]  # (n, C, P)

    def write(self, i: int, j: int) -> None:
        net = self.net
        pixel = net.embedding(self.x[:, :, i, j] + net.offsets)  # (n, C, E)
        self.e[:, :, i, j] = pixel.reshape(pixel.shape[0], -1)

    def end_row(self, i: int) -> None:
        self.net.stack.end_row(self.cache, i)
