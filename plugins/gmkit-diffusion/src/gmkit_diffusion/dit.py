r"""A diffusion transformer (DiT) denoiser for images (Peebles & Xie, 2023, arXiv:2212.09748).

Patchify ``(B, C, H, W)`` into ``N = HW/p^2`` tokens of width ``hidden`` (a
``p x p`` strided convolution plus fixed 2D sine-cosine positions), apply
``depth`` transformer blocks conditioned by adaLN-Zero on
:math:`c = \mathrm{emb}(t) + \mathrm{emb}(y)`, and unpatchify. In each block

.. math:: h \leftarrow h + g_1 \odot \mathrm{Attn}(\mathrm{LN}(h)(1 + a_1) + b_1), \qquad
          h \leftarrow h + g_2 \odot \mathrm{MLP}(\mathrm{LN}(h)(1 + a_2) + b_2),

with :math:`(b_1, a_1, g_1, b_2, a_2, g_2) = W\,\mathrm{SiLU}(c)` and :math:`W = 0` at
initialisation, so every block starts as the identity and the output layer
(also zero) starts at zero. The null class is row ``num_classes`` of the label
table (derived from the data, never hard-coded).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.errors import ConfigError
from gmkit_core.nn import Conditioning

__all__ = ["DiT", "sincos_2d"]


def sincos_2d(dim: int, rows: int, cols: int) -> Tensor:
    """Fixed positions ``(rows*cols, dim)``: half the features encode the row, half the column."""
    if dim % 4:
        raise ConfigError(f"dit: hidden width {dim} must be a multiple of 4")
    quarter = dim // 4
    omega = 1.0 / 10_000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    r, c = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
    )
    feats = [f(grid.flatten()[:, None] * omega) for grid in (r, c) for f in (torch.sin, torch.cos)]
    return torch.cat(feats, dim=1).float()  # (rows*cols, dim)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    """One adaLN-Zero transformer block over ``(B, N, hidden)`` tokens."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden))
        self.ada = nn.Linear(hidden, 6 * hidden)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        b1, a1, g1, b2, a2, g2 = self.ada(F.silu(c)).chunk(6, dim=1)  # 6 x (B, hidden)
        h = _modulate(self.norm1(x), b1, a1)
        x = x + g1[:, None] * self.attn(h, h, h, need_weights=False)[0]  # (B, N, hidden)
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), b2, a2))  # (B, N, hidden)


class DiT(nn.Module):
    """DiT over ``shape = (C, H, W)`` with patch size ``patch_size``; ``out_channels`` defaults to ``C``."""

    def __init__(
        self,
        shape: Sequence[int],
        out_channels: int | None = None,
        num_classes: int | None = None,
        patch_size: int = 2,
        hidden: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        if len(shape) != 3:
            raise ConfigError(f"dit needs image data (C, H, W), got shape {tuple(shape)}; use network=mlp")
        C, H, W = shape
        p = patch_size
        if H % p or W % p:
            raise ConfigError(f"dit: patch size {p} does not divide {H}x{W} images")
        if hidden % heads:
            raise ConfigError(f"dit: hidden width {hidden} does not split into {heads} heads")
        self.p, self.grid, self.out_channels = p, (H // p, W // p), out_channels or C
        self.patch = nn.Conv2d(C, hidden, p, stride=p)
        self.register_buffer("pos", sincos_2d(hidden, *self.grid), persistent=False)
        self.conditioning = Conditioning(hidden, num_classes)
        self.blocks = nn.ModuleList([Block(hidden, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Linear(hidden, 2 * hidden)
        self.head = nn.Linear(hidden, p * p * self.out_channels)
        for layer in (self.ada, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        B = x.shape[0]
        c = self.conditioning(t, y)  # (B, hidden)
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # (B, N, hidden)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.ada(F.silu(c)).chunk(2, dim=1)
        h = self.head(_modulate(self.norm(h), shift, scale))  # (B, N, p*p*out)
        (gh, gw), p, o = self.grid, self.p, self.out_channels
        h = h.reshape(B, gh, gw, p, p, o).permute(0, 5, 1, 3, 2, 4)  # (B, out, gh, p, gw, p)
        return h.reshape(B, o, gh * p, gw * p)  # (B, out, H, W)
