"""DiffAugment: shifts against a loop, cutout's square, colour statistics, gradients, policy parsing."""

from __future__ import annotations

import pytest
import torch
from gmkit_gan.augment import color, cutout, diff_augment, parse_policy, shift_images, translate


def test_shift_images_matches_a_loop() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 2, 5, 6)
    dy, dx = torch.tensor([0, 1, -2, 3]), torch.tensor([0, -1, 2, 6])
    out = shift_images(x, dy, dx)
    ref = torch.zeros_like(x)
    for b in range(4):
        for i in range(5):
            for j in range(6):
                si, sj = i - int(dy[b]), j - int(dx[b])
                if 0 <= si < 5 and 0 <= sj < 6:
                    ref[b, :, i, j] = x[b, :, si, sj]
    assert torch.equal(out, ref)


def test_translate_and_cutout_keep_shape_and_zero_what_they_move() -> None:
    torch.manual_seed(1)
    x = torch.ones(64, 1, 8, 8)
    moved = translate(x)
    assert moved.shape == x.shape
    zeros = (moved == 0).flatten(1).sum(1)
    assert int(zeros.max()) <= 8 * 8 - 7 * 7 and int(zeros.max()) > 0  # shifts of at most one pixel on 8x8
    cut = cutout(x)
    holes = (cut == 0).flatten(1).sum(1)
    assert int(holes.max()) == 16 and int(holes.min()) >= 4  # a 4x4 square, clipped at the border


def test_color_changes_brightness_and_contrast_per_example() -> None:
    torch.manual_seed(2)
    x = torch.rand(32, 3, 4, 4) * 2 - 1
    y = color(x)
    assert y.shape == x.shape
    shift = (y.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs()
    assert float(shift.max()) <= 0.5 + 1e-6 and float(shift.std()) > 0


def test_gradients_flow_through_every_policy() -> None:
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    diff_augment(x, ("color", "translation", "cutout")).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_parse_policy() -> None:
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(ValueError, match="policies: color, translation, cutout"):
        parse_policy("color,flip")
