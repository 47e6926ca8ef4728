r"""The prior over code volumes: a registered image model over the volume seen as an image.

A code volume :math:`k` ``(t, h, w)`` with ``K`` codes is shown to the prior as the one-channel
image ``(1, t, h w)`` (:func:`volume_to_image`): row ``\tau`` holds time step ``\tau``, its ``h w``
codes in raster order. The transformer's raster order over that image is the time-major order
:math:`(\tau, i, j) \mapsto \tau h w + i w + j` over the volume, so its exact factorisation

.. math:: \log p(k) = \sum_{p} \log p(k_p \mid k_{<p})

is causal over the volume: every code is predicted from all codes of earlier time steps and the
earlier codes of its own time step. With one row per time step, the transformer's learned row
table is a time embedding and its column table a spatial one shared by all time steps (stacking
the ``h`` rows of every step instead, ``(1, t h, w)``, gives the same order but a row table that
must learn every spatial row again at every time step). Per-frame models (``temporal=False``)
show each time step on its own as ``(1, 1, h w)``, the same layout without time, and sum the
frames' log-probabilities.

:func:`sample_after_prefix` draws the codes after a given prefix using only the prior's public
``logits`` (teacher-forced logits of every position): one full forward pass per drawn position,
``O(N)`` passes of length ``N``, fine for small volumes (a 4x4x4 volume is 64 positions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor

from gmkit_core.data import Dataset, DataSpec
from gmkit_core.distributions import sample_categorical
from gmkit_core.interfaces import GenerativeModel

__all__ = ["volume_to_image", "image_to_volume", "code_spec", "code_dataset", "sample_after_prefix"]


def volume_to_image(codes: Tensor) -> Tensor:
    """``(B, t, h, w)`` -> ``(B, 1, t, h w)``: one row per time step, in time order."""
    b, t, h, w = codes.shape
    return codes.reshape(b, 1, t, h * w)


def image_to_volume(image: Tensor, h: int) -> Tensor:
    """``(B, 1, t, h w)`` -> ``(B, t, h, w)``, the inverse of :func:`volume_to_image` (``h`` rows per step)."""
    b, _, t, hw = image.shape
    return image.reshape(b, t, h, hw // h)


def code_spec(rows: int, cols: int, codebook_size: int) -> DataSpec:
    """What the prior models: ``(1, rows, cols)`` images with ``K`` levels."""
    return DataSpec("codes", "image", (1, rows, cols), levels=codebook_size)


def code_dataset(images: Tensor, codebook_size: int, split: str) -> Dataset:
    """Code images ``(N, 1, rows, cols)`` as an unlabelled data set."""
    x = images.to("cpu", torch.int64)
    return Dataset(x, None, code_spec(x.shape[2], x.shape[3], codebook_size), split)


@torch.no_grad()
def sample_after_prefix(
    prior: GenerativeModel, prefix: Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> Tensor:
    """Complete code images ``(n, 1, rows, cols)`` whose first ``prefix.shape[1]`` raster positions are ``prefix``.

    ``prefix``: ``(n, P)`` int64 codes in raster order. Each later position ``p`` is drawn from
    :math:`p(k_p \\mid k_{<p})` read off ``prior.logits`` on the whole current image (causality makes
    the positions at or after ``p`` irrelevant), with one uniform from ``generator`` per image and
    position, in the same order as the prior's own sampler. With an empty prefix and
    ``temperature`` 1 this is the prior's uncached sampler. ``temperature`` :math:`\\tau > 0` draws
    from :math:`\\propto p(k_p \\mid k_{<p})^{1/\\tau}` (logits divided by :math:`\\tau`; below 1 it
    sharpens every conditional, and the draws no longer follow the prior).
    """
    c, rows, cols = prior.data.shape
    n, start = prefix.shape
    length = c * rows * cols
    sequence = torch.zeros(n, length, dtype=torch.long, device=prefix.device)
    sequence[:, :start] = prefix
    logits_of = cast(Callable[[Tensor], Tensor], prior.logits)
    was_training = prior.training
    prior.eval()
    try:
        for p in range(start, length):
            logits = logits_of(sequence.reshape(n, rows, cols, c).permute(0, 3, 1, 2))[:, p]  # (n, K)
            sequence[:, p] = sample_categorical(logits / temperature, generator)
    finally:
        prior.train(was_training)
    return sequence.reshape(n, rows, cols, c).permute(0, 3, 1, 2)
