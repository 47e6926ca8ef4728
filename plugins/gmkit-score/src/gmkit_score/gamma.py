r"""Noise schedules of VDM as :math:`\gamma(t) = -\lambda(t)`, the negative log-SNR, increasing in ``t``.

- :class:`LinearGamma`: :math:`\gamma(t) = \gamma_0 + (\gamma_1 - \gamma_0)t`, fixed.
- :class:`LearnedGamma` (Kingma et al., 2021, arXiv:2107.00630, appendix H.1): a monotone network
  :math:`\tilde\gamma(t) = l_1(t) + l_3(\phi(l_2(l_1(t))))` with :math:`\phi` the sigmoid and every
  weight of :math:`l_1, l_2, l_3` positive (a softplus of a free parameter), so
  :math:`\tilde\gamma` is strictly increasing; then

  .. math:: \gamma(t) = \gamma_0 + (\gamma_1 - \gamma_0)\,\frac{\tilde\gamma(t) - \tilde\gamma(0)}{\tilde\gamma(1) - \tilde\gamma(0)},
     \qquad \gamma_1 = \gamma_0 + \mathrm{softplus}(\Delta) > \gamma_0,

  with the end points :math:`\gamma_0, \gamma_1` learned. Only the end points change the
  continuous-time bound; the shape in between changes its variance.

``forward(t) -> (gamma, shape)`` with ``shape`` :math:`\in [0, 1]` the normalised part, so a
caller can send the bound's gradient to the end points and the variance's to the shape.
Shapes: ``t`` ``(B,)`` -> ``(B,)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LinearGamma", "LearnedGamma", "derivative"]


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class _Gamma(nn.Module):
    """``gamma(t) = gamma_0 + (gamma_1 - gamma_0) shape(t)``; subclasses give ``ends`` and ``shape``."""

    def ends(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def shape(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, t: Tensor) -> Tensor:
        g0, g1 = self.ends()
        return g0 + (g1 - g0) * self.shape(t)


class LinearGamma(_Gamma):
    r""":math:`\gamma(t) = \gamma_0 + (\gamma_1 - \gamma_0)t` with fixed end points."""

    def __init__(self, gamma_min: float = -13.3, gamma_max: float = 5.0):
        super().__init__()
        self.gamma_0: Tensor
        self.gamma_1: Tensor
        self.register_buffer("gamma_0", torch.tensor(float(gamma_min)))
        self.register_buffer("gamma_1", torch.tensor(float(gamma_max)))

    def ends(self) -> tuple[Tensor, Tensor]:
        return self.gamma_0, self.gamma_1

    def shape(self, t: Tensor) -> Tensor:
        return t


class LearnedGamma(_Gamma):
    """The monotone network of VDM (``hidden`` sigmoid units) between learned end points."""

    def __init__(self, gamma_min: float = -13.3, gamma_max: float = 5.0, hidden: int = 1024):
        super().__init__()
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_min)))
        self.gap = nn.Parameter(torch.tensor(_softplus_inverse(float(gamma_max - gamma_min))))
        self.w1 = nn.Parameter(torch.tensor(_softplus_inverse(1.0)))
        self.b1 = nn.Parameter(torch.zeros(()))
        self.w2 = nn.Parameter(torch.randn(hidden) * 0.5)
        self.b2 = nn.Parameter(torch.randn(hidden) * 0.5)
        self.w3 = nn.Parameter(torch.full((hidden,), -5.0))

    def ends(self) -> tuple[Tensor, Tensor]:
        return self.gamma_0, self.gamma_0 + F.softplus(self.gap)

    def raw(self, t: Tensor) -> Tensor:
        r""":math:`\tilde\gamma(t)`, strictly increasing."""
        h = F.softplus(self.w1) * t + self.b1  # (B,)
        hidden = torch.sigmoid(h[:, None] * F.softplus(self.w2) + self.b2)  # (B, hidden)
        return h + (hidden * F.softplus(self.w3)).sum(1)

    def shape(self, t: Tensor) -> Tensor:
        ends = self.raw(torch.tensor([0.0, 1.0], dtype=t.dtype, device=t.device))
        return (self.raw(t) - ends[0]) / (ends[1] - ends[0])


def derivative(f: nn.Module | object, t: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    r"""``(f(t), f'(t))`` of an elementwise function by autograd (``create_graph`` to train through it)."""
    with torch.enable_grad():
        tt = t.detach().clone().requires_grad_(True)
        y = f(tt)  # type: ignore[operator]
        (dy,) = torch.autograd.grad(y.sum(), tt, create_graph=create_graph)
    return y, dy
