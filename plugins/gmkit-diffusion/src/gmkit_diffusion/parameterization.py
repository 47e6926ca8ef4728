r"""What the denoiser predicts, and how each prediction maps to :math:`(\hat x_0, \hat\epsilon)`.

With :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` (eq. 2 of
docs/models/diffusion.md), any one of the three determines the other two given
:math:`x_t`:

- ``eps`` (Ho et al., 2020, arXiv:2006.11239): :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\epsilon)/\sqrt{\bar\alpha_t}`;
- ``x0``: the network outputs :math:`\hat x_0`;
- ``v`` (Salimans & Ho, 2022, arXiv:2202.00512): :math:`v = \sqrt{\bar\alpha_t}\,\epsilon - \sqrt{1-\bar\alpha_t}\,x_0`,
  so :math:`\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,\hat v`;
- ``levels`` (images only): the network outputs logits :math:`\ell_k` over the
  ``L`` grey levels :math:`c_k = 2k/(L-1) - 1` of each pixel and

  .. math:: \hat x_0 = \sum_k \pi_k c_k, \qquad
            \pi = \mathrm{softmax}_k\Big(\ell_k - \frac{(x_t - \sqrt{\bar\alpha_t}\,c_k)^2}{2(1-\bar\alpha_t)}\Big),

  the posterior mean of a pixel whose level has prior :math:`\mathrm{softmax}(\ell)`
  given its own noisy value. With :math:`\ell = 0` this is the exact denoiser of
  independent uniform levels; at small :math:`t` the likelihood term rounds
  :math:`x_t` to the right level exactly, which the bound rewards with weight
  :math:`\mathrm{SNR}(t-1)-\mathrm{SNR}(t)` (eq. 9), while an ``eps`` network would
  have to learn a saw-tooth of :math:`x_t` to the same precision.

In every case :math:`\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}`.
Shapes: ``xt`` ``(B, *shape)``; the network output ``(B, *shape)``, or ``(B, C*L, H, W)`` for ``levels``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gmkit_core.distributions import to_unit_interval
from gmkit_core.interfaces import NoiseSchedule

__all__ = ["PREDICTIONS", "output_channels", "to_x0", "to_eps", "target"]

PREDICTIONS = ("eps", "x0", "v", "levels", "gauss_levels")


def output_channels(prediction: str, channels: int, levels: int | None) -> int:
    """Channels (images) or features (vectors) the network must output for ``prediction``."""
    if prediction not in ("levels", "gauss_levels"):
        return channels
    if levels is None:
        raise ValueError(f"prediction '{prediction}' needs the number of levels")
    return channels * levels if prediction == "levels" else 2 * channels


WINDOW = 4  # gauss_levels: levels each side of the posterior mean summed exactly when its sd < the level spacing


def gauss_posterior(out: Tensor, xt: Tensor, a: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    r"""``gauss_levels``: the Gaussian in :math:`c` of prior :math:`\mathcal N(m, e^{u})` (``out = (m, u)``,
    ``(B, 2C, H, W)``) times the likelihood :math:`\mathcal N(x_t; a c, s^2)`: its mean and sd, ``(B, C, H, W)``."""
    C = out.shape[1] // 2
    m, prior_prec = out[:, :C], torch.exp(-out[:, C:].clamp(-20.0, 20.0))
    prec = prior_prec + (a / s).square()
    return (m * prior_prec + xt * a / s.square()) / prec, prec.rsqrt()


def _truncated_normal_mean(mu: Tensor, sd: Tensor, half: float) -> Tensor:
    """Mean of N(mu, sd^2) truncated to [-half, half], stable in float64 for any ``mu``."""
    sign = torch.where(mu > 0, -1.0, 1.0).to(mu)
    m = mu * sign  # <= 0: reflect so that the upper limit is always at least `half` away
    lo, hi = (-half - m) / sd, (half - m) / sd  # lo < hi, hi > 0
    # log(Phi(hi) - Phi(lo)): directly when lo <= 0, as log(Q(lo) - Q(hi)) when lo > 0; each branch gets
    # arguments on its own side so that the branch not taken stays finite (and so do its gradients).
    ln_p_lo, ln_p_hi = torch.special.log_ndtr(lo.clamp(max=0.0)), torch.special.log_ndtr(hi)
    log_z_left = ln_p_hi + torch.log(-torch.expm1(ln_p_lo - ln_p_hi))
    ln_q_lo, ln_q_hi = torch.special.log_ndtr(-lo.clamp(min=0.0)), torch.special.log_ndtr(-hi)
    log_z_right = ln_q_lo + torch.log(-torch.expm1(ln_q_hi - ln_q_lo))
    log_z = torch.where(lo > 0, log_z_right, log_z_left)
    c = 0.5 * math.log(2 * math.pi)
    ratio = torch.exp(-0.5 * lo.square() - c - log_z) - torch.exp(-0.5 * hi.square() - c - log_z)
    return sign * (m + sd * ratio)


def gauss_levels_mean(mu: Tensor, sd: Tensor, levels: int) -> Tensor:
    r"""Mean of the discretised Gaussian :math:`\pi_k \propto \exp(-(c_k - \mu)^2 / (2\,\mathrm{sd}^2))` on the
    ``L`` levels :math:`c_k = 2k/(L-1) - 1`.

    Where ``sd`` is below the level spacing :math:`\Delta = 2/(L-1)`, summed exactly over the
    ``2 * WINDOW + 1`` levels nearest :math:`\mu` (each of the rest weighs below :math:`e^{-(WINDOW+1/2)^2/2}` of the total);
    elsewhere its continuous limit, the mean of :math:`\mathcal N(\mu, \mathrm{sd}^2)` truncated to
    :math:`[-1 - \\Delta/2, 1 + \\Delta/2]` and clipped to :math:`[-1, 1]` (the midpoint rule: exact in
    the interior up to :math:`e^{-2\\pi^2 \\mathrm{sd}^2/\\Delta^2}`, off by less than :math:`\\Delta/2` near the ends).
    """
    delta = 2.0 / (levels - 1)
    k0 = torch.round((mu.detach().clamp(-1.0, 1.0) + 1) / delta)
    k = k0.unsqueeze(-1) + torch.arange(-WINDOW, WINDOW + 1, device=mu.device, dtype=mu.dtype)
    c = k * delta - 1
    small = sd.clamp(max=delta).unsqueeze(-1)
    logits = (-(c - mu.unsqueeze(-1)).square() / (2 * small.square())).masked_fill(
        (k < 0) | (k > levels - 1), -math.inf
    )
    near = (torch.softmax(logits, dim=-1) * c).sum(-1)
    far = _truncated_normal_mean(mu.double(), sd.double().clamp(min=delta), 1 + delta / 2).clamp(-1.0, 1.0)
    return torch.where(sd < delta, near, far.to(mu.dtype))


def _coefs(schedule: NoiseSchedule, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    abar = schedule.at(schedule.alphas_cumprod, t, like)
    return abar.sqrt(), (1 - abar).sqrt()


def to_x0(
    schedule: NoiseSchedule, prediction: str, out: Tensor, xt: Tensor, t: Tensor, levels: int | None = None
) -> Tensor:
    r""":math:`\hat x_0` from the network output ``out`` at ``(x_t, t)`` (see the module docstring)."""
    a, s = _coefs(schedule, t, xt)
    if prediction == "eps":
        return (xt - s * out) / a
    if prediction == "x0":
        return out
    if prediction == "v":
        return a * xt - s * out
    if prediction == "gauss_levels":
        if levels is None:
            raise ValueError("prediction 'gauss_levels' needs the number of levels")
        mu, sd = gauss_posterior(out, xt, a, s)
        return gauss_levels_mean(mu, sd, levels)
    if prediction == "levels":
        if levels is None:
            raise ValueError("prediction 'levels' needs the number of levels")
        B, C = xt.shape[:2]
        logits = out.reshape(B, C, levels, *xt.shape[2:])  # (B, C, L, H, W)
        centres = to_unit_interval(torch.arange(levels, device=xt.device), levels).to(xt.dtype)
        shape = (1, 1, levels) + (1,) * (xt.ndim - 2)
        dist = xt.unsqueeze(2) - a.unsqueeze(2) * centres.reshape(shape)  # (B, C, L, H, W)
        loglik = -dist.square() / (2 * s.unsqueeze(2).square())
        weights = torch.softmax(logits + loglik, dim=2)
        return (weights * centres.reshape(shape)).sum(2)  # (B, C, H, W)
    raise ValueError(f"unknown prediction '{prediction}'")


def to_eps(schedule: NoiseSchedule, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
    r""":math:`\hat\epsilon = (x_t - \sqrt{\bar\alpha_t}\,\hat x_0)/\sqrt{1-\bar\alpha_t}`."""
    a, s = _coefs(schedule, t, xt)
    return (xt - a * x0) / s


def target(schedule: NoiseSchedule, prediction: str, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """The regression target of the simple loss: ``eps``, ``x0`` or ``v`` (``levels`` regresses ``eps``)."""
    if prediction == "x0":
        return x0
    if prediction == "v":
        a, s = _coefs(schedule, t, x0)
        return a * eps - s * x0
    return eps
