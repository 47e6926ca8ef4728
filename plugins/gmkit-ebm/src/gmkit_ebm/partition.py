r"""The normalising constant :math:`Z = \int_B e^{-E(x)}\,dx` of an energy on a box :math:`B`.

- :func:`grid_log_partition` (one or two dimensions): the midpoint rule on a
  grid of :math:`G^D` cells and again on :math:`(2G)^D` cells; the finer value
  is returned and the difference of the two is its error estimate (the
  midpoint rule's error falls as :math:`h^2`, so the finer grid's error is
  about a third of the difference for a smooth energy). Since the model's
  density lives on :math:`B`, nothing is lost outside the grid; the share of
  mass in the outermost ring of cells says whether :math:`B` cuts the learned
  density off.
- :func:`ais_log_partition` (any dimension): annealed importance sampling
  (Neal, 2001, arXiv:physics/9803008) along the geometric path
  :math:`\pi_\beta \propto e^{-\beta E}` on :math:`B` from the uniform base
  :math:`\pi_0 = U(B)` (:math:`Z_0 = \operatorname{vol} B`) to :math:`\beta = 1`,
  with Metropolis-adjusted Langevin (MALA) transitions that leave each
  :math:`\pi_\beta` invariant (a proposal outside :math:`B` is rejected), so the
  weights are valid. :math:`\hat Z = Z_0 \frac1n \sum_i w_i` is unbiased for
  :math:`Z`; :math:`\log\hat Z` is biased low in expectation (Jensen), with the
  delta-method standard error :math:`\mathrm{sd}(w)/(\sqrt n\,\bar w)`.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor

from .langevin import Energy, energy_grad

__all__ = ["GridResult", "AISResult", "grid_log_partition", "ais_log_partition", "sigmoid_schedule"]


@attrs.frozen
class GridResult:
    """``log_z`` (finer grid), ``error`` = |fine - coarse|, ``points`` per axis and ``cell`` sizes of the finer grid."""

    log_z: float
    log_z_coarse: float
    error: float
    points: int
    cell: tuple[float, ...]
    boundary_mass: float


@attrs.frozen
class AISResult:
    """``log_z`` with its standard error over ``chains``, the mean MALA acceptance and the log-weights ``(chains,)``."""

    log_z: float
    stderr: float
    acceptance: float
    chains: int
    steps: int
    log_weights: Tensor


def _midpoint(
    energy: Energy, low: Tensor, high: Tensor, points: int, chunk: int
) -> tuple[float, float, tuple[float, ...]]:
    """Midpoint rule on ``points`` cells per axis: ``(log Z, mass share of the outer ring, cell sizes)``."""
    d = low.numel()
    cell = (high - low) / points  # (D,)
    axes = [low[i] + cell[i] * (torch.arange(points, dtype=low.dtype, device=low.device) + 0.5) for i in range(d)]
    grid = torch.cartesian_prod(*axes).reshape(-1, d) if d > 1 else axes[0].reshape(-1, 1)  # (G^D, D)
    with torch.no_grad():
        neg = torch.cat([-energy(grid[i : i + chunk]).double() for i in range(0, len(grid), chunk)])
    log_cell = float(torch.log(cell.double()).sum())
    log_z = float(torch.logsumexp(neg, 0)) + log_cell
    index = torch.stack(torch.meshgrid(*[torch.arange(points)] * d, indexing="ij"), -1).reshape(-1, d)
    outer = ((index == 0) | (index == points - 1)).any(1).to(neg.device)
    share = float(torch.exp(torch.logsumexp(neg[outer], 0) - torch.logsumexp(neg, 0))) if bool(outer.any()) else 0.0
    return log_z, share, tuple(float(c) for c in cell)


def grid_log_partition(energy: Energy, low: Tensor, high: Tensor, points: int = 256, chunk: int = 65536) -> GridResult:
    r""":math:`\log\int_B e^{-E}` by the midpoint rule on ``2 * points`` cells per axis, checked against ``points``.

    ``low``, ``high``: ``(D,)`` with ``D`` in {1, 2}; ``energy`` maps ``(N, D) -> (N,)``.
    """
    if low.numel() > 2:
        raise ValueError(f"grid integration is for 1 or 2 dimensions, got {low.numel()}")
    coarse, _, _ = _midpoint(energy, low, high, points, chunk)
    fine, share, cell = _midpoint(energy, low, high, 2 * points, chunk)
    return GridResult(fine, coarse, abs(fine - coarse), 2 * points, cell, share)


def sigmoid_schedule(steps: int, sharpness: float = 4.0) -> Tensor:
    r"""``steps + 1`` inverse temperatures from 0 to 1 along a rescaled sigmoid (float64).

    :math:`\beta_t = (s(\delta(2t/T - 1)) - s(-\delta)) / (s(\delta) - s(-\delta))`, finer near both ends
    (Grosse et al., 2015, arXiv:1511.02543).
    """
    t = torch.linspace(-sharpness, sharpness, steps + 1, dtype=torch.float64)
    s = torch.sigmoid(t)
    return (s - s[0]) / (s[-1] - s[0])


def ais_log_partition(
    energy: Energy,
    low: Tensor,
    high: Tensor,
    shape: tuple[int, ...],
    chains: int = 64,
    steps: int = 500,
    step_size: float = 1e-3,
    max_scale: float = 100.0,
    generator: torch.Generator | None = None,
) -> AISResult:
    r"""AIS estimate of :math:`\log\int_B e^{-E(x)}dx`; ``low``/``high`` broadcast to ``shape``.

    At inverse temperature :math:`\beta_t` the MALA step is
    :math:`\epsilon_t = \epsilon\,\min(1/\beta_t, \text{max\_scale})`: a fixed schedule, so every
    transition keeps :math:`\pi_{\beta_t}` invariant and the weights stay valid.

    Arguments:
        energy: ``E(x) -> (N,)`` for ``x`` ``(N, *shape)``.
        chains: independent AIS runs :math:`n`; steps: temperatures :math:`T`.
        generator: the source of every random draw (``None``: torch's global RNG).
    """
    dtype = low.dtype
    low = low.expand(shape).to(dtype)
    high = high.expand(shape).to(dtype)
    width = high - low
    log_z0 = float(torch.log(width.double()).sum())
    betas = sigmoid_schedule(steps)
    x = low + width * torch.rand((chains, *shape), generator=generator, device=low.device, dtype=dtype)
    log_w = torch.zeros(chains, dtype=torch.float64, device=low.device)
    dims = tuple(range(1, x.ndim))
    e, grad = energy_grad(energy, x)
    accepted = 0.0
    for t in range(1, steps + 1):
        beta, previous = float(betas[t]), float(betas[t - 1])
        log_w -= (beta - previous) * e.detach().double()
        eps = step_size * min(1.0 / beta, max_scale)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=dtype)
        proposal = (x - eps * beta * grad + math.sqrt(2 * eps) * noise).detach()
        inside = ((proposal >= low) & (proposal <= high)).flatten(1).all(1)
        e_new, grad_new = energy_grad(energy, proposal.clamp(min=low, max=high))
        forward = -((proposal - x + eps * beta * grad) ** 2).sum(dims) / (4 * eps)
        backward = -((x - proposal + eps * beta * grad_new) ** 2).sum(dims) / (4 * eps)
        log_ratio = -beta * (e_new - e).detach() + backward - forward
        u = torch.rand(chains, generator=generator, device=x.device, dtype=dtype)
        accept = inside & (torch.log(u) < log_ratio)
        view = accept.reshape(-1, *([1] * (x.ndim - 1)))
        x = torch.where(view, proposal, x).detach()
        e = torch.where(accept, e_new, e).detach()
        grad = torch.where(view, grad_new, grad).detach()
        accepted += float(accept.double().mean())
    n = chains
    log_mean = float(torch.logsumexp(log_w, 0)) - math.log(n)
    w = torch.exp(log_w - log_w.max())
    stderr = float(w.std(unbiased=True) / (w.mean() * math.sqrt(n))) if n > 1 else math.inf
    return AISResult(log_z0 + log_mean, stderr, accepted / steps, chains, steps, log_w)
