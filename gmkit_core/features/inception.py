"""Inception-v3 pool features (2048-d) from a LOCAL copy of the FID weights; nothing is downloaded.

The network is the Inception-v3 of Szegedy et al. 2016 (arXiv:1512.00567) in
the variant used for FID (Heusel et al. 2017, arXiv:1706.08500; the TensorFlow
graph ``pt_inception-2015-12-05``): average pools that exclude padding from
their mean, a max pool in the last block's pool branch, a 1008-way final layer
(unused here). The module names follow the state-dict keys of the widely used
PyTorch port of those weights (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``,
``fc.weight``, ...), so that file loads with ``torch.load(path, weights_only=True)``.

Input: images as stored, ``(N, C, H, W)`` levels in ``[0, L)`` with ``C`` 1 or 3;
grey is replicated to RGB, values map to ``[-1, 1]`` and images are resized to
299 x 299 (bilinear). Output: ``(N, 2048)`` float64 after the global average pool.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import DataSpec
from ..errors import DataError
from .base import FeatureExtractor, batched, check_images, file_sha256

__all__ = ["FIDInceptionV3", "InceptionFeatures"]

SIZE = 299


class Conv(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _row(cin: int, cout: int, k: int) -> Conv:
    """A 1 x k convolution that keeps the size."""
    return Conv(cin, cout, (1, k), padding=(0, k // 2))


def _col(cin: int, cout: int, k: int) -> Conv:
    """A k x 1 convolution that keeps the size."""
    return Conv(cin, cout, (k, 1), padding=(k // 2, 0))


def _avg3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-1x1 -> 224 + pool channels."""

    def __init__(self, cin: int, pool: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = Conv(cin, 48, 1), Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(cin, pool, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class ReduceB(nn.Module):
    """35 -> 17 grid: stride-2 3x3 | 1x1-3x3-3x3/2 | max pool."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = Conv(64, 96, 3, padding=1), Conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 then 7x1) -> 768 channels."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1, self.branch7x7_2, self.branch7x7_3 = Conv(cin, c7, 1), _row(c7, c7, 7), _col(c7, 192, 7)
        self.branch7x7dbl_1 = Conv(cin, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = _col(c7, c7, 7), _row(c7, c7, 7)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = _col(c7, c7, 7), _row(c7, 192, 7)
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                self.branch7x7dbl_5(self.branch7x7dbl_4(dbl)),
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class ReduceD(nn.Module):
    """17 -> 8 grid: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max pool."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = Conv(cin, 192, 1), Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(cin, 192, 1)
        self.branch7x7x3_2, self.branch7x7x3_3 = _row(192, 192, 7), _col(192, 192, 7)
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))
        return torch.cat(
            [
                self.branch3x3_2(self.branch3x3_1(x)),
                self.branch7x7x3_4(seven),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class BlockE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs -> 2048 channels; ``max_pool``: the last block's pool branch."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a, self.branch3x3_2b = _row(384, 384, 3), _col(384, 384, 3)
        self.branch3x3dbl_1, self.branch3x3dbl_2 = Conv(cin, 448, 1), Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a, self.branch3x3dbl_3b = _row(384, 384, 3), _col(384, 384, 3)
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInceptionV3(nn.Module):
    """``(N, 3, 299, 299)`` in ``[-1, 1]`` -> ``(N, 2048)`` pool features (``fc``: the 1008 logits, kept for loading)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = BlockA(192, 32), BlockA(256, 64), BlockA(288, 64)
        self.Mixed_6a = ReduceB(288)
        self.Mixed_6b, self.Mixed_6c = BlockC(768, 128), BlockC(768, 160)
        self.Mixed_6d, self.Mixed_6e = BlockC(768, 160), BlockC(768, 192)
        self.Mixed_7a = ReduceD(768)
        self.Mixed_7b, self.Mixed_7c = BlockE(1280, max_pool=False), BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        return x.mean((2, 3))  # (N, 2048)


class InceptionFeatures(FeatureExtractor):
    """The FID Inception-v3 read from ``path`` (a state dict saved by ``torch.save``; loaded without pickle code)."""

    dim = 2048

    def __init__(self, path: str, levels: int | None = None, batch_size: int = 32):
        file = Path(path)
        if not file.is_file():
            raise DataError(
                f"Inception weights file {path} does not exist; give a local copy of the FID weights "
                "(pt_inception-2015-12-05-*.pth): gmkit never downloads them"
            )
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # not a torch file, or one that needs pickle code
            raise DataError(
                f"{path}: cannot read Inception weights ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        if not isinstance(state, dict):
            raise DataError(f"{path}: expected a state dict of the FID Inception-v3, got {type(state).__name__}")
        self.net = FIDInceptionV3()
        expected = self.net.state_dict()
        missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
        extra = sorted(k for k in state if k not in expected)
        if missing or extra:
            raise DataError(
                f"{path}: not the FID Inception-v3 weights ({len(missing)} keys missing, e.g. "
                f"{missing[:2]}; {len(extra)} unknown, e.g. {extra[:2]})"
            )
        try:
            self.net.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise DataError(f"{path}: weights do not fit Inception-v3 ({str(exc).splitlines()[-1].strip()})") from None
        self.net.eval()
        self.sha256 = file_sha256(file)
        self.name = f"inception-v3 (local file {file.name})"
        self.batch_size = batch_size
        self.levels = levels

    def check(self, spec: DataSpec) -> None:
        if spec.kind != "image" or spec.shape[0] not in (1, 3):
            raise DataError(
                f"feature extractor {self.name} takes grey or RGB images, got {spec.name} "
                f"({spec.kind} {tuple(spec.shape)})"
            )
        self.levels = spec.levels

    @staticmethod
    def _prepare(x: Tensor, levels: int) -> Tensor:
        """Levels -> ``[-1, 1]``, grey -> RGB, bilinear resize to 299 x 299: ``(n, 3, 299, 299)``."""
        u = x.float() / (levels - 1) * 2 - 1
        u = u.expand(-1, 3, -1, -1) if u.shape[1] == 1 else u
        return F.interpolate(u, size=(SIZE, SIZE), mode="bilinear", align_corners=False)

    def features(self, x: Tensor) -> Tensor:
        levels = self.levels
        if levels is None:
            raise DataError(
                f"feature extractor {self.name}: call check(spec) first or pass levels=, to know the pixel levels"
            )
        check_images(x, self.name, None, levels)
        if x.shape[1] not in (1, 3):
            raise DataError(f"feature extractor {self.name} takes 1 or 3 channels, got {x.shape[1]}")
        return batched(lambda b: self.net(self._prepare(b, levels)), x.cpu(), self.batch_size)
