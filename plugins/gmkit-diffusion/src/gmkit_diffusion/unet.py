r"""A U-Net denoiser :math:`f_\theta(x_t, t, y)` for images (Ronneberger et al., 2015, arXiv:1505.04597).

As in Ho et al. (2020, arXiv:2006.11239, appendix B): residual blocks with
group normalisation and the conditioning vector added after the first
convolution, self-attention at the listed (low) resolutions, strided
convolutions down and nearest-neighbour upsampling. Every residual branch and
the output convolution start at zero, so the network starts as the identity on
its skips and outputs zero.

Shapes: ``x`` ``(B, C, H, W)`` -> ``(B, out_channels, H, W)``; ``t`` ``(B,)``; ``y`` ``(B,)`` or None.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.errors import ConfigError
from gmkit_core.nn import Conditioning

__all__ = ["UNet"]


def _norm(channels: int) -> nn.GroupNorm:
    """Up to 8 groups of at least 4 channels (1 group below 8 channels).

    A group of one channel would subtract that channel's spatial mean, and with it the
    conditioning vector that :class:`ResBlock` adds as a per-channel constant: the block
    would then ignore ``t`` and ``y``.
    """
    groups = next((g for g in (8, 4, 2) if channels % g == 0 and channels // g >= 4), 1)
    return nn.GroupNorm(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """``h + conv(drop(act(norm(conv(act(norm(h))) + W c))))`` with a 1x1 skip when channels change."""

    def __init__(self, cin: int, cout: int, cond: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.cond = nn.Linear(cond, cout)
        self.norm2, self.drop = _norm(cout), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, cout, H, W)
        h = h + self.cond(F.silu(c))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the ``H*W`` positions, residual, output projection at zero."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ConfigError(f"unet: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm, self.qkv = _norm(channels), nn.Conv2d(channels, 3 * channels, 1)
        self.out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))  # (B, C, H, W)


class UNet(nn.Module):
    """U-Net over ``shape = (C, H, W)``.

    ``channels`` base width; ``mults`` width multiplier per resolution (one
    halving between consecutive entries); ``blocks`` residual blocks per
    resolution; ``attention`` the resolutions (side lengths) with self-attention;
    ``heads`` attention heads; ``out_channels`` defaults to ``C``.
    """

    def __init__(
        self,
        shape: Sequence[int],
        out_channels: int | None = None,
        num_classes: int | None = None,
        channels: int = 32,
        mults: Sequence[int] = (1, 2, 2),
        blocks: int = 2,
        attention: Sequence[int] = (4,),
        heads: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        if len(shape) != 3:
            raise ConfigError(f"unet needs image data (C, H, W), got shape {tuple(shape)}; use network=mlp")
        C, H, W = shape
        if H % 2 ** (len(mults) - 1) or W % 2 ** (len(mults) - 1):
            raise ConfigError(f"unet: {H}x{W} images cannot be halved {len(mults) - 1} times; shorten mults")
        cond = 4 * channels
        self.conditioning = Conditioning(cond, num_classes)
        self.inp = nn.Conv2d(C, channels, 3, padding=1)
        self.down, skips, width, res = nn.ModuleList(), [channels], channels, H
        for i, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(self._stage(width, channels * m, cond, dropout, res in attention, heads))
                width = channels * m
                skips.append(width)
            if i < len(mults) - 1:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
                res //= 2
        self.mid = nn.ModuleList(
            [ResBlock(width, width, cond, dropout), Attention(width, heads), ResBlock(width, width, cond, dropout)]
        )
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(self._stage(width + skips.pop(), channels * m, cond, dropout, res in attention, heads))
                width = channels * m
            if i > 0:
                self.up.append(
                    nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1))
                )
                res *= 2
        self.out = nn.Sequential(_norm(width), nn.SiLU(), _zero(nn.Conv2d(width, out_channels or C, 3, padding=1)))

    @staticmethod
    def _stage(cin: int, cout: int, cond: int, dropout: float, attend: bool, heads: int) -> nn.ModuleList:
        return nn.ModuleList([ResBlock(cin, cout, cond, dropout)] + ([Attention(cout, heads)] if attend else []))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.conditioning(t, y)  # (B, 4*channels)
        h = self.inp(x)  # (B, channels, H, W)
        hs = [h]
        for layer in self.down:
            h = self._run(layer, h, c)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, c)), c)  # (B, width, H/2^k, W/2^k)
        for layer in self.up:
            if isinstance(layer, nn.ModuleList):
                h = self._run(layer, torch.cat([h, hs.pop()], dim=1), c)
            else:
                h = layer(h)
        return self.out(h)  # (B, out_channels, H, W)

    @staticmethod
    def _run(layer: nn.Module, h: Tensor, c: Tensor) -> Tensor:
        if not isinstance(layer, nn.ModuleList):
            return layer(h)
        h = layer[0](h, c)
        return layer[1](h) if len(layer) > 1 else h
