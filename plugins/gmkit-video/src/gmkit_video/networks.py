r"""The 3D-convolutional encoder and decoder of VideoGPT.

Clips are laid out channels-first for the convolutions, ``(B, C, T, H, W)`` in :math:`[-1, 1]`.
The encoder halves time ``log2 s_t`` times and space ``log2 s`` times (``max`` of the two
stride-2 layers; a layer that no longer halves an axis keeps its size), then keeps residual
blocks :math:`h + W_2\,\mathrm{ReLU}(W_1\,\mathrm{ReLU}(h))` at the code resolution, giving
:math:`z_e` ``(B, D, T/s_t, H/s, W/s)``.

**Causal in time.** Every temporal convolution of the encoder pads on the past side only
(a kernel ``k`` with stride ``r`` gets ``k - r`` frames of left padding), so output step ``j``
of a layer with total stride ``S`` sees input frames ``< (j + 1) S`` only. The codes of time step
``j`` are hence fully determined by frames ``0 .. (j+1) s_t - 1``: priming with the first ``k``
frames fixes the first ``k // s_t`` code time steps exactly (:meth:`VideoGPT.sample`).

The decoder mirrors it with transposed 3D convolutions (not causal: it decodes a whole code
volume) and emits ``P`` parameters per sub-pixel, ``(B, C P, T, H, W)``, read by a core
observation head. ``time_kernel`` is the temporal size ``k_t`` of every convolution that does not
halve time (3 in VideoGPT; 1 codes each frame from its own pixels, and with ``time_down = 1`` the
networks are then 2D convolutions applied frame by frame).

Reference: Yan, Zhang, Abbeel & Srinivas, VideoGPT: Video Generation using VQ-VAE and
Transformers (2021, arXiv:2104.10157), section 3.1.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CausalConv3d", "VideoEncoder", "VideoDecoder", "halvings"]


def halvings(factor: int) -> int:
    """``log2 factor`` for a power of two ``factor >= 1``."""
    steps = int(round(math.log2(factor))) if factor >= 1 else -1
    if steps < 0 or 2**steps != factor:
        raise ValueError(f"a downsampling factor must be a power of two, got {factor}")
    return steps


class CausalConv3d(nn.Module):
    """3D convolution whose temporal kernel sees only present and past frames (left padding ``k_t - r_t``)."""

    def __init__(self, cin: int, cout: int, kt: int, ks: int, st: int, ss: int, ps: int):
        super().__init__()
        self.time_pad, self.space_pad = kt - st, ps
        self.conv = nn.Conv3d(cin, cout, (kt, ks, ks), stride=(st, ss, ss))

    def forward(self, x: Tensor) -> Tensor:
        p = self.space_pad
        return self.conv(F.pad(x, (p, p, p, p, self.time_pad, 0)))


class _Residual(nn.Module):
    """``h + conv1(relu(causal conv3(relu(h))))`` on ``(B, c, t, h, w)``."""

    def __init__(self, channels: int, kt: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), CausalConv3d(channels, channels, kt, 3, 1, 1, 1), nn.ReLU(), nn.Conv3d(channels, channels, 1)
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


def _layer_strides(time_down: int, space_down: int) -> list[tuple[int, int]]:
    """``(time stride, space stride)`` of each downsampling layer: every layer halves what is left to halve."""
    nt, ns = halvings(time_down), halvings(space_down)
    return [(2 if i < nt else 1, 2 if i < ns else 1) for i in range(max(nt, ns))]


class VideoEncoder(nn.Module):
    """``(B, C, T, H, W)`` in :math:`[-1,1]` -> :math:`z_e` ``(B, D, T/s_t, H/s, W/s)``, causal in time."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        code_dim: int,
        time_down: int,
        space_down: int,
        res_blocks: int,
        time_kernel: int = 3,
    ):
        super().__init__()
        kt = time_kernel
        layers: list[nn.Module] = [CausalConv3d(channels, hidden, kt, 3, 1, 1, 1)]
        for st, ss in _layer_strides(time_down, space_down):
            layers += [
                nn.ReLU(),
                CausalConv3d(hidden, hidden, (4 if st == 2 else kt), (4 if ss == 2 else 3), st, ss, 1),
            ]
        layers += [_Residual(hidden, kt) for _ in range(res_blocks)]
        layers += [nn.ReLU(), nn.Conv3d(hidden, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class VideoDecoder(nn.Module):
    """Code vectors ``(B, D, t, h, w)`` -> head parameters ``(B, C P, T, H, W)``."""

    def __init__(
        self,
        code_dim: int,
        hidden: int,
        out_channels: int,
        time_down: int,
        space_down: int,
        res_blocks: int,
        time_kernel: int = 3,
    ):
        super().__init__()
        kt = time_kernel
        layers: list[nn.Module] = [nn.Conv3d(code_dim, hidden, (kt, 3, 3), padding=(kt // 2, 1, 1))]
        layers += [_Residual(hidden, kt) for _ in range(res_blocks)]
        for st, ss in _layer_strides(time_down, space_down):
            kernel = (4 if st == 2 else kt, 4 if ss == 2 else 3, 4 if ss == 2 else 3)
            pad = (1 if st == 2 else kt // 2, 1, 1)
            layers += [nn.ReLU(), nn.ConvTranspose3d(hidden, hidden, kernel, stride=(st, ss, ss), padding=pad)]
        layers += [nn.ReLU(), nn.Conv3d(hidden, out_channels, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)
