r"""A causal decoder-only transformer over a sequence of discrete tokens, with a key/value cache.

Input: tokens ``s`` ``(B, n)`` with values in ``[0, L]`` (``L`` is the start token), placed at
sequence positions ``offset .. offset+n-1``. Position ``p`` reads token :math:`s_p` (the
sub-pixel ``p-1``, or the start token at ``p = 0``) and predicts sub-pixel ``p``:

.. math::
    h^0_p = E[s_p] + P_p + E_y[y], \qquad
    h^{l+1} = h^l + \mathrm{MLP}(\mathrm{LN}(u^l)),\; u^l = h^l + \mathrm{Attn}(\mathrm{LN}(h^l)),

with multi-head attention whose position ``p`` attends to positions ``q <= p`` only (a causal
mask; with a cache the new positions attend to every cached one, all earlier), and logits
:math:`W\,\mathrm{LN}(h^{\mathrm{last}}_p)` ``(B, n, L)`` over the levels of sub-pixel ``p``.
:math:`P_p` encodes the row, column and channel of sub-pixel ``p``
(:class:`Positions`); :math:`E_y` is a class embedding (conditional models only).

References: Vaswani et al., Attention Is All You Need (2017, arXiv:1706.03762); Radford et al.,
GPT-2 (2019; pre-LN blocks); Parmar et al., Image Transformer (2018, arXiv:1802.05751);
Chen et al., Generative Pretraining from Pixels (2020).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Positions", "KVCache", "CausalTransformer"]


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    r"""``(N,)`` integer positions -> ``(N, dim)``: :math:`[\sin(p\,\omega_i), \cos(p\,\omega_i)]`, :math:`\omega_i = 10000^{-2i/dim}`."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = positions.double()[:, None] * freqs[None]  # (N, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class Positions(nn.Module):
    r"""Position features :math:`P_p` ``(N, d)`` of the ``N = HWC`` sub-pixels in raster order, channels inner.

    Sub-pixel ``p`` is row :math:`i = \lfloor p / WC \rfloor`, column :math:`j = \lfloor p/C \rfloor \bmod W`,
    channel :math:`c = p \bmod C`. ``learned``: :math:`R_i + K_j + Q_c` (three learned tables);
    ``sinusoidal``: the fixed 2D code :math:`[\mathrm{sin\text{-}cos}_{d/2}(i), \mathrm{sin\text{-}cos}_{d/2}(j)]`
    plus the learned channel table :math:`Q_c`.
    """

    rows: Tensor
    cols: Tensor
    channels: Tensor
    table: Tensor

    def __init__(self, kind: str, dim: int, shape: tuple[int, int, int]):
        super().__init__()
        C, H, W = shape
        p = torch.arange(C * H * W)
        rows, cols, channels = p // (W * C), (p // C) % W, p % C
        self.kind = kind
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("channels", channels, persistent=False)
        self.channel = nn.Embedding(C, dim)
        if kind == "learned":
            self.row, self.col = nn.Embedding(H, dim), nn.Embedding(W, dim)
        else:
            table = torch.cat([sinusoid(rows, dim // 2), sinusoid(cols, dim // 2)], dim=-1)
            self.register_buffer("table", table.float(), persistent=False)

    def forward(self, start: int, n: int) -> Tensor:
        """Features of positions ``start .. start+n-1``: ``(n, d)``."""
        index = slice(start, start + n)
        out = self.channel(self.channels[index])
        if self.kind == "learned":
            return out + self.row(self.rows[index]) + self.col(self.cols[index])
        return out + self.table[index].to(out.dtype)


class KVCache:
    """Keys and values of every layer for positions ``0 .. size-1``: ``(layers, B, heads, N, d_head)`` each."""

    def __init__(
        self, layers: int, batch: int, heads: int, length: int, head_dim: int, device: torch.device, dtype: torch.dtype
    ):
        self.k = torch.zeros(layers, batch, heads, length, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.size = 0

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store ``k``, ``v`` ``(B, heads, n, d_head)`` after the cached positions; return all of them."""
        end = self.size + k.shape[2]
        self.k[layer, :, :, self.size : end] = k
        self.v[layer, :, :, self.size : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class Attention(nn.Module):
    """Multi-head causal self-attention; with a cache, the new positions follow every cached one."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, h: Tensor, layer: int, cache: KVCache | None) -> Tensor:
        B, n, d = h.shape
        q, k, v = self.qkv(h).view(B, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, heads, n, dh)
        if cache is None:
            mask = torch.ones(n, n, dtype=torch.bool, device=h.device).tril()  # (n, n): row p sees q <= p
        else:
            k, v = cache.extend(layer, k, v)  # (B, heads, size+n, dh)
            mask = torch.ones(n, k.shape[2], dtype=torch.bool, device=h.device).tril(k.shape[2] - n)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, heads, n, dh)
        return self.out(y.transpose(1, 2).reshape(B, n, d))  # (B, n, d)


class Block(nn.Module):
    """Pre-LN transformer block: attention then a GELU MLP, each residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, layer: int, cache: KVCache | None) -> Tensor:
        h = h + self.drop(self.attn(self.ln1(h), layer, cache))
        return h + self.drop(self.mlp(self.ln2(h)))


class CausalTransformer(nn.Module):
    """``net(s, offset, cache, condition) -> (B, n, L)`` logits; see the module docstring.

    Arguments:
        shape: ``(C, H, W)`` of the images, so ``N = C*H*W`` positions.
        levels: ``L``; token ``L`` is the start token.
        dim, layers, heads, mlp_ratio, dropout: the width ``d``, depth, heads (``d % heads == 0``),
            MLP width ``mlp_ratio * d`` and dropout rate.
        positions: ``learned`` or ``sinusoidal`` (:class:`Positions`).
        num_classes: ``K`` labels for a class embedding, or 0 for none.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        levels: int,
        dim: int,
        layers: int,
        heads: int,
        mlp_ratio: int,
        dropout: float,
        positions: str,
        num_classes: int = 0,
    ):
        super().__init__()
        self.shape, self.levels, self.heads = shape, levels, heads
        self.length = math.prod(shape)
        self.token = nn.Embedding(levels + 1, dim)
        self.positions = Positions(positions, dim, shape)
        self.label = nn.Embedding(num_classes, dim) if num_classes else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, levels)
        self.apply(_init)

    @property
    def start(self) -> int:
        """The id of the start token."""
        return self.levels

    def new_cache(self, batch: int) -> KVCache:
        """An empty cache for ``batch`` sequences of the full length ``N``."""
        w = self.token.weight
        d = w.shape[1]
        return KVCache(len(self.blocks), batch, self.heads, self.length, d // self.heads, w.device, w.dtype)

    def forward(
        self, s: Tensor, offset: int = 0, cache: KVCache | None = None, condition: Tensor | None = None
    ) -> Tensor:
        n = s.shape[1]
        h = self.token(s) + self.positions(offset, n)  # (B, n, d)
        if self.label is not None:
            if condition is None:
                raise ValueError("this transformer is class-conditional: pass condition=labels")
            h = h + self.label(condition.long())[:, None]  # (B, n, d)
        h = self.drop(h)
        for layer, block in enumerate(self.blocks):
            h = block(h, layer, cache)
        if cache is not None:
            cache.size += n
        return self.head(self.ln(h))  # (B, n, L)


def _init(module: nn.Module) -> None:
    """GPT-style initialisation: normal(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
