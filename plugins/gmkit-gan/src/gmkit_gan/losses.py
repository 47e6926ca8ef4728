r"""Adversarial objectives and gradient penalties.

With discriminator outputs (logits or critic values) :math:`r = D(x)` on real
and :math:`f = D(G(z))` on generated examples, each loss gives the
discriminator's and the generator's objective, both minimised and averaged
over the batch (:math:`\operatorname{sp}(u) = \log(1 + e^u)`):

=================  ===========================================  ==========================
``loss``           discriminator :math:`L_D`                     generator :math:`L_G`
=================  ===========================================  ==========================
non_saturating     :math:`\operatorname{sp}(-r) + \operatorname{sp}(f)`   :math:`\operatorname{sp}(-f)`
hinge              :math:`\max(0, 1 - r) + \max(0, 1 + f)`        :math:`-f`
least_squares      :math:`\tfrac12 (r - 1)^2 + \tfrac12 f^2`       :math:`\tfrac12 (f - 1)^2`
wgan_gp            :math:`f - r` (+ :func:`gradient_penalty`)     :math:`-f`
=================  ===========================================  ==========================

The decision boundary of each (used for the accuracies logged as training
health, :func:`accuracies`) is :math:`D = 0` for the logistic and hinge
losses, :math:`D = 1/2` for least squares and, for the WGAN critic, whose
values have no fixed offset, the midpoint of the batch means of ``r`` and ``f``.

References: Goodfellow et al. (2014, arXiv:1406.2661) for the non-saturating
loss; Lim & Ye (2017, arXiv:1705.02894) and Miyato et al. (2018,
arXiv:1802.05957) for the hinge loss; Mao et al. (2017, arXiv:1611.04076) for
least squares (targets a=0, b=c=1); Gulrajani et al. (2017, arXiv:1704.00028)
for WGAN-GP; Mescheder et al. (2018, arXiv:1801.04406) for the R1 penalty.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty", "r1_penalty", "accuracies"]

LOSSES = ("non_saturating", "hinge", "least_squares", "wgan_gp")


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """:math:`L_D` of ``kind`` for outputs ``real`` ``(B,)`` and ``fake`` ``(B',)``: a scalar (penalties excluded)."""
    if kind == "non_saturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "least_squares":
        return 0.5 * (real - 1).square().mean() + 0.5 * fake.square().mean()
    if kind == "wgan_gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss '{kind}'; losses: {', '.join(LOSSES)}")


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """:math:`L_G` of ``kind`` for discriminator outputs ``fake`` ``(B,)`` on generated examples: a scalar."""
    if kind == "non_saturating":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan_gp"):
        return -fake.mean()
    if kind == "least_squares":
        return 0.5 * (fake - 1).square().mean()
    raise ValueError(f"unknown GAN loss '{kind}'; losses: {', '.join(LOSSES)}")


def _input_gradient_norms(critic: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``||grad_x critic(x)_b||_2`` per example ``(B,)``, with a graph so the norm can be back-propagated."""
    x = x.detach().requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1).norm(dim=1)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    r"""WGAN-GP's :math:`\mathbb E_{\hat x}\,(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2` (without its weight :math:`\lambda`).

    :math:`\hat x = \epsilon x + (1 - \epsilon)\tilde x` with one
    :math:`\epsilon \sim U[0, 1]` per example, ``real`` and ``fake`` ``(B, *)``.
    """
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    mixed = eps * real.detach() + (1 - eps) * fake.detach()
    return (_input_gradient_norms(critic, mixed) - 1).square().mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    r"""R1: :math:`\mathbb E_{x \sim p_\mathrm{data}} \lVert\nabla_x D(x)\rVert_2^2` on ``real`` ``(B, *)`` (weight :math:`\gamma/2` applied by the caller)."""
    return _input_gradient_norms(critic, real).square().mean()


def accuracies(kind: str, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Fractions of ``real`` outputs on the real side and of ``fake`` outputs on the fake side of ``kind``'s boundary."""
    real, fake = real.detach(), fake.detach()
    if kind == "least_squares":
        boundary = real.new_tensor(0.5)
    elif kind == "wgan_gp":
        boundary = (real.mean() + fake.mean()) / 2
    else:
        boundary = real.new_tensor(0.0)
    return (real > boundary).float().mean(), (fake < boundary).float().mean()
