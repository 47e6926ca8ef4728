r"""Priors over code maps and the data sets a learned prior is fitted on.

A VQ-VAE's latent is a map of codes :math:`k \in \{0..K-1\}^{h \times w}`. Until a
learned prior is fitted, the model uses the uniform prior
:math:`p(k) = K^{-hw}`, i.e. :math:`hw \log K` nats per example
(:class:`UniformCodes`). The learned prior (stage 2) is any registered
image model with a likelihood, fitted on the code maps of the training data
seen as one-channel images with ``K`` levels (:func:`code_dataset`); the
default is ``pixelcnn`` from gmkit-pixelcnn.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gmkit_core.data import Dataset, DataSpec
from gmkit_core.interfaces import Prior

__all__ = ["UniformCodes", "code_spec", "code_dataset"]


class UniformCodes(Prior):
    r"""Uniform :math:`p(k) = K^{-\prod \text{shape}}` over integer code maps ``(B, *shape)`` in ``[0, K)``.

    ``log_prob(k) = -prod(shape) log K`` for every map (``(B,)`` nats);
    ``sample(n)`` draws ``(n, *shape)`` int64 codes independently and uniformly.
    """

    _device_anchor: Tensor

    def __init__(self, shape: int | tuple[int, ...], levels: int):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if levels < 1:
            raise ValueError(f"levels must be positive, got {levels}")
        self.levels = levels
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        nats = math.prod(self.shape) * math.log(self.levels)
        return torch.full((z.shape[0],), -nats, dtype=self._device_anchor.dtype, device=z.device)

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if condition is not None:
            raise ValueError("uniform_codes is an unconditional prior")
        return torch.randint(self.levels, (n, *self.shape), generator=generator, device=self._device_anchor.device)


def code_spec(shape: tuple[int, int], codebook_size: int) -> DataSpec:
    """The data a code prior models: one-channel ``(1, h, w)`` images with ``K`` levels."""
    return DataSpec("codes", "image", (1, *shape), levels=codebook_size)


def code_dataset(codes: Tensor, codebook_size: int, split: str) -> Dataset:
    """Code maps ``(N, h, w)`` as an unlabelled :class:`~gmkit_core.data.Dataset` of ``(N, 1, h, w)`` int64 images."""
    x = codes.to("cpu", torch.int64).unsqueeze(1)
    return Dataset(x, None, code_spec((codes.shape[1], codes.shape[2]), codebook_size), split)
