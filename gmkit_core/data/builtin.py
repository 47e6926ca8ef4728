"""Built-in data: scikit-learn's bundled 8x8 digits (and a 32x32 version) and seeded 2D toys.

Nothing is downloaded: the digits ship inside scikit-learn, the toys are drawn
from a fixed seed per split.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .spec import SPLITS, DataSpec

__all__ = ["digits", "digits32", "upsample4", "digits_arrays", "TOYS", "toy", "DIGITS_SPLIT", "TOY_SIZES"]

# train = first 1000 in scikit-learn's order, validation = next 350, test = last 447.
DIGITS_SPLIT = {"train": (0, 1000), "validation": (1000, 1350), "test": (1350, 1797)}
TOY_SIZES = {"train": 10_000, "validation": 2_000, "test": 2_000}
_TOY_SEEDS = {"train": 0, "validation": 1, "test": 2}


def _check_split(split: str, name: str) -> None:
    if split not in SPLITS:
        raise DataError(f"{name}: unknown split '{split}'; splits: {', '.join(SPLITS)}")


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, target = bunch.images.astype(np.int64), bunch.target.astype(np.int64)
    images.setflags(write=False)
    target.setflags(write=False)
    return images, target


def digits_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(N, 8, 8)`` levels 0..16 and ``(N,)`` labels of one digits split (cached per process)."""
    _check_split(split, "digits")
    images, target = _all_digits()
    start, stop = DIGITS_SPLIT[split]
    return images[start:stop], target[start:stop]


def _no_argument(name: str, arg: str | None) -> None:
    if arg:
        raise DataError(f"{name} takes no argument, got '{arg}'")


def digits(arg: str | None, split: str) -> Dataset:
    """8x8 digits, 1797 images with 17 grey levels (0..16) and labels 0..9."""
    _check_split(split, "digits")
    _no_argument("digits", arg)
    images, target = digits_arrays(split)
    spec = DataSpec("digits", "image", (1, 8, 8), levels=17, num_classes=10)
    return Dataset(torch.tensor(images).unsqueeze(1), torch.tensor(target), spec, split)


def _bilinear_weights(size: int, factor: int) -> np.ndarray:
    """``(size*factor, size)`` integer weights (in units of 1/(2*factor)) of bilinear upsampling.

    Output pixel ``i`` sits at input coordinate ``u = (i + 1/2)/factor - 1/2``
    (pixel centres aligned, as ``align_corners=False``); it takes
    ``1 - frac(u)`` of pixel ``floor(u)`` and ``frac(u)`` of the next, both
    indices clamped to the image.
    """
    unit = 2 * factor
    weights = np.zeros((size * factor, size), np.int64)
    for i in range(size * factor):
        twice = 2 * i + 1 - factor  # 2*factor*u, an integer
        lo, frac = divmod(twice, unit)
        weights[i, min(max(lo, 0), size - 1)] += unit - frac
        weights[i, min(max(lo + 1, 0), size - 1)] += frac
    return weights


def upsample4(images: np.ndarray) -> np.ndarray:
    """``(N, 8, 8)`` integer levels -> ``(N, 32, 32)`` by bilinear upsampling, rounded half up to integers.

    Exact integer arithmetic: with weights ``A`` in eighths, ``A X A^T`` is the
    bilinear image times 64, so ``(A X A^T + 32) // 64`` rounds it half up.
    Values stay in the input's range (each output is a convex combination).
    """
    a = _bilinear_weights(images.shape[-1], 4)
    return (np.einsum("ij,njk,lk->nil", a, images, a, optimize=True) + 32) // 64


def digits32(arg: str | None, split: str) -> Dataset:
    """The digits splits upsampled to 1x32x32 (bilinear, rounded), still 17 levels, labels kept."""
    _check_split(split, "digits32")
    _no_argument("digits32", arg)
    images, target = digits_arrays(split)
    spec = DataSpec("digits32", "image", (1, 32, 32), levels=17, num_classes=10)
    return Dataset(torch.from_numpy(upsample4(images)).unsqueeze(1), torch.tensor(target), spec, split)


def _moons(rng: np.random.RandomState, n: int) -> np.ndarray:
    t = rng.uniform(0, math.pi, n)
    upper = rng.rand(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], 1) * 2.0
    return pts + 0.1 * rng.randn(n, 2)


def _circles(rng: np.random.RandomState, n: int) -> np.ndarray:
    t = rng.uniform(0, 2 * math.pi, n)
    radius = np.where(rng.rand(n) < 0.5, 1.0, 0.5) * 3.0
    return np.stack([np.cos(t), np.sin(t)], 1) * radius[:, None] + 0.08 * rng.randn(n, 2)


def _checkerboard(rng: np.random.RandomState, n: int) -> np.ndarray:
    x1 = rng.rand(n) * 4 - 2
    x2 = rng.rand(n) - rng.randint(0, 2, n) * 2.0
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1) * 2.0


def _eight_gaussians(rng: np.random.RandomState, n: int) -> np.ndarray:
    angles = rng.randint(0, 8, n) * (2 * math.pi / 8)
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return (centers + 0.5 * rng.randn(n, 2)) / math.sqrt(2)


def _spiral(rng: np.random.RandomState, n: int) -> np.ndarray:
    t = np.sqrt(rng.rand(n)) * 3 * math.pi
    sign = np.where(rng.rand(n) < 0.5, 1.0, -1.0)[:, None]
    pts = np.stack([-np.cos(t) * t, np.sin(t) * t], 1) * sign / 3.0
    return pts + 0.1 * rng.randn(n, 2)


def _pinwheel(rng: np.random.RandomState, n: int) -> np.ndarray:
    arms, radial, tangential, rate = 5, 0.3, 0.1, 0.25
    labels = rng.randint(0, arms, n)
    feats = rng.randn(n, 2) * np.array([radial, tangential])
    feats[:, 0] += 1.0
    angle = labels * (2 * math.pi / arms) + rate * np.exp(feats[:, 0])
    rot = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], 1).reshape(n, 2, 2)
    return 2.0 * np.einsum("ti,tij->tj", feats, rot)


TOYS = {
    "moons": _moons,
    "circles": _circles,
    "checkerboard": _checkerboard,
    "8gaussians": _eight_gaussians,
    "spiral": _spiral,
    "pinwheel": _pinwheel,
}


def toy(name: str):  # noqa: ANN201 - returns a dataset factory
    """A ``(arg, split) -> Dataset`` factory for the toy ``name``; ``arg`` may set the train size."""
    draw = TOYS[name]

    def factory(arg: str | None, split: str) -> Dataset:
        _check_split(split, name)
        n = TOY_SIZES[split]
        if arg:
            if not arg.isdigit() or int(arg) < 1:
                raise DataError(f"{name}: argument must be the training-set size, got '{arg}'")
            n = int(arg) if split == "train" else n
        rng = np.random.RandomState(_TOY_SEEDS[split] + 1000 * sorted(TOYS).index(name))
        x = torch.from_numpy(draw(rng, n).astype(np.float32))
        return Dataset(x, None, DataSpec(name, "vector", (2,)), split)

    factory.__name__ = name
    return factory


moons, circles, checkerboard = toy("moons"), toy("circles"), toy("checkerboard")
eight_gaussians, spiral, pinwheel = toy("8gaussians"), toy("spiral"), toy("pinwheel")
