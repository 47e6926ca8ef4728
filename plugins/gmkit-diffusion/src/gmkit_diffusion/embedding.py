r"""The conditioning vector shared by the denoisers: step :math:`t` and an optional class.

:math:`c = \mathrm{MLP}(\mathrm{PE}(t)) + E[y]`, where :math:`\mathrm{PE}(t)_i = \cos(t\,\omega_i)`
for the first half and :math:`\sin(t\,\omega_i)` for the second,
:math:`\omega_i = 10000^{-i/(d/2)}` (Vaswani et al., 2017, arXiv:1706.03762; as in
Ho et al., 2020, arXiv:2006.11239). :math:`E` has ``num_classes + 1`` rows: row
``num_classes`` is the null class that classifier-free guidance trains by label
dropout (Ho & Salimans, 2022, arXiv:2207.12598).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["sinusoidal", "Conditioning"]


def sinusoidal(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``(B,)`` steps (any real values) -> ``(B, dim)`` features ``[cos(t w), sin(t w)]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim - 2 * half))  # (B, dim)


class Conditioning(nn.Module):
    """``(t, y) -> (B, dim)``: an MLP of the sinusoidal step features plus a class embedding.

    ``y`` holds labels in ``[0, num_classes]`` (``num_classes`` = null); it must be
    None when ``num_classes`` is None.
    """

    def __init__(self, dim: int, num_classes: int | None = None):
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.time(sinusoidal(t, self.dim))  # (B, dim)
        if self.label is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes, dtype=torch.long)
            c = c + self.label(y.long())
        elif y is not None:
            raise ValueError("this network was built without classes (num_classes=None) but got labels")
        return c
