r"""Network building blocks shared by the families: time and class conditioning.

:func:`time_embedding` gives :math:`\mathrm{PE}(s)_i = \cos(s\,\omega_i)` for the first
half and :math:`\sin(s\,\omega_i)` for the second, :math:`\omega_i = 10000^{-i/(d/2)}`
(Vaswani et al., 2017, arXiv:1706.03762; as in Ho et al., 2020, arXiv:2006.11239),
where :math:`s = t` for integer steps :math:`t \in [1, T]` and :math:`s = 1000\,t` for
continuous time :math:`t \in [0, 1]`, so both kinds of time reach the same
frequencies and a network serves discrete and continuous-time models alike.

:class:`Conditioning` is :math:`c = \mathrm{MLP}(\mathrm{PE}(t)) + E[y]`; :math:`E` has
``num_classes + 1`` rows, row ``num_classes`` being the null class that
classifier-free guidance trains by label dropout (Ho & Salimans, 2022, arXiv:2207.12598).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["CONTINUOUS_TIME_SCALE", "time_embedding", "Conditioning"]

#: Continuous time t in [0, 1] is embedded as the step 1000 t.
CONTINUOUS_TIME_SCALE = 1000.0


def time_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``(B,)`` int steps or float times in ``[0, 1]`` -> ``(B, dim)`` features ``[cos(s w), sin(s w)]``."""
    s = t.float() * CONTINUOUS_TIME_SCALE if t.is_floating_point() else t.float()
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = s[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim - 2 * half))  # (B, dim)


class Conditioning(nn.Module):
    """``(t, y) -> (B, dim)``: an MLP of :func:`time_embedding` plus a class embedding.

    ``y`` holds labels in ``[0, num_classes]`` (``num_classes`` = null) or is
    None (the null class); labels given to a network built without classes
    are an error.
    """

    def __init__(self, dim: int, num_classes: int | None = None):
        super().__init__()
        self.dim, self.num_classes = dim, num_classes
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.time(time_embedding(t, self.dim))  # (B, dim)
        if self.label is not None:
            if y is None:
                y = torch.full((t.shape[0],), int(self.num_classes or 0), dtype=torch.long, device=t.device)
            c = c + self.label(y.long())
        elif y is not None:
            raise ValueError("this network was built without classes (num_classes=None) but got labels")
        return c
