"""Random translations of images: the one augmentation of JEM's cross-entropy term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["random_translate"]


def random_translate(x: Tensor, shift: int, fill: float | int = 0, generator: torch.Generator | None = None) -> Tensor:
    """Each image of ``x`` ``(B, C, H, W)`` moved by its own ``(dy, dx)``, uniform in ``{-shift..shift}^2``.

    Pixels moved in from outside the image take the value ``fill``; the result has the shape and dtype of
    ``x``. ``shift = 0`` returns ``x`` itself. Offsets come from ``generator`` (torch's global RNG if None).
    """
    if shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), value=fill)  # (B, C, H + 2s, W + 2s)
    offset = torch.randint(0, 2 * shift + 1, (2, b), generator=generator, device=x.device)  # (dy, dx) + shift
    rows = offset[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offset[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
    picked = padded[torch.arange(b, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
