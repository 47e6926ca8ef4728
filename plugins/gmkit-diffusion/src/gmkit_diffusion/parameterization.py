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

import torch
from torch import Tensor

from gmkit_core.distributions import to_unit_interval
from gmkit_core.interfaces import NoiseSchedule

__all__ = ["PREDICTIONS", "output_channels", "to_x0", "to_eps", "target"]

PREDICTIONS = ("eps", "x0", "v", "levels")


def output_channels(prediction: str, channels: int, levels: int | None) -> int:
    """Channels (images) or features (vectors) the network must output for ``prediction``."""
    if prediction != "levels":
        return channels
    if levels is None:
        raise ValueError("prediction 'levels' needs the number of levels")
    return channels * levels


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
