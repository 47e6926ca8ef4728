"""Pictures of video clips: a PNG strip of frames and an animated GIF (Pillow).

Clips are ``(N, T, C, H, W)`` integer levels in ``[0, levels)`` (the data
layout of kind ``"video"``); grey for ``C == 1``, RGB for ``C == 3``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .plots import grid_image

__all__ = ["frame_strip", "gif"]


def _levels(clips: torch.Tensor, levels: int | None) -> int:
    if clips.ndim != 5:
        raise ValueError(f"clips must be (N, T, C, H, W), got shape {tuple(clips.shape)}")
    return levels if levels is not None else max(2, int(clips.max()) + 1)


def frame_strip(clips: torch.Tensor, path: str | Path, *, levels: int | None = None, cell: int = 48) -> Path:
    """One row per clip, its T frames left to right, as a PNG; returns the path.

    ``levels`` maps ``levels - 1`` to white (default: the largest value + 1);
    each frame is enlarged by a whole factor to about ``cell`` pixels.
    """
    levels = _levels(clips, levels)
    n, t = clips.shape[:2]
    grid_image(clips.reshape(n * t, *clips.shape[2:]), levels, ncol=t, cell=cell).save(path)
    return Path(path)


def gif(
    clips: torch.Tensor,
    path: str | Path,
    *,
    levels: int | None = None,
    cell: int = 48,
    ms_per_frame: int = 150,
    ncol: int | None = None,
) -> Path:
    """An animated GIF: frame ``t`` shows frame ``t`` of every clip in a grid; loops forever."""
    levels = _levels(clips, levels)
    frames: list[Any] = [grid_image(clips[:, t], levels, ncol=ncol, cell=cell) for t in range(clips.shape[1])]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0, optimize=False)
    return Path(path)
