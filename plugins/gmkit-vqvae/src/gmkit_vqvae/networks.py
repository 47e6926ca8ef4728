r"""Convolutional encoder and decoder of the VQ-VAE.

The encoder maps images ``(B, C, H, W)`` in :math:`[-1, 1]` to
:math:`z_e` ``(B, D, H/s, W/s)``; the decoder maps code vectors back to the
parameters of :math:`p(x \mid z_q)` ``(B, C P, H, W)``, read by a core observation head
(:class:`~gmkit_vqvae.likelihoods.DecodedImage`). Each halves (or doubles)
the resolution ``log2 s`` times with 4x4 stride-2 convolutions and keeps
residual blocks :math:`h + W_2\,\mathrm{ReLU}(W_1\,\mathrm{ReLU}(h))` at the latent
resolution, as in van den Oord et al. (2017, arXiv:1711.00937), section 4.1.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from gmkit_core.heads import Head
from gmkit_core.interfaces import Decoder, Encoder

from .likelihoods import DecodedImage

__all__ = ["ResidualBlock", "ConvEncoder", "ConvDecoder"]


class ResidualBlock(nn.Module):
    """``h + conv1x1(relu(conv3x3(relu(h))))`` on ``(B, c, h, w)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


def _halvings(downsample: int) -> int:
    steps = int(round(math.log2(downsample)))
    if downsample < 1 or 2**steps != downsample:
        raise ValueError(f"downsample must be a power of two, got {downsample}")
    return steps


class ConvEncoder(Encoder):
    r"""``x`` ``(B, C, H, W)`` in :math:`[-1,1]` -> :math:`z_e` ``(B, D, H/s, W/s)`` (deterministic)."""

    def __init__(self, in_channels: int, hidden: int, code_dim: int, downsample: int, res_blocks: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1)]
        for _ in range(_halvings(downsample)):
            layers += [nn.ReLU(), nn.Conv2d(hidden, hidden, 4, stride=2, padding=1)]
        layers += [ResidualBlock(hidden) for _ in range(res_blocks)]
        layers += [nn.ReLU(), nn.Conv2d(hidden, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        return self.net(x)  # (B, D, H/s, W/s)


class ConvDecoder(Decoder):
    r"""Code vectors ``(B, D, H/s, W/s)`` -> :math:`p(x \mid z_q)` over ``(B, C, H, W)`` (a :class:`DecodedImage`)."""

    def __init__(
        self,
        code_dim: int,
        hidden: int,
        head: Head | None,
        channels: int,
        levels: int,
        downsample: int,
        res_blocks: int,
    ):
        super().__init__()
        self.head, self.levels = head, levels
        out_channels = channels * (head.params if head is not None else 1)  # mse: one mean per sub-pixel
        layers: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1)]
        layers += [ResidualBlock(hidden) for _ in range(res_blocks)]
        for _ in range(_halvings(downsample)):
            layers += [nn.ReLU(), nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(hidden, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, condition: Tensor | None = None) -> DecodedImage:
        return DecodedImage(self.head, self.net(z), self.levels)  # parameters (B, C P, H, W)
