"""``patches32``: 32x32 colour crops of the two photographs scikit-learn ships.

``sklearn.datasets.load_sample_images()`` holds ``china.jpg`` and
``flower.jpg``, both 427x640 RGB. Each photograph is cut into vertical bands
of columns (the same bands in both); every crop lies wholly inside one band,
so the splits share no pixel:

==========  ================================================  ======================
split       columns (both images)                              crops
==========  ================================================  ======================
train       [0, 128), [192, 320), [384, 448), [512, 640)       2 x 44 x 50 = 4400
validation  [320, 384)                                         2 x 5 x 50 = 500
test        [128, 192), [448, 512)                             2 x 10 x 50 = 1000
==========  ================================================  ======================

Crops sit on a grid of stride 8 in both directions: top rows 0, 8, ..., 392
(50 of them), left columns ``b, b + 8, ..., e - 32`` inside each band
``[b, e)``. Order: image (china, then flower), band, row, column. Training
crops are mirrored left-right where a fixed-seed coin says so (seed 0,
probability 1/2); a mirror moves no pixel out of its crop, so the splits stay
disjoint. Labels: 0 = china, 1 = flower. Values are the JPEG's 8-bit RGB
levels, ``(3, 32, 32)`` with 256 levels.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .spec import SPLITS, DataSpec

__all__ = ["patches32", "crop_corners", "BANDS", "SIZE", "STRIDE", "FLIP_SEED"]

SIZE, STRIDE, FLIP_SEED = 32, 8, 0
#: Column bands ``[start, stop)`` of each split, the same in both photographs.
BANDS = {
    "train": ((0, 128), (192, 320), (384, 448), (512, 640)),
    "validation": ((320, 384),),
    "test": ((128, 192), (448, 512)),
}


@functools.lru_cache(maxsize=1)
def _photos() -> np.ndarray:
    """``(2, 427, 640, 3)`` uint8: china, flower."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    order = [next(i for i, f in enumerate(bunch.filenames) if f.endswith(name)) for name in ("china.jpg", "flower.jpg")]
    photos = np.stack([bunch.images[i] for i in order])
    photos.setflags(write=False)
    return photos


def crop_corners(split: str, height: int = 427) -> np.ndarray:
    """``(M, 3)`` rows ``(image, top, left)`` of the crops of ``split``, in data-set order."""
    rows = []
    for image in range(2):
        for start, stop in BANDS[split]:
            tops = np.arange(0, height - SIZE + 1, STRIDE)
            lefts = np.arange(start, stop - SIZE + 1, STRIDE)
            grid = np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2)
            rows.append(np.column_stack([np.full(len(grid), image), grid]))
    return np.concatenate(rows)


@functools.lru_cache(maxsize=3)
def _crops(split: str) -> tuple[np.ndarray, np.ndarray]:
    photos = _photos()
    corners = crop_corners(split, photos.shape[1])
    offsets = np.arange(SIZE)
    image = corners[:, 0, None, None]
    rows = corners[:, 1, None, None] + offsets[None, :, None]
    cols = corners[:, 2, None, None] + offsets[None, None, :]
    x = photos[image, rows, cols]  # (M, 32, 32, 3)
    if split == "train":
        flip = np.random.RandomState(FLIP_SEED).rand(len(x)) < 0.5
        x[flip] = x[flip, :, ::-1]
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    x.setflags(write=False)
    return x, corners[:, 0].copy()


def patches32(arg: str | None, split: str) -> Dataset:
    """One split of the 32x32 RGB crops (256 levels, labels 0 = china, 1 = flower)."""
    if split not in SPLITS:
        raise DataError(f"patches32: unknown split '{split}'; splits: {', '.join(SPLITS)}")
    if arg:
        raise DataError(f"patches32 takes no argument, got '{arg}'")
    x, y = _crops(split)
    spec = DataSpec("patches32", "image", (3, SIZE, SIZE), levels=256, num_classes=2)
    return Dataset(torch.tensor(x, dtype=torch.int64), torch.tensor(y), spec, split)
