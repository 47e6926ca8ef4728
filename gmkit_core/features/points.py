"""The ``points`` extractor for vector data (2D toys, tabular): the features are the points themselves."""

from __future__ import annotations

from torch import Tensor

from ..data import DataSpec
from ..errors import DataError
from .base import FeatureExtractor

__all__ = ["Points"]


class Points(FeatureExtractor):
    """Identity on ``(N, D)`` float vectors; ``dim`` is the data's ``D``, no weights (``sha256`` is None)."""

    name = "points"
    dim = None

    def check(self, spec: DataSpec) -> None:
        if spec.kind != "vector":
            raise DataError(
                f"feature extractor 'points' takes vector data, got {spec.name} ({spec.kind} "
                f"{tuple(spec.shape)}); for images use --features digits, F.h5 or inception:PATH"
            )

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or not x.is_floating_point():
            raise DataError(
                f"feature extractor 'points' takes float vectors (N, D), got {x.dtype} of shape {tuple(x.shape)}"
            )
        return x.detach().cpu().double()
