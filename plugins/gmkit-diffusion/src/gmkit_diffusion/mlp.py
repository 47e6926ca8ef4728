r"""An MLP denoiser for vector data (the 2D toys): :math:`f_\theta(x_t, t, y)`, ``(B, D) -> (B, out)``.

:math:`h_0 = W_0 x_t`; :math:`h_{k} = h_{k-1} + W_k\,\mathrm{SiLU}(h_{k-1} + U_k c)` for
``depth`` residual layers, where ``c`` is the step and class embedding of
:mod:`gmkit_diffusion.embedding`; the output layer starts at zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.errors import ConfigError
from gmkit_core.nn import Conditioning

__all__ = ["MLP"]


class MLP(nn.Module):
    """Residual MLP over ``shape = (D,)`` with ``depth`` layers of width ``hidden``; ``out_channels`` defaults to ``D``."""

    def __init__(
        self,
        shape: Sequence[int],
        out_channels: int | None = None,
        num_classes: int | None = None,
        hidden: int = 256,
        depth: int = 3,
    ):
        super().__init__()
        if len(shape) != 1:
            raise ConfigError(f"mlp needs vector data (D,), got shape {tuple(shape)}; use network=unet or dit")
        D = shape[0]
        self.conditioning = Conditioning(hidden, num_classes)
        self.inp = nn.Linear(D, hidden)
        self.cond = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.layers = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.out = nn.Linear(hidden, out_channels or D)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.conditioning(t, y)  # (B, hidden)
        h = self.inp(x)  # (B, hidden)
        for cond, layer in zip(self.cond, self.layers, strict=True):
            h = h + layer(F.silu(h + cond(c)))
        return self.out(F.silu(h))  # (B, out)
