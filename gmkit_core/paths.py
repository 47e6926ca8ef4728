r"""The continuous-time view of a Gaussian diffusion, shared by every diffusion-like family.

A **Gaussian path** is the family of marginals

.. math:: x_t = \alpha(t)\,x_0 + \sigma(t)\,\epsilon, \qquad \epsilon \sim \mathcal N(0, I),\ t \in [0, 1],

with log signal-to-noise ratio :math:`\lambda(t) = \log(\alpha^2/\sigma^2)`, decreasing in ``t``
(``t = 0`` data, ``t = 1`` noise). DDPM (a discrete schedule read in continuous time),
VDM (Kingma et al., 2021, arXiv:2107.00630), score SDEs (Song et al., 2021, arXiv:2011.13456)
and flow matching (Lipman et al., 2023, arXiv:2210.02747; Liu et al., 2023, arXiv:2209.03003)
are all such paths; they differ in :math:`(\alpha, \sigma)` and in how they train the denoiser.

A **denoiser** is a model that exposes ``path()`` and
``denoise(x_t, t, condition=None, guidance=None) -> x0_hat`` (its estimate of
:math:`E[x_0 \mid x_t]`); the shared samplers of :mod:`gmkit_core.solvers` need nothing else
(plus ``decode`` and ``sampling_labels``, see :class:`Denoiser`).

The probability-flow ODE of the path has the velocity (the conditional velocity
:math:`\dot\alpha x_0 + \dot\sigma\epsilon` averaged over :math:`x_0 \mid x_t`, with
:math:`\epsilon = (x_t - \alpha x_0)/\sigma`):

.. math:: v(x, t) = \frac{\dot\sigma}{\sigma}\,x + \Big(\dot\alpha - \alpha\frac{\dot\sigma}{\sigma}\Big)\hat x_0(x, t)
   \qquad (:func:`ode_velocity`)

which for the VP SDE equals :math:`f(t)x - \tfrac12 g(t)^2 \nabla\log p_t(x)` (Song et al., eq. 13).
Shapes: ``t`` is ``(B,)`` float in ``[0, 1]``; ``x`` is ``(B, *shape)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .data import DataSpec

__all__ = ["GaussianPath", "LogSNRPath", "LinearPath", "Denoiser", "ode_velocity", "broadcast", "eps_from_x0"]


def broadcast(v: Tensor, like: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, ..., 1)`` to broadcast on ``like``, in its dtype and device."""
    return v.to(like).reshape(-1, *([1] * (like.ndim - 1)))


class GaussianPath(ABC):
    r"""The protocol of a Gaussian path :math:`x_t = \alpha(t) x_0 + \sigma(t)\epsilon` (see the module docstring).

    Subclasses supply :meth:`alpha` and :meth:`sigma` (``(B,) -> (B,)``, differentiable in ``t``);
    the rest has defaults: :meth:`log_snr`, :meth:`derivatives` (by autograd, override with closed
    forms where cheap), :meth:`time_at` (the inverse of :math:`\lambda` by bisection), and the
    range ``[t_min, t_max]`` on which the path is defined with :math:`\sigma > 0` where it matters.
    """

    #: Smallest and largest time of the path (samplers and ODEs stay inside).
    t_min: float = 0.0
    t_max: float = 1.0

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor: ...

    def log_snr(self, t: Tensor) -> Tensor:
        r""":math:`\lambda(t) = 2\log\alpha(t) - 2\log\sigma(t)` (may be :math:`\pm\infty` at the ends)."""
        return 2 * (self.alpha(t).log() - self.sigma(t).log())

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r""":math:`(\alpha, \sigma, \dot\alpha, \dot\sigma)` at ``t`` (each ``(B,)``, no graph to the caller)."""
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            a, s = self.alpha(tt), self.sigma(tt)
            da, ds = (
                torch.autograd.grad(v.sum(), tt, retain_graph=True)[0] if v.requires_grad else torch.zeros_like(t)
                for v in (a, s)
            )
        return a.detach(), s.detach(), da, ds

    def time_at(self, log_snr: Tensor, iters: int = 60) -> Tensor:
        r"""The ``t`` with :math:`\lambda(t) =` ``log_snr`` (bisection on ``[t_min, t_max]``; :math:`\lambda` decreasing)."""
        lam = log_snr.detach().double()
        lo = torch.full_like(lam, self.t_min)
        hi = torch.full_like(lam, self.t_max)
        with torch.no_grad():
            for _ in range(iters):
                mid = (lo + hi) / 2
                above = self.log_snr(mid.to(torch.get_default_dtype())).double() > lam
                lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        return ((lo + hi) / 2).to(log_snr.dtype)


