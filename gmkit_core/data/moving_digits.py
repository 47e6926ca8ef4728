"""``moving_digits``: scikit-learn digits moving and bouncing on a small canvas.

A clip is ``T = 8`` frames of a ``16 x 16`` canvas, 1 channel, 17 levels
(0..16), black except for one 8x8 digit. For each clip, drawn from a
``RandomState`` with a fixed seed per split (train 0, validation 1, test 2),
in this order over all clips of the split:

1. the digit: an index uniform over the images of the **same split** of
   ``digits`` (train clips use only the 1000 training digits, validation the
   350 validation digits, test the 447 test digits), so no source image is
   shared between splits; the label is that digit's class;
2. the top-left corner ``(row0, col0)``, each uniform on ``{0, ..., 8}``;
3. the velocity ``(vrow, vcol)``, each uniform on ``{-2, -1, 1, 2}`` pixels per frame.

The digit bounces off the canvas edges: along each axis the corner at frame
``t`` is ``r(p0 + v t)`` with the triangle wave ``r(u) = 8 - |(u mod 16) - 8|``,
which is ``u`` on ``[0, 8]`` and reflects at 0 and 8, so the digit is always
wholly on the canvas and moves by whole pixels (no resampling: every frame
holds the digit's exact levels). Sizes: train 4000, validation 500, test 500.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import DataError
from .builtin import digits_arrays
from .dataset import Dataset
from .spec import SPLITS, DataSpec

__all__ = ["moving_digits", "bounce", "make_clips", "SIZES", "FRAMES", "CANVAS"]

SIZES = {"train": 4000, "validation": 500, "test": 500}
SEEDS = {"train": 0, "validation": 1, "test": 2}
FRAMES, CANVAS, DIGIT = 8, 16, 8
SPEEDS = np.array([-2, -1, 1, 2])


def bounce(u: np.ndarray, span: int = CANVAS - DIGIT) -> np.ndarray:
    """Triangle wave: ``u`` folded into ``[0, span]`` by reflection at both ends."""
    return span - np.abs(np.mod(u, 2 * span) - span)


def make_clips(images: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` clips of ``images`` ``(M, 8, 8)`` -> clips ``(n, 8, 1, 16, 16)``, source indices ``(n,)``, corners ``(n, 8, 2)``."""
    rng = np.random.RandomState(seed)
    source = rng.randint(0, len(images), n)
    start = rng.randint(0, CANVAS - DIGIT + 1, (n, 2))
    velocity = SPEEDS[rng.randint(0, len(SPEEDS), (n, 2))]
    t = np.arange(FRAMES)
    corners = bounce(start[:, None, :] + velocity[:, None, :] * t[None, :, None])  # (n, T, 2)
    offsets = np.arange(DIGIT)
    rows = corners[:, :, 0, None, None] + offsets[None, None, :, None]  # (n, T, 8, 1)
    cols = corners[:, :, 1, None, None] + offsets[None, None, None, :]  # (n, T, 1, 8)
    clips = np.zeros((n, FRAMES, CANVAS, CANVAS), np.int64)
    clips[np.arange(n)[:, None, None, None], t[None, :, None, None], rows, cols] = images[source][:, None]
    return clips[:, :, None], source, corners


@functools.lru_cache(maxsize=3)
def _clips(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits_arrays(split)
    clips, source, _ = make_clips(images, SIZES[split], SEEDS[split])
    clips.setflags(write=False)
    return clips, labels[source]


def moving_digits(arg: str | None, split: str) -> Dataset:
    """Clips ``(8, 1, 16, 16)`` with 17 levels of one digit bouncing around; label = the digit's class."""
    if split not in SPLITS:
        raise DataError(f"moving_digits: unknown split '{split}'; splits: {', '.join(SPLITS)}")
    if arg:
        raise DataError(f"moving_digits takes no argument, got '{arg}'")
    clips, labels = _clips(split)
    spec = DataSpec("moving_digits", "video", (FRAMES, 1, CANVAS, CANVAS), levels=17, num_classes=10)
    return Dataset(torch.tensor(clips), torch.tensor(labels), spec, split)
