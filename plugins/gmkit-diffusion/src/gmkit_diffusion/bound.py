r"""The terms of the DDPM variational bound (Ho et al., 2020, arXiv:2006.11239, eq. 5).

.. math:: -\log p_\theta(x_0) \le L_T + \sum_{t=2}^{T} L_{t-1} + L_0,

- :math:`L_T = \mathrm{KL}(q(x_T \mid x_0) \,\|\, \mathcal N(0, I))` (:func:`prior_term`);
- :math:`L_{t-1} = \mathbb E_q\,\mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t))`
  (:func:`kl_term`), with :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\tilde\mu_t(x_t, \hat x_0), \sigma_t^2 I)`;
  both means share the :math:`x_t` coefficient, so their difference is
  :math:`\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}(x_0 - \hat x_0)` and for
  :math:`\sigma_t^2 = \tilde\beta_t` the term is
  :math:`\tfrac12(\mathrm{SNR}(t-1) - \mathrm{SNR}(t))\,\|x_0 - \hat x_0\|^2`;
- :math:`L_0 = -\log p_\theta(x_0 \mid x_1)` (:func:`decoder_nll`): for images the
  discretised Gaussian :math:`\mathcal N(\hat x_0(x_1, 1), \beta_1)` over the ``L``
  levels (mass, so the bound is on the discrete data), for vectors the Gaussian
  density (so the bound is on the continuous data).

All terms are in nats per example, shape ``(B,)``; ``x0`` is ``(B, *shape)`` in
model space (``[-1, 1]`` for images).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmkit_core.distributions import DiscretizedGaussian, Normal
from gmkit_core.interfaces import NoiseSchedule

__all__ = ["VARIANCES", "reverse_variance", "prior_term", "kl_term", "decoder_nll"]

VARIANCES = ("beta", "beta_tilde")


def reverse_variance(schedule: NoiseSchedule, t: Tensor, variance: str, like: Tensor) -> Tensor:
    r""":math:`\sigma_t^2`: :math:`\beta_t` or :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t`, shaped to broadcast on ``like``."""
    if variance == "beta":
        return schedule.at(schedule.betas, t, like)
    return schedule.posterior_variance(t, like)


def prior_term(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    r""":math:`L_T = \mathrm{KL}(\mathcal N(\sqrt{\bar\alpha_T}x_0, (1-\bar\alpha_T)I)\,\|\,\mathcal N(0, I))`, ``(B,)``."""
    t = torch.full((x0.shape[0],), schedule.T, device=x0.device, dtype=torch.long)
    abar = schedule.at(schedule.alphas_cumprod, t, x0)
    q = Normal(abar.sqrt() * x0, (1 - abar).sqrt())
    return q.kl(Normal(torch.zeros_like(x0), torch.ones_like(x0)))


def kl_term(schedule: NoiseSchedule, x0: Tensor, x0_hat: Tensor, t: Tensor, variance: str) -> Tensor:
    r""":math:`\mathrm{KL}(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t))` for steps ``t >= 2``, ``(B,)``.

    The shared :math:`x_t` part of the two means cancels, so only
    :math:`c_t x_0` and :math:`c_t \hat x_0` with :math:`c_t = \sqrt{\bar\alpha_{t-1}}\beta_t/(1-\bar\alpha_t)`
    enter (exact, and free of cancellation when :math:`\hat x_0 \approx x_0`).
    """
    beta = schedule.at(schedule.betas, t, x0)
    abar, abar_prev = schedule.at(schedule.alphas_cumprod, t, x0), schedule.at(schedule.alphas_cumprod_prev, t, x0)
    coef = abar_prev.sqrt() * beta / (1 - abar)
    q = Normal(coef * x0, schedule.posterior_variance(t, x0).sqrt())
    p = Normal(coef * x0_hat, reverse_variance(schedule, t, variance, x0).sqrt())
    return q.kl(p)


def decoder_nll(schedule: NoiseSchedule, x: Tensor, x0_hat: Tensor, levels: int | None) -> Tensor:
    r""":math:`L_0 = -\log p_\theta(x \mid x_1)` with mean :math:`\hat x_0(x_1, 1)` and scale :math:`\sqrt{\beta_1}`, ``(B,)``.

    ``x``: the data as stored (int levels) when ``levels`` is given, else the vector in model space.
    """
    log_scale = 0.5 * torch.log(schedule.betas[0]).to(x0_hat)
    if levels is not None:
        return -DiscretizedGaussian(x0_hat, log_scale.expand_as(x0_hat), levels).log_prob(x)
    return -Normal(x0_hat, log_scale.exp().expand_as(x0_hat)).log_prob(x.to(x0_hat))