class LogSNRPath(GaussianPath):
    r"""A variance-preserving path given by its log-SNR: :math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`,
    :math:`\sigma^2 = \mathrm{sigmoid}(-\lambda)`, so :math:`\alpha^2 + \sigma^2 = 1`.

    ``log_snr``: a differentiable function ``(B,) -> (B,)``, decreasing in ``t`` (VDM's
    :math:`-\gamma(t)`, the VP SDE's, a DDPM schedule's interpolation).
    """

    def __init__(self, log_snr: Callable[[Tensor], Tensor], t_min: float = 0.0, t_max: float = 1.0):
        self._log_snr, self.t_min, self.t_max = log_snr, t_min, t_max

    def log_snr(self, t: Tensor) -> Tensor:
        return self._log_snr(t)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.sigmoid(self._log_snr(t)).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sigmoid(-self._log_snr(t)).sqrt()

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""With :math:`\dot\lambda` by autograd: :math:`\dot\alpha = \tfrac12\alpha\sigma^2\dot\lambda`,
        :math:`\dot\sigma = -\tfrac12\sigma\alpha^2\dot\lambda`."""
        with torch.enable_grad():
            tt = t.detach().clone().requires_grad_(True)
            lam = self._log_snr(tt)
            dlam = torch.autograd.grad(lam.sum(), tt, allow_unused=True, materialize_grads=True)[0]
        lam = lam.detach()
        a, s = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
        return a, s, 0.5 * a * s.square() * dlam, -0.5 * s * a.square() * dlam


class LinearPath(GaussianPath):
    r"""The linear (rectified-flow) path :math:`\alpha = 1 - t`, :math:`\sigma = t`; velocity
    :math:`\dot x_t = \epsilon - x_0` (Liu et al., 2023, arXiv:2209.03003; Lipman et al., 2023,
    arXiv:2210.02747 with :math:`\sigma_{\min} = 0`)."""

    def alpha(self, t: Tensor) -> Tensor:
        return 1 - t

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def log_snr(self, t: Tensor) -> Tensor:
        return 2 * (torch.log1p(-t) - torch.log(t))

    def derivatives(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return 1 - t, t, -torch.ones_like(t), torch.ones_like(t)

    def time_at(self, log_snr: Tensor, iters: int = 60) -> Tensor:
        r""":math:`t = \mathrm{sigmoid}(-\lambda/2)` in closed form."""
        return torch.sigmoid(-log_snr / 2)


@runtime_checkable
class Denoiser(Protocol):
    r"""What the shared samplers need of a model.

    - ``path() -> GaussianPath``;
    - ``denoise(x_t, t, condition=None, guidance=None) -> x0_hat`` of shape ``(B, *shape)`` in model
      space, ``t`` float ``(B,)``; with labels and a guidance scale ``s != 1`` it is classifier-free
      guided, :math:`\hat x_0^\varnothing + s(\hat x_0^y - \hat x_0^\varnothing)` (null label =
      ``num_classes``; ``None``: the model's configured scale);
    - ``decode(x0, generator=None, mode=False)``: model space -> data of the stored type
      (``mode=True``: deterministic, e.g. the nearest level);
    - ``sampling_labels(n, condition, generator)``: the labels to sample with (or ``None``);
    - ``data``: the :class:`~gmkit_core.data.DataSpec` (``data.shape`` is the sample shape).
    """

    data: DataSpec

    def path(self) -> GaussianPath: ...

    def denoise(
        self, x_t: Tensor, t: Tensor, condition: Tensor | None = None, guidance: float | None = None
    ) -> Tensor: ...

    def decode(self, x0: Tensor, generator: torch.Generator | None = None, mode: bool = False) -> Tensor: ...

    def sampling_labels(self, n: int, condition: Tensor | None, generator: torch.Generator | None) -> Tensor | None: ...


def ode_velocity(path: GaussianPath, x: Tensor, t: Tensor, x0_hat: Tensor) -> Tensor:
    r"""The probability-flow velocity :math:`\frac{\dot\sigma}{\sigma}x + (\dot\alpha - \alpha\frac{\dot\sigma}{\sigma})\hat x_0`."""
    a, s, da, ds = (broadcast(v, x) for v in path.derivatives(t))
    return (ds / s) * x + (da - a * ds / s) * x0_hat


def eps_from_x0(path: GaussianPath, x: Tensor, t: Tensor, x0_hat: Tensor) -> Tensor:
    r""":math:`\hat\epsilon = (x_t - \alpha\hat x_0)/\sigma`."""
    return (x - broadcast(path.alpha(t), x) * x0_hat) / broadcast(path.sigma(t), x)
