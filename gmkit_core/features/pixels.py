"""The ``pixels`` extractor: block-averaged pixel intensities, for any image data.

Features are the image scaled to [0, 1] and average-pooled in ``b x b`` blocks,
``b = ceil(max(H, W) / side)``, then flattened: ``(N, C * ceil(H / b) * ceil(W / b))``
float64. It has no weights, so it takes data no classifier was trained for;
distances in it measure low-frequency colour and layout statistics only and
are comparable only between runs on the same data with the same extractor.
"""

from __future__ import annotations

import math

from torch import Tensor
from torch.nn import functional as F

from ..data import DataSpec
from ..errors import DataError
from .base import FeatureExtractor, check_images

__all__ = ["Pixels"]


class Pixels(FeatureExtractor):
    """Block means of the levels scaled to [0, 1]; ``side`` bounds the pooled height and width."""

    dim = None

    def __init__(self, side: int = 8):
        if side < 1:
            raise DataError(f"feature extractor 'pixels': side must be >= 1, got {side}")
        self.side = side
        self.name = f"pixels-{side}"
        self.levels: int | None = None

    def check(self, spec: DataSpec) -> None:
        if spec.kind != "image" or not spec.levels:
            raise DataError(
                f"feature extractor 'pixels' takes images with levels, got {spec.name} ({spec.kind} "
                f"{tuple(spec.shape)}); for vectors use --features points"
            )
        self.levels = spec.levels

    def features(self, x: Tensor) -> Tensor:
        check_images(x, self.name, None, self.levels)
        block = math.ceil(max(x.shape[-2:]) / self.side)
        scaled = x.double() / max((self.levels or int(x.max()) + 1) - 1, 1)
        pooled = F.avg_pool2d(scaled, block, ceil_mode=True) if block > 1 else scaled
        return pooled.flatten(1).cpu()
