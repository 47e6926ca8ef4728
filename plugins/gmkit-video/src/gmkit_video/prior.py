r"""The prior over code volumes: a registered image model over the volume seen as an image.

A code volume :math:`k` ``(t, h, w)`` with ``K`` codes is shown to the prior as the one-channel
image ``(1, t h, w)`` (:func:`volume_to_image`): row ``\tau h + i`` holds row ``i`` of time step
``\tau``. The transformer's raster order over that image is the time-major order
:math:`(\tau, i, j) \mapsto (\tau h + i) w + j` over the volume, so its exact factorisation

.. math:: \log p(k) = \sum_{p} \log p(k_p \mid k_{<p})

is causal over the volume: every code is predicted from all codes of earlier time steps and the
earlier codes of its own time step. Per-frame models (``temporal=False``) show each time step on
its own as ``(1, h, w)`` and sum the frames' log-probabilities.

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
    """``(B, t, h, w)`` -> ``(B, 1, t h, w)``: time steps stacked top to bottom."""
    b, t, h, w = codes.shape
    return codes.reshape(b, 1, t * h, w)


def image_to_volume(image: Tensor, t: int) -> Tensor:
    """``(B, 1, t h, w)`` -> ``(B, t, h, w)``, the inverse of :func:`volume_to_image`."""
    b, _, th, w = image.shape
    return image.reshape(b, t, th // t, w)


def code_spec(rows: int, cols: int, codebook_size: int) -> DataSpec:
    """What the prior models: ``(1, rows, cols)`` images with ``K`` levels."""
    return DataSpec("codes", "image", (1, rows, cols), levels=codebook_size)


def code_dataset(images: Tensor, codebook_size: int, split: str) -> Dataset:
    """Code images ``(N, 1, rows, cols)`` as an unlabelled data set."""
    x = images.to("cpu", torch.int64)
    return Dataset(x, None, code_spec(x.shape[2], x.shape[3], codebook_size), split)


@torch.no_grad()
def sample_after_prefix(prior: GenerativeModel, prefix: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Complete code images ``(n, 1, rows, cols)`` whose first ``prefix.shape[1]`` raster positions are ``prefix``.

    ``prefix``: ``(n, P)`` int64 codes in raster order. Each later position ``p`` is drawn from
    :math:`p(k_p \\mid k_{<p})` read off ``prior.logits`` on the whole current image (causality makes
    the positions at or after ``p`` irrelevant), with one uniform from ``generator`` per image and
    position, in the same order as the prior's own sampler. With an empty prefix this is the
    prior's uncached sampler.
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
            sequence[:, p] = sample_categorical(logits, generator)
    finally:
        prior.train(was_training)
    return sequence.reshape(n, rows, cols, c).permute(0, 3, 1, 2)
