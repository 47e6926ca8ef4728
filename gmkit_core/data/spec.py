"""What a model needs to know about its data, without the data itself."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["DataSpec", "KINDS", "SPLITS"]

SPLITS = ("train", "validation", "test")
KINDS = ("image", "video", "vector")


def _shape(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class DataSpec:
    """Shape and type of a data set.

    ``kind == "image"``: integer tensors ``(N, C, H, W)`` with values in
    ``[0, levels)``. ``kind == "video"``: integer tensors ``(N, T, C, H, W)``
    (T frames) with values in ``[0, levels)``. ``kind == "vector"``: float
    tensors ``(N, D)``. ``num_classes`` is set when the data carry labels
    ``0 .. num_classes-1``.
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    shape: tuple[int, ...] = attrs.field(converter=_shape)
    levels: int | None = None
    num_classes: int | None = None

    @property
    def dims(self) -> int:
        """Number of scalar dimensions per example (C*H*W, T*C*H*W or D); bits/dim divides by it."""
        return math.prod(self.shape)

    @property
    def is_image(self) -> bool:
        """2D images ``(C, H, W)``."""
        return self.kind == "image"

    @property
    def is_large_image(self) -> bool:
        """Images with a side above 16 pixels (28 x 28, 32 x 32, ...), for which models scale their defaults."""
        return self.kind == "image" and max(self.shape[-2:]) > 16

    @property
    def is_video(self) -> bool:
        """Clips of frames ``(T, C, H, W)``."""
        return self.kind == "video"

    @property
    def is_discrete(self) -> bool:
        """Integer levels in ``[0, levels)`` (images and videos): NLL in nats of the discrete data and bits/dim."""
        return self.kind in ("image", "video")

    def to_json(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataSpec:
        return cls(data["name"], data["kind"], data["shape"], data.get("levels"), data.get("num_classes"))
