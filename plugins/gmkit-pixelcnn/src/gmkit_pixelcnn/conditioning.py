r"""Conditioning inputs :math:`y` of :math:`p(x \mid y) = \prod_i p(x_i \mid x_{<i}, y)`.

A condition never depends on ``x``, so it may enter every layer at every
pixel without breaking causality. Each layer adds a learned linear map of it
to its pre-activations, :math:`W_f * x + V_f\, y` (van den Oord et al., 2016,
arXiv:1606.05328, eqs. 4 and 5). Kinds:

- ``"label"``: ``(B,)`` int64 classes in ``[0, size)``, one-hot encoded (so
  :math:`V y` is a learned per-class bias);
- ``"vector"``: ``(B, size)`` floats, the same bias at every pixel;
- ``"spatial"``: ``(B, size, H, W)`` floats, a map of the image's height and
  width (e.g. an upsampled code map or an image to condition on), added pixel by pixel.

:class:`ConditionEncoder` turns any of them into a feature map
``(B, size, 1, 1)`` or ``(B, size, H, W)`` that 1x1 convolutions project.
"""

from __future__ import annotations

from typing import overload

import torch.nn.functional as F
from torch import Tensor, nn

from gmkit_core.errors import ConfigError

__all__ = ["KINDS", "ConditionEncoder", "at", "row", "project"]

KINDS = ("label", "vector", "spatial")


class ConditionEncoder(nn.Module):
    """``condition`` -> ``(B, size, 1, 1)`` or ``(B, size, H, W)`` features, or None when unconditional."""

    def __init__(self, kind: str | None = None, size: int = 0):
        super().__init__()
        if kind is not None and kind not in KINDS:
            raise ConfigError(f"condition kind must be one of {', '.join(KINDS)}, got '{kind}'")
        if kind is not None and size < 1:
            raise ConfigError(f"a '{kind}' condition needs a size >= 1, got {size}")
        self.kind, self.size = kind, size if kind is not None else 0

    def forward(self, condition: Tensor | None, batch: int, height: int, width: int, like: Tensor) -> Tensor | None:
        """Validate and encode; ``like`` gives the dtype and device of the features."""
        if self.kind is None:
            if condition is not None:
                raise ConfigError("this PixelCNN is unconditional; pass no condition")
            return None
        if condition is None:
            raise ConfigError(f"this PixelCNN is conditioned on a {self.kind}; pass condition=")
        condition = condition.to(like.device)
        if self.kind == "label":
            if condition.shape != (batch,) or condition.is_floating_point():
                raise ConfigError(f"label condition must be ({batch},) integers, got {tuple(condition.shape)}")
            if condition.numel() and (int(condition.min()) < 0 or int(condition.max()) >= self.size):
                raise ConfigError(f"labels must lie in [0, {self.size})")
            return F.one_hot(condition.long(), self.size).to(like.dtype)[:, :, None, None]
        expected = (batch, self.size) if self.kind == "vector" else (batch, self.size, height, width)
        if tuple(condition.shape) != expected:
            raise ConfigError(f"{self.kind} condition must have shape {expected}, got {tuple(condition.shape)}")
        features = condition.to(like.dtype)
        return features[:, :, None, None] if self.kind == "vector" else features

    def extra_repr(self) -> str:
        return f"kind={self.kind}, size={self.size}"


def at(features: Tensor | None, i: int, j: int) -> Tensor | None:
    """Pixel ``(i, j)`` of a per-pixel map ``(B, F, H, W)``, or a broadcast map ``(B, F, 1, 1)`` as is."""
    if features is None:
        return None
    return row(features, i)[..., j : j + 1] if features.shape[-1] > 1 else row(features, i)


@overload
def row(features: Tensor, i: int) -> Tensor: ...
@overload
def row(features: None, i: int) -> None: ...
@overload
def row(features: Tensor | None, i: int) -> Tensor | None: ...


def row(features: Tensor | None, i: int) -> Tensor | None:
    """Row ``i`` of a per-pixel map, ``(B, F, 1, W)``, or a broadcast map as is."""
    if features is None:
        return None
    return features[..., i : i + 1, :] if features.shape[-2] > 1 else features


def project(layer: nn.Module | None, features: Tensor | None) -> Tensor | None:
    """``layer(features)`` where both exist (a layer's view of the condition)."""
    return None if layer is None or features is None else layer(features)
