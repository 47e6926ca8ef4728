r"""The two causal feature stacks: gated (vertical + horizontal) and plain masked.

Both map the embedded image ``e``: ``(B, C*E, H, W)`` and an optional encoded
condition to features ``h``: ``(B, F, H, W)`` whose group ``c`` at pixel
``(i, j)`` depends only on sub-pixels before ``(i, j, c)`` in model order
(see :mod:`gmkit_pixelcnn.masked`). Each also evaluates incrementally for the
fast sampler: :meth:`start` allocates per-layer caches, :meth:`step` computes
all layers at one pixel from what the caches hold, and :meth:`end_row`
finishes work that waits for a complete row.

**Gated** (van den Oord et al., 2016, arXiv:1606.05328, section 2.2). A layer
with ``F`` features and kernel ``k`` (``p = k // 2``) carries a vertical map
``v`` (rows above and the current row) and a horizontal map ``h``:

.. math::
    a_v &= W_v * v \quad (\text{kernel } (p+1) \times k,\ \text{rows } i-p..i),\qquad v' = \tanh(a_v^{(1)} + V_v y) \odot \sigma(a_v^{(2)} + V'_v y)\\
    a_h &= W_h * h + U\,\mathrm{shift}_{\downarrow}(a_v) \quad (\text{kernel } 1 \times (p+1),\ \text{columns } j-p..j)\\
    h' &= h + W_o\,[\tanh(a_h^{(1)} + V_h y) \odot \sigma(a_h^{(2)} + V'_h y)]

(dropout, in training, acts on :math:`v'` and on the gated horizontal features),
where :math:`\mathrm{shift}_\downarrow` moves the vertical pre-activations one
row down, so ``h`` at row ``i`` sees ``v`` from rows ``< i`` only. The
horizontal kernel's last tap is the current pixel, channel-masked (type A in
the first layer, which has no residual, type B after). The receptive field is
the whole region above plus the pixels to the left: no blind spot.

**Plain** (van den Oord et al., 2016, arXiv:1601.06759): a ``k0 x k0`` type-A
masked convolution, then residual layers :math:`h' = h + W * \mathrm{ReLU}(h) + V y`
with ``k x k`` type-B kernels. A masked ``k x k`` kernel reaches at most one
column to the right per row up, so pixels up-and-right beyond that diagonal are
never seen, however deep the stack (the "blind spot").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn

from .conditioning import at, project, row
from .masked import MaskedConv2d, centre_mask, full_mask, groups, raster_mask, row_mask

__all__ = ["GatedLayer", "GatedStack", "PlainLayer", "PlainStack", "ARCHS"]


def _gate(a: Tensor) -> Tensor:
    """:math:`\\tanh(a^{(1)}) \\odot \\sigma(a^{(2)})` over the two halves of the feature axis."""
    x, g = a.chunk(2, dim=-3)
    return torch.tanh(x) * torch.sigmoid(g)


def _shift_down(a: Tensor) -> Tensor:
    """Row ``i`` of the result holds row ``i - 1`` of ``a``; row 0 is zero."""
    return torch.cat([torch.zeros_like(a[..., :1, :]), a[..., :-1, :]], dim=-2)


def _add(a: Tensor, b: Tensor | None) -> Tensor:
    return a if b is None else a + b


def _check_kernel(k: int) -> None:
    if k < 3 or k % 2 == 0:
        raise ValueError(f"kernel sizes must be odd and >= 3, got {k}")


class GatedLayer(nn.Module):
    """One gated layer: ``(v, h)`` ``(B, F_in, H, W)`` each -> ``(B, F, H, W)`` each."""

    def __init__(
        self,
        in_features: int,
        features: int,
        channels: int,
        kernel: int,
        first: bool,
        condition_features: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        _check_kernel(kernel)
        p = kernel // 2
        g_in, g_out, g_gate = groups(in_features, channels), groups(features, channels), groups(features, channels, 2)
        self.vertical = MaskedConv2d(full_mask(in_features, 2 * features, p + 1, kernel), (p, p))
        self.horizontal = MaskedConv2d(row_mask(kernel, g_in, g_gate, "A" if first else "B"), (0, p))
        self.link = nn.Conv2d(2 * features, 2 * features, 1, bias=False)
        self.out = MaskedConv2d(centre_mask(g_out, g_out, "B")[:, :, None, None], (0, 0))
        self.condition_v = nn.Conv2d(condition_features, 2 * features, 1, bias=False) if condition_features else None
        self.condition_h = nn.Conv2d(condition_features, 2 * features, 1, bias=False) if condition_features else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = not first

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a_v = self.vertical(v)  # (B, 2F, H, W)
        a_h = self.horizontal(h) + _shift_down(self.link(a_v))  # (B, 2F, H, W)
        v_out = self.dropout(_gate(_add(a_v, project(self.condition_v, y))))  # (B, F, H, W)
        h_out = self.out(self.dropout(_gate(_add(a_h, project(self.condition_h, y)))))
        return v_out, h_out + h if self.residual else h_out

    def vertical_row(self, v: Tensor, i: int, y_v: Tensor | None) -> tuple[Tensor, Tensor]:
        """Row ``i`` of ``v'`` ``(B, F, 1, W)`` and of ``U a_v`` ``(B, 2F, 1, W)`` (the link into row ``i + 1``)."""
        a_v = self.vertical.region(v, i, i + 1, 0, v.shape[-1])
        return self.dropout(_gate(_add(a_v, row(y_v, i)))), self.link(a_v)

    def horizontal_pixel(self, h: Tensor, i: int, j: int, link: Tensor, y_h: Tensor | None) -> Tensor:
        """``h'`` at pixel ``(i, j)``, ``(B, F, 1, 1)``, given the link ``(B, 2F, 1, 1)`` from row ``i - 1``."""
        a_h = self.horizontal.region(h, i, i + 1, j, j + 1) + link
        out = self.out(self.dropout(_gate(_add(a_h, at(y_h, i, j)))))
        return out + h[..., i : i + 1, j : j + 1] if self.residual else out


