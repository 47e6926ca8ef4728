r"""Differentiable augmentation (DiffAugment) of images in :math:`[-1, 1]` before the discriminator.

The same random policy is applied to real and generated batches; every
operation is differentiable in the image, so the generator is trained through
it (Zhao et al., 2020, arXiv:2006.10738). Policies, each with fresh draws per example:

- ``color``: brightness :math:`x + (u - \tfrac12)`, saturation
  :math:`\bar x_c + 2u\,(x - \bar x_c)` (:math:`\bar x_c` the mean over channels) and contrast
  :math:`\bar x + (u + \tfrac12)(x - \bar x)` (:math:`\bar x` the image mean), :math:`u \sim U[0, 1)`;
- ``translation``: an integer shift of up to 1/8 of each side, zero filled;
- ``cutout``: a zeroed square of half each side at a uniform position.

Images ``(B, C, H, W)``; randomness from torch's global generator (training
only), so a resumed run draws the same augmentations.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["POLICIES", "parse_policy", "diff_augment", "shift_images", "translate", "cutout", "color"]

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ``""`` -> ``()``; unknown names raise ValueError."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(map(repr, unknown))}; policies: {', '.join(POLICIES)}")
    return names


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast per example."""
    b = x.shape[0]
    u = torch.rand(3, b, 1, 1, 1, device=x.device, dtype=x.dtype)
    x = x + (u[0] - 0.5)
    mean_c = x.mean(dim=1, keepdim=True)
    x = mean_c + 2 * u[1] * (x - mean_c)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (u[2] + 0.5) * (x - mean)


def _shift_indices(size: int, shift: Tensor) -> Tensor:
    """``(B,)`` shifts -> ``(B, size)`` source indices ``i - shift`` (out of range: -1, the zero fill)."""
    idx = torch.arange(size, device=shift.device)[None, :] - shift[:, None]
    return torch.where((idx >= 0) & (idx < size), idx, torch.full_like(idx, -1))


def shift_images(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """``out[b, :, i, j] = x[b, :, i - dy_b, j - dx_b]`` (zero outside the image) for integer shifts ``(B,)``."""
    b, _, h, w = x.shape
    rows, cols = _shift_indices(h, dy), _shift_indices(w, dx)  # (B, H), (B, W)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))  # index -1 hits the zero row/col
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def translate(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by integers ``dy, dx`` uniform in ``[-r, r]``, ``r = round(ratio * side)``, zero filled."""
    b, _, h, w = x.shape
    ry, rx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-ry, ry + 1, (b,), device=x.device)
    dx = torch.randint(-rx, rx + 1, (b,), device=x.device)
    return shift_images(x, dy, dx)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a ``round(ratio*H) x round(ratio*W)`` square per image, centred uniformly at random."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - sh % 2), (b, 1), device=x.device)
    cx = torch.randint(0, w + (1 - sw % 2), (b, 1), device=x.device)
    ys, xs = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    inside_y = (ys >= cy - sh // 2) & (ys < cy - sh // 2 + sh)  # (B, H)
    inside_x = (xs >= cx - sw // 2) & (xs < cx - sw // 2 + sw)  # (B, W)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


_OPS = {"color": color, "translation": translate, "cutout": cutout}


def diff_augment(x: Tensor, policy: tuple[str, ...]) -> Tensor:
    """Apply the policies in order (``color``, ``translation``, ``cutout``) to images ``x`` ``(B, C, H, W)``."""
    for name in policy:
        x = _OPS[name](x)
    return x
