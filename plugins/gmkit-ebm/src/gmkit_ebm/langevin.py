r"""Stochastic gradient Langevin dynamics (SGLD) on an energy, inside a box.

One step, for :math:`\xi \sim \mathcal N(0, I)`:

.. math:: x_{k+1} = \Pi_B\big(x_k - \epsilon \nabla_x E(x_k) + \sigma \xi_k\big),

where :math:`\Pi_B` clips to the box :math:`B = [\text{low}, \text{high}]`. With
:math:`\sigma = \sqrt{2\epsilon}` this is the unadjusted Langevin algorithm, whose
stationary law tends to :math:`p(x) \propto e^{-E(x)}` on :math:`B` as
:math:`\epsilon \to 0`; EBM practice often decouples :math:`\sigma` from
:math:`\epsilon` (a colder chain), see Du and Mordatch (2019, arXiv:1903.08689)
and Nijkamp et al. (2019, arXiv:1904.09770).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["Energy", "energy_grad", "langevin"]

#: ``energy(x) -> (B,)`` for ``x`` of shape ``(B, *shape)``.
Energy = Callable[[Tensor], Tensor]


def energy_grad(energy: Energy, x: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """``(E(x), grad_x sum E(x))``, shapes ``(B,)`` and ``x.shape``; gradients reach ``x`` only unless ``create_graph``."""
    with torch.enable_grad():
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        e = energy(x)
        (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
    return e, grad


def langevin(
    energy: Energy,
    x: Tensor,
    steps: int,
    step_size: float,
    noise: float | None = None,
    low: Tensor | float | None = None,
    high: Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Run ``steps`` SGLD steps from ``x`` ``(B, *shape)``; returns the detached end points.

    Arguments:
        energy: ``E(x) -> (B,)``.
        step_size: :math:`\epsilon`, the gradient step.
        noise: :math:`\sigma` (``None``: :math:`\sqrt{2\epsilon}`, the Langevin value).
        low, high: the box (broadcastable to ``x``), or ``None`` for no clipping.
        generator: the source of the noise (``None``: torch's global RNG).
    """
    sigma = math.sqrt(2 * step_size) if noise is None else noise
    x = x.detach()
    for _ in range(steps):
        _, grad = energy_grad(energy, x)
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x - step_size * grad + sigma * xi
        if low is not None and high is not None:
            x = torch.maximum(
                torch.minimum(x, torch.as_tensor(high, dtype=x.dtype, device=x.device)),
                torch.as_tensor(low, dtype=x.dtype, device=x.device),
            )
        x = x.detach()
    return x
