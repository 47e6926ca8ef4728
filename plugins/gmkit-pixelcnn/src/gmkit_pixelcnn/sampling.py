r"""Ancestral sampling :math:`x_{i,c} \sim p(x_{i,c} \mid x_{<(i,c)}, y)` in model order.

Two samplers draw the same images for the same generator: they consume it
identically (one draw of ``n`` values per sub-pixel, in order) and compute the
same parameters, up to the summation order of float arithmetic:

- :func:`sample_naive` runs the whole network on the whole image for each of
  the ``C*H*W`` sub-pixels: ``O(C (HW)^2)`` pixel-layer evaluations.
- :func:`sample_fast` keeps every layer's activations in a cache and computes
  each layer at the current pixel only (plus, for the gated stack, each
  vertical layer once per finished row): ``O(C HW)`` pixel-layer evaluations,
  the cost of a single forward pass (the idea of Ramachandran et al., Fast
  Generation for Convolutional Autoregressive Models, 2017, arXiv:1704.06001).

Both are registered as sampler components (``pixelcnn_naive``,
``pixelcnn_fast``) usable with ``gmkit sample --sampler``; they take no options
and apply to PixelCNN models and priors only (:meth:`FastSampler.applies_to`).
Each sub-pixel's law is a core observation head (:mod:`gmkit_core.heads`) of its
``P`` network outputs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from torch import Tensor

from gmkit_core.errors import ConfigError
from gmkit_core.heads import Head
from gmkit_core.sampling import ConfiguredSampler

from .network import PixelCNNNet

__all__ = ["METHODS", "sample_naive", "sample_fast", "draw", "NaiveSampler", "FastSampler"]


def _canvas(net: PixelCNNNet, n: int, shape: tuple[int, int, int]) -> Tensor:
    device = net.embedding.weight.device
    return torch.zeros((n, *shape), dtype=torch.long, device=device)


@torch.no_grad()
def sample_naive(
    net: PixelCNNNet,
    head: Head,
    n: int,
    shape: tuple[int, int, int],
    condition: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``(n, C, H, W)`` int64 by one full forward pass per sub-pixel."""
    x = _canvas(net, n, shape)
    channels, height, width = shape
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                params = net(x, condition)[:, c, i, j]  # (n, P)
                x[:, c, i, j] = head(params).sample(generator)
    return x


@torch.no_grad()
def sample_fast(
    net: PixelCNNNet,
    head: Head,
    n: int,
    shape: tuple[int, int, int],
    condition: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``(n, C, H, W)`` int64 computing each layer at the current pixel only, from cached activations."""
    x = _canvas(net, n, shape)
    channels, height, width = shape
    stepper = net.start(x, condition)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                params = stepper.params(i, j)[:, c]  # (n, P)
                x[:, c, i, j] = head(params).sample(generator)
                stepper.write(i, j)
        stepper.end_row(i)
    return x


METHODS = {"naive": sample_naive, "fast": sample_fast}


def draw(
    net: PixelCNNNet,
    head: Head,
    n: int,
    shape: tuple[int, int, int],
    condition: Tensor | None,
    generator: torch.Generator | None,
    method: str,
) -> Tensor:
    """Sample with ``method`` (``fast`` or ``naive``) in evaluation mode, restoring the training flag."""
    if method not in METHODS:
        raise ConfigError(f"sampling method must be one of {', '.join(METHODS)}, got '{method}'")
    if n < 0:
        raise ConfigError(f"number of samples must be >= 0, got {n}")
    training = net.training
    net.eval()
    try:
        return METHODS[method](net, head, n, shape, condition, generator)
    finally:
        net.train(training)


class _Sampler(ConfiguredSampler):
    """``sampler(model, n, *, condition=None, generator=None, data=None)`` for PixelCNN models and priors."""

    method: ClassVar[str]

    @attrs.frozen
    class Options:
        """No options."""

    @staticmethod
    def applies_to(model: Any) -> str | None:
        from .model import PixelCNN
        from .prior import PixelCNNPrior

        if isinstance(model, (PixelCNN, PixelCNNPrior)):
            return None
        return f"it draws from pixelcnn and cpixelcnn models and pixelcnn priors, not {type(model).__name__}"

    def __call__(
        self,
        model: Any,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Any = None,
    ) -> Tensor:
        why = self.applies_to(model)
        if why:
            raise ConfigError(f"sampler '{self.name}': {why}")
        return model.sample(n, condition=condition, generator=generator, method=self.method)


class NaiveSampler(_Sampler):
    """One full forward pass per sub-pixel (the reference)."""

    name = "pixelcnn_naive"
    method = "naive"


class FastSampler(_Sampler):
    """Cached activations, one pixel of work per step (the default of ``model.sample``)."""

    name = "pixelcnn_fast"
    method = "fast"