@dataclass
class GatedCache:
    """Inputs of every layer (``v[l]``, ``h[l]``; ``v[0] is h[0]`` is the embedding), links and condition terms."""

    v: list[Tensor]
    h: list[Tensor]
    link: list[Tensor]
    y_v: list[Tensor | None] = field(default_factory=list)
    y_h: list[Tensor | None] = field(default_factory=list)


class GatedStack(nn.Module):
    """``layers`` gated layers; the first (kernel ``first_kernel``) reads the embedding with type-A masks."""

    def __init__(
        self,
        in_features: int,
        features: int,
        channels: int,
        layers: int,
        kernel: int,
        first_kernel: int,
        condition_features: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.features = features
        self.layers = nn.ModuleList(
            GatedLayer(
                in_features if l == 0 else features,
                features,
                channels,
                first_kernel if l == 0 else kernel,
                l == 0,
                condition_features,
                dropout,
            )
            for l in range(layers)
        )

    @property
    def typed_layers(self) -> Sequence[GatedLayer]:
        """``self.layers`` with its element type (``__init__`` fills it with GatedLayer only)."""
        return cast(Sequence[GatedLayer], self.layers)

    def forward(self, e: Tensor, y: Tensor | None = None) -> Tensor:
        v = h = e
        for layer in self.layers:
            v, h = layer(v, h, y)
        return h

    def start(self, e: Tensor, y: Tensor | None = None) -> GatedCache:
        n, _, height, width = e.shape

        def zeros(f: int) -> Tensor:
            return e.new_zeros(n, f, height, width)

        depth = len(self.layers)
        return GatedCache(
            v=[e] + [zeros(self.features) for _ in range(depth)],
            h=[e] + [zeros(self.features) for _ in range(depth)],
            link=[zeros(2 * self.features) for _ in range(depth)],
            y_v=[project(layer.condition_v, y) for layer in self.typed_layers],
            y_h=[project(layer.condition_h, y) for layer in self.typed_layers],
        )

    def step(self, cache: GatedCache, i: int, j: int) -> Tensor:
        """All layers at pixel ``(i, j)`` (rows ``< i`` and pixels left of ``j`` cached); ``(B, F, 1, 1)``."""
        out = cache.h[0][..., i : i + 1, j : j + 1]
        for l, layer in enumerate(self.typed_layers):
            out = layer.horizontal_pixel(cache.h[l], i, j, cache.link[l][..., i : i + 1, j : j + 1], cache.y_h[l])
            cache.h[l + 1][..., i : i + 1, j : j + 1] = out
        return out

    def end_row(self, cache: GatedCache, i: int) -> None:
        """Row ``i`` is complete: compute the vertical stack on it and the links into row ``i + 1``."""
        height = cache.v[0].shape[-2]
        for l, layer in enumerate(self.typed_layers):
            v_row, link = layer.vertical_row(cache.v[l], i, cache.y_v[l])
            cache.v[l + 1][..., i : i + 1, :] = v_row
            if i + 1 < height:
                cache.link[l][..., i + 1 : i + 2, :] = link


class PlainLayer(nn.Module):
    """``h' = W_A * e`` (first) or ``h' = h + W_B * ReLU(h)``, plus the condition term; ``(B, F, H, W)``."""

    def __init__(
        self,
        in_features: int,
        features: int,
        channels: int,
        kernel: int,
        first: bool,
        condition_features: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        _check_kernel(kernel)
        g_in, g_out = groups(in_features, channels), groups(features, channels)
        self.conv = MaskedConv2d(raster_mask(kernel, g_in, g_out, "A" if first else "B"), (kernel // 2, kernel // 2))
        self.condition = nn.Conv2d(condition_features, features, 1, bias=False) if condition_features else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = not first

    def activate(self, h: Tensor) -> Tensor:
        """What the convolution reads: the embedding itself (first layer) or ``ReLU(h)``."""
        return torch.relu(h) if self.residual else h

    def combine(self, conv_out: Tensor, h: Tensor, y: Tensor | None) -> Tensor:
        out = _add(self.dropout(conv_out), y)
        return out + h if self.residual else out

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        return self.combine(self.conv(self.activate(h)), h, project(self.condition, y))


@dataclass
class PlainCache:
    """Inputs ``h[l]`` of every layer, what their convolutions read (``a[l]``), and condition terms."""

    h: list[Tensor]
    a: list[Tensor]
    y: list[Tensor | None]


class PlainStack(nn.Module):
    """A type-A ``first_kernel`` layer, then ``layers - 1`` residual type-B ``kernel`` layers."""

    def __init__(
        self,
        in_features: int,
        features: int,
        channels: int,
        layers: int,
        kernel: int,
        first_kernel: int,
        condition_features: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.features = features
        self.layers = nn.ModuleList(
            PlainLayer(
                in_features if l == 0 else features,
                features,
                channels,
                first_kernel if l == 0 else kernel,
                l == 0,
                condition_features,
                dropout,
            )
            for l in range(layers)
        )

    @property
    def typed_layers(self) -> Sequence[PlainLayer]:
        """``self.layers`` with its element type (``__init__`` fills it with PlainLayer only)."""
        return cast(Sequence[PlainLayer], self.layers)

    def forward(self, e: Tensor, y: Tensor | None = None) -> Tensor:
        h = e
        for layer in self.layers:
            h = layer(h, y)
        return h

    def start(self, e: Tensor, y: Tensor | None = None) -> PlainCache:
        n, _, height, width = e.shape
        hs = [e] + [e.new_zeros(n, self.features, height, width) for _ in self.layers]
        return PlainCache(
            h=hs,
            a=[e] + [torch.zeros_like(t) for t in hs[1:]],
            y=[project(layer.condition, y) for layer in self.typed_layers],
        )

    def step(self, cache: PlainCache, i: int, j: int) -> Tensor:
        """All layers at pixel ``(i, j)`` from cached earlier pixels; ``(B, F, 1, 1)``."""
        out = cache.h[0][..., i : i + 1, j : j + 1]
        for l, layer in enumerate(self.typed_layers):
            conv_out = layer.conv.region(cache.a[l], i, i + 1, j, j + 1)
            out = layer.combine(conv_out, cache.h[l][..., i : i + 1, j : j + 1], at(cache.y[l], i, j))
            cache.h[l + 1][..., i : i + 1, j : j + 1] = out
            if l + 1 < len(self.layers):
                cache.a[l + 1][..., i : i + 1, j : j + 1] = self.typed_layers[l + 1].activate(out)
        return out

    def end_row(self, cache: PlainCache, i: int) -> None:
        """Nothing waits for a complete row in the plain stack."""


ARCHS: dict[str, type[GatedStack] | type[PlainStack]] = {"gated": GatedStack, "plain": PlainStack}
