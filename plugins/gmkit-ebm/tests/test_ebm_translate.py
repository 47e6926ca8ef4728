"""random_translate against a brute-force shift, and the spread of its offsets."""

from __future__ import annotations

import itertools

import torch
from gmkit_ebm.translate import random_translate
from hypothesis import given, settings
from hypothesis import strategies as st


def _moved(image: torch.Tensor, dy: int, dx: int, fill: int) -> torch.Tensor:
    """``image`` (C, H, W) moved by (dy, dx) pixel by pixel: out[i, j] = image[i - dy, j - dx] or ``fill``."""
    c, h, w = image.shape
    out = torch.full_like(image, fill)
    for i, j in itertools.product(range(h), range(w)):
        if 0 <= i - dy < h and 0 <= j - dx < w:
            out[:, i, j] = image[:, i - dy, j - dx]
    return out


@settings(max_examples=25, deadline=None)
@given(shift=st.integers(0, 3), seed=st.integers(0, 2**16), fill=st.integers(-2, 2))
def test_every_image_is_a_translate_within_the_shift(shift: int, seed: int, fill: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, 20, (6, 2, 5, 4), generator=g)  # values never equal to fill
    out = random_translate(x, shift, fill, generator=g)
    assert out.shape == x.shape and out.dtype == x.dtype
    moves = range(-shift, shift + 1)
    for image, result in zip(x, out, strict=True):
        assert any(torch.equal(result, _moved(image, dy, dx, fill)) for dy in moves for dx in moves)


def test_offsets_cover_the_square_uniformly() -> None:
    g = torch.Generator().manual_seed(0)
    n, shift = 9000, 1
    x = torch.zeros(n, 1, 3, 3)
    x[:, :, 1, 1] = 1.0  # one lit pixel: its position after the move reads off (dy, dx)
    where = random_translate(x, shift, generator=g).flatten(1).argmax(1)
    counts = torch.bincount(where, minlength=9).double()
    assert int((counts > 0).sum()) == 9
    expected = n / 9
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 26.1  # 8 degrees of freedom, p = 0.001


def test_zero_shift_is_the_identity() -> None:
    x = torch.arange(24.0).reshape(2, 1, 3, 4)
    assert random_translate(x, 0) is x
