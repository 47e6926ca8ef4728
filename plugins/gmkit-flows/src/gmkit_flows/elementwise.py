r"""Monotone elementwise maps :math:`y = g(x; \theta)`, the one piece that
distinguishes NICE, RealNVP/MAF and neural spline layers.

Coupling and autoregressive layers (:mod:`gmkit_flows.coupling`,
:mod:`gmkit_flows.autoregressive`) are parameterised by one of these: the layer
computes :math:`\theta` per dimension, the map does the rest. Each map has
``params`` (the size ``P`` of :math:`\theta` per dimension) and

- ``forward(x, theta) -> (y, log g'(x))`` with ``x`` of shape ``(*)``, ``theta`` ``(*, P)``;
- ``inverse(y, theta) -> (x, log (g^{-1})'(y))``, the exact inverse.

Zero parameters give the identity, so zero-initialised conditioners start
every layer at the identity.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from gmkit_core.errors import ConfigError

__all__ = ["Elementwise", "Additive", "Affine", "RationalQuadraticSpline", "ELEMENTWISE", "make_elementwise"]


class Elementwise(ABC):
    """A family of strictly increasing scalar maps ``g(.; theta)``, ``theta`` of size ``params``."""

    params: int

    @abstractmethod
    def forward(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]: ...

    @abstractmethod
    def inverse(self, y: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]: ...


class Additive(Elementwise):
    r""":math:`g(x) = x + t`, :math:`\theta = (t)`; volume preserving (NICE, Dinh et al., 2014, arXiv:1410.8516)."""

    params = 1

    def forward(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        return x + theta[..., 0], torch.zeros_like(x)

    def inverse(self, y: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        return y - theta[..., 0], torch.zeros_like(y)


class Affine(Elementwise):
    r""":math:`g(x) = x e^{s} + t`, :math:`\theta = (t, \tilde s)`, :math:`s = c \tanh(\tilde s / c)`.

    The soft clamp ``c`` (``clamp``) bounds the log-scale to ``(-c, c)``, which keeps
    deep stacks stable; :math:`\log g'(x) = s`. RealNVP (Dinh et al., 2016,
    arXiv:1605.08803), MAF (Papamakarios et al., 2017, arXiv:1705.07057).
    """

    params = 2

    def __init__(self, clamp: float = 3.0):
        self.clamp = clamp

    def _scale(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        return theta[..., 0], self.clamp * torch.tanh(theta[..., 1] / self.clamp)

    def forward(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        t, s = self._scale(theta)
        return x * torch.exp(s) + t, s

    def inverse(self, y: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        t, s = self._scale(theta)
        return (y - t) * torch.exp(-s), -s


class RationalQuadraticSpline(Elementwise):
    r"""Monotone rational-quadratic spline on :math:`[-B, B]`, identity outside.

    :math:`\theta` holds ``K`` unnormalised widths, ``K`` heights and ``K-1``
    interior derivatives (``P = 3K - 1``). Widths and heights go through a
    softmax (with a floor ``min_bin``) and are scaled to :math:`2B`, giving knots
    :math:`(x^k, y^k)_{k=0..K}` from :math:`(-B,-B)` to :math:`(B, B)`; derivatives
    :math:`\delta_k` are ``min_derivative + softplus`` (the end ones are 1, so the
    map is :math:`C^1` with the identity tails). In bin ``k``, with
    :math:`s_k = (y^{k+1}-y^k)/(x^{k+1}-x^k)` and :math:`\xi = (x - x^k)/(x^{k+1}-x^k)`,

    .. math::
        g(x) = y^k + \frac{(y^{k+1}-y^k)\,[s_k \xi^2 + \delta_k \xi(1-\xi)]}
                         {s_k + (\delta_{k+1} + \delta_k - 2 s_k)\,\xi(1-\xi)},\qquad
        g'(x) = \frac{s_k^2\,[\delta_{k+1}\xi^2 + 2 s_k \xi(1-\xi) + \delta_k (1-\xi)^2]}
                     {[s_k + (\delta_{k+1} + \delta_k - 2 s_k)\,\xi(1-\xi)]^2}.

    The inverse solves the quadratic in :math:`\xi` in its stable root form.
    Zero parameters give equal bins and unit derivatives: the identity.

    Reference: Durkan et al., Neural Spline Flows (2019, arXiv:1906.04032), eqs. 4-8.
    """

    def __init__(self, bins: int = 8, bound: float = 5.0, min_bin: float = 1e-3, min_derivative: float = 1e-3):
        self.bins, self.bound, self.min_bin, self.min_derivative = bins, bound, min_bin, min_derivative
        self.params = 3 * bins - 1
        # softplus(c) = 1 - min_derivative, so raw derivative 0 maps to 1.
        self._shift = math.log(math.expm1(1.0 - min_derivative))

    def _knots(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        K, B = self.bins, self.bound
        w, h, d = theta[..., :K], theta[..., K : 2 * K], theta[..., 2 * K :]

        def edges(raw: Tensor) -> Tensor:
            p = self.min_bin + (1 - self.min_bin * K) * torch.softmax(raw, dim=-1)
            cum = F.pad(torch.cumsum(p, dim=-1), (1, 0))
            return (2 * cum - 1) * B  # (*, K+1), from -B to B (up to rounding)

        xk, yk = edges(w), edges(h)
        xk = torch.cat([torch.full_like(xk[..., :1], -B), xk[..., 1:-1], torch.full_like(xk[..., :1], B)], -1)
        yk = torch.cat([torch.full_like(yk[..., :1], -B), yk[..., 1:-1], torch.full_like(yk[..., :1], B)], -1)
        inner = self.min_derivative + F.softplus(d + self._shift)
        ones = torch.ones_like(inner[..., :1])
        return xk, yk, torch.cat([ones, inner, ones], -1)  # (*, K+1) each

    @staticmethod
    def _bin(knots: Tensor, v: Tensor) -> Tensor:
        idx = torch.searchsorted(knots[..., 1:-1].contiguous(), v.unsqueeze(-1).contiguous(), right=True)
        return idx  # (*, 1) in [0, K-1]

    def _gather(self, xk: Tensor, yk: Tensor, dk: Tensor, k: Tensor) -> tuple[Tensor, ...]:
        def at(t: Tensor, i: Tensor) -> Tensor:
            return t.gather(-1, i).squeeze(-1)

        x0, x1, y0, y1 = at(xk, k), at(xk, k + 1), at(yk, k), at(yk, k + 1)
        return x0, x1 - x0, y0, y1 - y0, at(dk, k), at(dk, k + 1)

    def forward(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        inside = (x > -self.bound) & (x < self.bound)
        xc = x.clamp(-self.bound, self.bound)
        xk, yk, dk = self._knots(theta)
        x0, w, y0, h, d0, d1 = self._gather(xk, yk, dk, self._bin(xk, xc))
        s = h / w
        xi = ((xc - x0) / w).clamp(0, 1)
        t = xi * (1 - xi)
        den = s + (d1 + d0 - 2 * s) * t
        y = y0 + h * (s * xi.square() + d0 * t) / den
        dlog = 2 * torch.log(s) + torch.log(d1 * xi.square() + 2 * s * t + d0 * (1 - xi).square()) - 2 * torch.log(den)
        return torch.where(inside, y, x), torch.where(inside, dlog, torch.zeros_like(dlog))

    def inverse(self, y: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        inside = (y > -self.bound) & (y < self.bound)
        yc = y.clamp(-self.bound, self.bound)
        xk, yk, dk = self._knots(theta)
        x0, w, y0, h, d0, d1 = self._gather(xk, yk, dk, self._bin(yk, yc))
        s = h / w
        dy = yc - y0
        c2 = d1 + d0 - 2 * s
        a = h * (s - d0) + dy * c2
        b = h * d0 - dy * c2
        c = -s * dy
        disc = (b.square() - 4 * a * c).clamp_min(0)
        xi = (2 * c / (-b - torch.sqrt(disc))).clamp(0, 1)
        x = x0 + xi * w
        t = xi * (1 - xi)
        den = s + c2 * t
        dlog = 2 * torch.log(s) + torch.log(d1 * xi.square() + 2 * s * t + d0 * (1 - xi).square()) - 2 * torch.log(den)
        return torch.where(inside, x, y), torch.where(inside, -dlog, torch.zeros_like(dlog))


ELEMENTWISE = ("additive", "affine", "spline")


def make_elementwise(kind: str, bins: int = 8, bound: float = 5.0, clamp: float = 3.0) -> Elementwise:
    """The map named ``kind`` (one of :data:`ELEMENTWISE`) with its options."""
    if kind == "additive":
        return Additive()
    if kind == "affine":
        return Affine(clamp)
    if kind == "spline":
        return RationalQuadraticSpline(bins=bins, bound=bound)
    raise ConfigError(f"elementwise map must be one of {', '.join(ELEMENTWISE)}, got '{kind}'")
