"""In-memory data sets and batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import attrs
import torch

from ..errors import DataError
from .spec import DataSpec

__all__ = ["Batch", "Dataset"]


class Batch(NamedTuple):
    """``x``: ``(B, C, H, W)`` int64 images, ``(B, T, C, H, W)`` int64 clips or ``(B, D)`` floats.

    ``y``: ``(B,)`` int64 labels or None.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.x.to(device), None if self.y is None else self.y.to(device))

    def __len__(self) -> int:
        return self.x.shape[0]


@attrs.frozen
class Dataset:
    """One split of a data set, held in memory."""

    x: torch.Tensor
    y: torch.Tensor | None
    spec: DataSpec
    split: str

    def __attrs_post_init__(self) -> None:
        check_tensor(self.x, self.y, self.spec)

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, index: torch.Tensor | slice) -> Batch:
        return Batch(self.x[index], None if self.y is None else self.y[index])

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Consecutive batches in order (evaluation)."""
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))

    def describe(self) -> str:
        return f"{self.spec.name} ({self.split}, {len(self)} examples)"


def check_tensor(x: torch.Tensor, y: torch.Tensor | None, spec: DataSpec) -> None:
    """Raise DataError unless ``x`` and ``y`` match ``spec``."""
    where = spec.name
    if tuple(x.shape[1:]) != tuple(spec.shape):
        raise DataError(f"{where}: examples have shape {tuple(x.shape[1:])}, expected {spec.shape}")
    if spec.is_discrete:
        if x.dtype != torch.int64:
            raise DataError(f"{where}: {spec.kind}s must be int64, got {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= (spec.levels or 0)):
            raise DataError(f"{where}: pixel values must lie in [0, {spec.levels})")
    elif not x.is_floating_point():
        raise DataError(f"{where}: vector data must be floating point, got {x.dtype}")
    else:
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise DataError(f"{where}: {bad} non-finite values (NaN or inf) in the vector data; remove or replace them")
    if y is not None:
        if y.shape != (x.shape[0],):
            raise DataError(f"{where}: {y.shape[0] if y.ndim else 0} labels for {x.shape[0]} examples")
        if spec.num_classes is not None and y.numel() and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
            raise DataError(f"{where}: labels must lie in [0, {spec.num_classes})")
