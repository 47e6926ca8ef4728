r"""Log-density by the probability-flow ODE, for every continuous-time model of this plugin.

A velocity field :math:`v(x, t)` on :math:`t \in [t_0, t_1]` with a fixed, normalised density
:math:`p_1` at :math:`t_1` defines a continuous normalising flow; by the instantaneous change of
variables (Chen et al., 2018, arXiv:1806.07366, theorem 1; Song et al., 2021, arXiv:2011.13456, eq. 39)

.. math:: \log p_{t_0}(x_{t_0}) = \log p_1(x_{t_1}) + \int_{t_0}^{t_1} \nabla\cdot v(x_t, t)\,dt,
   \qquad \dot x_t = v(x_t, t),

solved forwards from the data at :math:`t_0` together with the running integral. This is a
valid normalised density for *any* :math:`v` and :math:`p_1` (the flow is a bijection), so
the bound below does not rely on the network being a good score.

- ``divergence="exact"``: :math:`\nabla\cdot v = \sum_i \partial v_i/\partial x_i`, the diagonal of
  the Jacobian from vector-Jacobian products with the basis vectors :math:`e_i`, ``chunk``
  of them in one batched backward pass (``is_grads_batched``, i.e. ``vmap`` over the cotangents);
  it costs about as much as ``D`` backward passes, so it dominates the price of the solve;
- ``divergence="hutchinson"``: :math:`\epsilon^\top (\partial v/\partial x)\,\epsilon` with one
  Rademacher probe :math:`\epsilon` held fixed along the solve (Grathwohl et al., 2019,
  arXiv:1810.01367): unbiased for the log-density, but its exponential is not, so the result
  is an **estimate**, neither exact nor a bound.

Solvers (no external ODE library): ``rk4``, fixed-step classical Runge-Kutta (``steps`` steps,
4 evaluations each), and ``rk45``, adaptive Dormand-Prince 5(4) with tolerances ``rtol``,
``atol`` (Dormand & Prince, 1980). :class:`ODEResult` reports the evaluations used.

**Warped time.** The solve runs in :math:`s \in [0, 1]` with :math:`t(s) = t_0 + (t_1 - t_0)s^p`
(``warp`` :math:`= p \ge 1`), :math:`dx/ds = v(x, t(s))\,t'(s)`, so uniform steps in :math:`s`
crowd near the data end, where the velocity of sharply concentrated data changes fastest
(:math:`p = 1`: plain time). The solution is the same; only the discretisation error changes.

**Divergence at quadrature nodes** (``nodes = K > 0``). The state :math:`x_t` does not depend on the
running integral, so the trajectory can be solved with velocity evaluations alone (no gradient)
and the integral taken afterwards by Gauss-Legendre quadrature in :math:`s`,

.. math:: \int_{t_0}^{t_1}\nabla\cdot v\,dt = \int_0^1 \nabla\cdot v(x_{t(s)}, t(s))\,t'(s)\,ds
   \approx \sum_{k=1}^K w_k\,\nabla\cdot v(x_{t(s_k)}, t(s_k))\,t'(s_k),

with the trajectory solved segment by segment through the nodes. The divergence is then
evaluated ``K`` times instead of at every solver stage (``4 steps`` for RK4), which is what
makes the exact divergence affordable on images; the quadrature error adds to the solver's
(exact for integrands polynomial of degree :math:`2K - 1` in :math:`s`).

Shapes: ``x`` ``(B, *shape)``; the velocity returns the same shape; log-densities ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

__all__ = ["ODEResult", "divergence_exact", "divergence_hutchinson", "gauss_legendre", "integrate", "log_density"]

Velocity = Callable[[Tensor, Tensor], Tensor]

# Dormand-Prince 5(4) tableau: nodes c, stages a, 5th-order weights b5, 4th-order weights b4.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


@attrs.frozen
class ODEResult:
    """``log_density`` (``(B,)`` nats, log p at t0), ``nfe`` (velocity evaluations), ``steps`` taken, and
    ``divergence_evaluations`` (how many of the evaluations also took the divergence)."""

    log_density: Tensor
    nfe: int
    steps: int
    divergence_evaluations: int


def divergence_exact(v: Tensor, x: Tensor, chunk: int | None = None) -> Tensor:
    r""":math:`\sum_i \partial v_i / \partial x_i` of ``v = f(x)`` (graph kept), ``(B,)``.

    Row :math:`i` of the Jacobian is the vector-Jacobian product with :math:`e_i`; ``chunk`` basis
    vectors (default: all ``D``) go through one batched backward pass, and only the diagonal
    entries :math:`(e_i^\top J)_i` are kept.
    """
    B, D = x.shape[0], x[0].numel()
    chunk = D if chunk is None else max(1, min(chunk, D))
    total = torch.zeros(B, dtype=v.dtype, device=v.device)
    for start in range(0, D, chunk):
        idx = torch.arange(start, min(start + chunk, D), device=v.device)
        n = len(idx)
        basis = torch.zeros(n, D, dtype=v.dtype, device=v.device)
        basis[torch.arange(n, device=v.device), idx] = 1.0
        cotangents = basis.reshape(n, 1, *x.shape[1:]).expand(n, *x.shape)
        try:
            (rows,) = torch.autograd.grad(v, x, cotangents, is_grads_batched=True, retain_graph=True)  # (n, B, *shape)
        except RuntimeError:  # an op without a batching rule: one backward pass per basis vector
            rows = torch.stack([torch.autograd.grad(v, x, c, retain_graph=True)[0] for c in cotangents])
        total = total + rows.reshape(n, B, D)[torch.arange(n, device=v.device), :, idx].sum(0)
    return total


def divergence_hutchinson(v: Tensor, x: Tensor, probe: Tensor) -> Tensor:
    r""":math:`\epsilon^\top J\epsilon` with ``probe`` :math:`\epsilon` (``x``'s shape), ``(B,)``."""
    (g,) = torch.autograd.grad(v, x, probe, retain_graph=True)
    return (g * probe).flatten(1).sum(1)


def _divergence(
    velocity: Velocity, divergence: str, probe: Tensor | None, chunk: int | None, x: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """``(v, div v)`` at ``(x, t)``, both detached."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        div = divergence_exact(v, x, chunk) if probe is None else divergence_hutchinson(v, x, probe)
    return v.detach(), div.detach()


def gauss_legendre(n: int, a: float = 0.0, b: float = 1.0) -> tuple[list[float], list[float]]:
    r"""Nodes and weights of ``n``-point Gauss-Legendre quadrature on ``[a, b]`` (exact for degree ``2n - 1``).

    Golub & Welsch (1969): the nodes on ``[-1, 1]`` are the eigenvalues of the Jacobi matrix of the
    Legendre recurrence (off-diagonal :math:`k / \sqrt{4k^2 - 1}`), the weights :math:`2 q_{0}^2` from
    the first components of its unit eigenvectors.
    """
    k = torch.arange(1, n, dtype=torch.float64)
    jacobi = torch.diag(k / (4 * k.square() - 1).sqrt(), 1)
    nodes, vectors = torch.linalg.eigh(jacobi + jacobi.T)
    weights = 2 * vectors[0].square()
    half = (b - a) / 2
    return [a + half * (float(z) + 1) for z in nodes], [half * float(w) for w in weights]


def integrate(
    f: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    x: Tensor,
    t0: float,
    t1: float,
    method: str = "rk4",
    steps: int = 50,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 10_000,
) -> tuple[Tensor, Tensor, int, int]:
    r"""Solve :math:`\dot x = f_x(x, t)`, :math:`\dot\ell = f_\ell(x, t)` from ``t0`` to ``t1`` with :math:`\ell(t_0) = 0`.

    ``f(x, t) -> (dx, dl)`` with ``t`` a ``(B,)`` tensor. Returns ``(x(t1), l(t1), nfe, steps)``.
    ``rk45`` controls the error per step (max over the batch of the RMS error scaled by
    ``atol + rtol |y|``) with the usual step-size rule (safety 0.9, factors in [0.2, 5]).
    """
    ell = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def call(y: tuple[Tensor, Tensor], t: float) -> tuple[Tensor, Tensor]:
        return f(y[0], torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))

    def axpy(
        y: tuple[Tensor, Tensor], h: float, ks: list[tuple[Tensor, Tensor]], ws: tuple[float, ...]
    ) -> tuple[Tensor, Tensor]:
        dx = sum((w * k[0] for w, k in zip(ws, ks, strict=False) if w), torch.zeros_like(y[0]))
        dl = sum((w * k[1] for w, k in zip(ws, ks, strict=False) if w), torch.zeros_like(y[1]))
        return y[0] + h * dx, y[1] + h * dl

    y, nfe, taken = (x, ell), 0, 0
    if method == "rk4":
        h = (t1 - t0) / steps
        for i in range(steps):
            t = t0 + i * h
            k1 = call(y, t)
            k2 = call(axpy(y, h / 2, [k1], (1.0,)), t + h / 2)
            k3 = call(axpy(y, h / 2, [k2], (1.0,)), t + h / 2)
            k4 = call(axpy(y, h, [k3], (1.0,)), t + h)
            y = axpy(y, h, [k1, k2, k3, k4], (1 / 6, 1 / 3, 1 / 3, 1 / 6))
        return y[0], y[1], 4 * steps, steps
    if method != "rk45":
        raise ValueError(f"unknown ODE method '{method}'; methods: rk4, rk45")
    t, h = t0, (t1 - t0) / 20
    k_first = call(y, t)
    nfe += 1
    while t < t1 - 1e-12:
        if taken >= max_steps:
            raise RuntimeError(f"rk45: more than {max_steps} steps; loosen rtol/atol")
        h = min(h, t1 - t)
        ks = [k_first]
        for c, a in zip(_C[1:], _A[1:], strict=True):
            ks.append(call(axpy(y, h, ks, a), t + c * h))
        nfe += 6
        y5 = axpy(y, h, ks, _B5)
        y4 = axpy(y, h, ks, _B4)
        err = torch.cat([(y5[0] - y4[0]).flatten(1), (y5[1] - y4[1])[:, None]], 1)
        scale = atol + rtol * torch.maximum(
            torch.cat([y[0].flatten(1), y[1][:, None]], 1).abs(), torch.cat([y5[0].flatten(1), y5[1][:, None]], 1).abs()
        )
        ratio = float((err / scale).square().mean(1).sqrt().max())
        if ratio <= 1.0:
            t, y, k_first, taken = t + h, y5, ks[-1], taken + 1  # FSAL: the last stage is f at the new point
        h = h * min(5.0, max(0.2, 0.9 * (ratio + 1e-12) ** -0.2))
    return y[0], y[1], nfe, taken


def log_density(
    velocity: Velocity,
    x: Tensor,
    t0: float,
    t1: float,
    prior_log_prob: Callable[[Tensor], Tensor],
    divergence: str = "exact",
    method: str = "rk4",
    steps: int = 50,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
    warp: float = 1.0,
    nodes: int = 0,
    chunk: int | None = None,
) -> ODEResult:
    r""":math:`\log p_{t_0}(x)` of the flow :math:`\dot x = v(x, t)` with :math:`p_{t_1}` = ``prior_log_prob``.

    ``warp`` :math:`p`: solve in :math:`s` with :math:`t = t_0 + (t_1 - t_0)s^p`; ``nodes`` ``K > 0``: the
    divergence integral by ``K``-point Gauss-Legendre quadrature in :math:`s` on the solved trajectory
    (``K = 0``: the divergence is integrated with the state by the solver). See the module docstring.
    """
    probe = None
    if divergence == "hutchinson":
        probe = torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
    elif divergence != "exact":
        raise ValueError(f"unknown divergence '{divergence}'; exact or hutchinson")
    if warp < 1.0:
        raise ValueError(f"warp must be >= 1, got {warp}")

    def time(s: Tensor) -> tuple[Tensor, Tensor]:
        """``t(s)`` and ``t'(s)``."""
        return t0 + (t1 - t0) * s.pow(warp), (t1 - t0) * warp * s.pow(warp - 1)

    def coupled(z: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        t, dt = time(s)
        v, div = _divergence(velocity, divergence, probe, chunk, z, t)
        return v * dt.reshape(-1, *([1] * (z.dim() - 1))), div * dt

    def state_only(z: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        t, dt = time(s)
        with torch.no_grad():
            v = velocity(z, t)
        return v * dt.reshape(-1, *([1] * (z.dim() - 1))), torch.zeros_like(dt)

    if nodes <= 0:
        x1, integral, nfe, taken = integrate(coupled, x, 0.0, 1.0, method, steps, rtol, atol)
        return ODEResult(prior_log_prob(x1) + integral, nfe, taken, nfe)
    s_nodes, weights = gauss_legendre(nodes)
    integral = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    z, s_prev, nfe, taken = x, 0.0, 0, 0
    for s_k, w_k in zip([*s_nodes, 1.0], [*weights, 0.0], strict=True):
        if s_k > s_prev:
            seg_steps = max(1, round(steps * (s_k - s_prev)))
            z, _, seg_nfe, seg_taken = integrate(state_only, z, s_prev, s_k, method, seg_steps, rtol, atol)
            nfe, taken, s_prev = nfe + seg_nfe, taken + seg_taken, s_k
        if w_k:
            s = torch.full((x.shape[0],), s_k, dtype=x.dtype, device=x.device)
            div = _divergence(velocity, divergence, probe, chunk, z, time(s)[0])[1]
            integral = integral + w_k * div * time(s)[1]
            nfe += 1
    return ODEResult(prior_log_prob(z) + integral, nfe, taken, nodes)
