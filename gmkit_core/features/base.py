"""What a feature extractor is: data as stored in, ``(N, d)`` float64 features out.

An extractor is registered under the kind ``feature``; the registered target
is a class or factory that builds one (``registry.get("feature", name, **options)``;
a target that reads a file takes it as ``path=``). The metrics in
:mod:`gmkit_core.metrics` see data only through an extractor.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..data import DataSpec
from ..errors import DataError

__all__ = ["FeatureExtractor", "file_sha256", "check_images", "batched", "FIT_HINT"]

FIT_HINT = "train an extractor for this data with `gmkit features fit --data SRC --out F.h5` and pass --features F.h5"


class FeatureExtractor(ABC):
    """Maps a batch of data as stored to features.

    Attributes:
        name: what results call it (``feature_extractor``), e.g. ``"digits-cnn"``.
        dim: feature dimension ``d`` (``None``: the data's own dimension).
        sha256: hex digest of the weights file, ``None`` for an extractor without weights.
        num_classes: classes of :meth:`logits`, ``None`` when the extractor is no classifier.
    """

    name: str
    dim: int | None
    sha256: str | None = None
    num_classes: int | None = None

    @abstractmethod
    def check(self, spec: DataSpec) -> None:
        """Raise :class:`~gmkit_core.errors.DataError` unless data of ``spec`` is accepted."""

    @abstractmethod
    def features(self, x: Tensor) -> Tensor:
        """``x``: ``(N, *shape)`` data as stored -> ``(N, d)`` float64 features."""

    def __call__(self, x: Tensor) -> Tensor:
        return self.features(x)

    def logits(self, x: Tensor) -> Tensor:
        """``(N, num_classes)`` class scores, for extractors that are classifiers."""
        raise DataError(f"feature extractor {self.name} is not a classifier; it gives no class scores")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_images(x: Tensor, name: str, shapes: tuple[tuple[int, ...], ...] | None, levels: int | None) -> None:
    """Raise DataError unless ``x`` is a batch of int images of an accepted shape with values in ``[0, levels)``."""
    if x.ndim != 4 or x.is_floating_point():
        raise DataError(
            f"feature extractor {name} takes int64 images (N, C, H, W), got {x.dtype} of shape "
            f"{tuple(x.shape)}; {FIT_HINT}"
        )
    if shapes is not None and tuple(x.shape[1:]) not in shapes:
        raise DataError(
            f"feature extractor {name} takes images of shape {' or '.join(map(str, shapes))}, got "
            f"{tuple(x.shape[1:])}; {FIT_HINT}"
        )
    if levels is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= levels):
        raise DataError(
            f"feature extractor {name} takes pixel levels in [0, {levels}), got values in "
            f"[{int(x.min())}, {int(x.max())}]; {FIT_HINT}"
        )


def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int) -> Tensor:
    """``fn`` over ``x`` in batches, without gradients, concatenated as float64."""
    with torch.no_grad():
        parts = [fn(x[i : i + batch_size]).double() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, 0, dtype=torch.float64)
