r"""Masked convolutions: the causal building block.

The model order of a ``(C, H, W)`` image is raster order over pixels and
channel order within a pixel, so sub-pixel ``(i, j, c)`` has index
:math:`(iW + j)C + c`. Every feature map inside the network splits its
``F`` features into ``C`` contiguous *groups*, feature ``f`` belonging to
group :math:`g(f) = \lfloor fC/F \rfloor`; group ``c`` of a feature at pixel
``(i, j)`` may depend on the data at earlier pixels and on channels ``< c``
of pixel ``(i, j)``.

A convolution keeps that property when its kernel tap at the output pixel
(the *centre*) connects input group ``a`` to output group ``b`` only if
``a < b`` (type A, the first layer, which reads the data itself) or ``a <= b``
(type B, later layers); other taps are masked by their position alone.

A :class:`MaskedConv2d` is a "same"-size convolution whose output pixel sits
at ``origin = (top, left)`` inside its ``(kh, kw)`` kernel, so it reads input
rows ``i - top .. i - top + kh - 1`` and columns ``j - left .. j - left + kw - 1``
(zeros outside the image). :meth:`MaskedConv2d.region` evaluates it on any
rectangle of output pixels from the input it needs alone; the fast sampler
uses it to compute one pixel or one row at a time.

References: van den Oord et al., Pixel Recurrent Neural Networks (2016,
arXiv:1601.06759), section 3.4; Conditional Image Generation with PixelCNN
Decoders (2016, arXiv:1606.05328).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["groups", "centre_mask", "raster_mask", "row_mask", "full_mask", "MaskedConv2d"]


def groups(features: int, channels: int, copies: int = 1) -> Tensor:
    r"""Group :math:`\lfloor fC/F \rfloor` of each of ``F = features`` features, repeated ``copies`` times.

    ``copies=2`` labels the ``2F`` outputs of a convolution that a gate splits
    into two halves of ``F``, so both halves carry the same groups.
    """
    return (torch.arange(features) * channels // features).repeat(copies)


def centre_mask(group_in: Tensor, group_out: Tensor, kind: str) -> Tensor:
    """``(out, in)`` 0/1 mask of the centre tap: ``in < out`` (kind ``"A"``) or ``in <= out`` (``"B"``)."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    out, inp = group_out[:, None], group_in[None, :]
    return (inp < out if kind == "A" else inp <= out).to(torch.get_default_dtype())


def raster_mask(k: int, group_in: Tensor, group_out: Tensor, kind: str) -> Tensor:
    """``(out, in, k, k)`` mask of a ``k x k`` PixelCNN kernel (origin at its centre).

    Rows above the centre and the pixels left of it on its row are open; the
    centre follows :func:`centre_mask`; the rest is closed.
    """
    c = k // 2
    mask = torch.zeros(len(group_out), len(group_in), k, k)
    mask[:, :, :c, :] = 1
    mask[:, :, c, :c] = 1
    mask[:, :, c, c] = centre_mask(group_in, group_out, kind)
    return mask


def row_mask(k: int, group_in: Tensor, group_out: Tensor, kind: str) -> Tensor:
    """``(out, in, 1, k//2 + 1)`` mask of the gated horizontal stack: pixels left of the centre open."""
    c = k // 2
    mask = torch.ones(len(group_out), len(group_in), 1, c + 1)
    mask[:, :, 0, c] = centre_mask(group_in, group_out, kind)
    return mask


def full_mask(features_in: int, features_out: int, kh: int, kw: int) -> Tensor:
    """An all-open ``(out, in, kh, kw)`` mask (taps that only read earlier rows)."""
    return torch.ones(features_out, features_in, kh, kw)


class MaskedConv2d(nn.Module):
    r"""Same-size 2-D convolution with a fixed 0/1 mask on its kernel.

    :math:`y_{:, i, j} = b + \sum_{u,v} (W \odot M)_{:, :, u, v}\, x_{:, i - top + u, j - left + v}`,
    zero outside the image. ``x``: ``(*, F_in, H, W)`` -> ``(*, F_out, H, W)``.
    Weights are initialised like :class:`torch.nn.Conv2d` (the mask is applied on use).
    """

    mask: Tensor

    def __init__(self, mask: Tensor, origin: tuple[int, int], bias: bool = True):
        super().__init__()
        out_features, in_features, kh, kw = mask.shape
        if not (0 <= origin[0] < kh and 0 <= origin[1] < kw):
            raise ValueError(f"origin {origin} outside a {kh}x{kw} kernel")
        proto = nn.Conv2d(in_features, out_features, (kh, kw), bias=bias)
        self.weight = proto.weight
        self.bias = proto.bias
        self.origin = origin
        self.register_buffer("mask", mask.to(proto.weight.dtype), persistent=False)

    @property
    def kernel_size(self) -> tuple[int, int]:
        return self.mask.shape[-2], self.mask.shape[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.region(x, 0, x.shape[-2], 0, x.shape[-1])

    def region(self, x: Tensor, r0: int, r1: int, c0: int, c1: int) -> Tensor:
        """Outputs at rows ``[r0, r1)`` and columns ``[c0, c1)`` only: ``(*, F_out, r1-r0, c1-c0)``.

        Reads just the input window those outputs need, zero-padded at the image border.
        """
        (kh, kw), (top, left) = self.kernel_size, self.origin
        height, width = x.shape[-2:]
        a0, a1 = r0 - top, r1 - top + kh - 1
        b0, b1 = c0 - left, c1 - left + kw - 1
        window = x[..., max(a0, 0) : min(a1, height), max(b0, 0) : min(b1, width)]
        pad = (max(-b0, 0), max(b1 - width, 0), max(-a0, 0), max(a1 - height, 0))
        if any(pad):
            window = F.pad(window, pad)
        weight = self.weight * self.mask
        if r1 - r0 == 1 and c1 - c0 == 1:  # one output pixel: a matrix product, far cheaper than conv2d
            out = F.linear(window.flatten(-3), weight.flatten(1), self.bias)
            return out[..., None, None]
        return F.conv2d(window, weight, self.bias)

    def extra_repr(self) -> str:
        out_features, in_features, kh, kw = self.mask.shape
        return f"{in_features}, {out_features}, kernel=({kh}, {kw}), origin={self.origin}"
