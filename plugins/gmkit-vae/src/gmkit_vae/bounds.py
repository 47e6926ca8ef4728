r"""The variational bounds on :math:`\log p(x)`, for any encoder, decoder and prior.

With an encoder ``q`` (``x, y -> q(z|x,y)``, a distribution with ``rsample`` and
``log_prob``), a decoder ``p`` (``z, y -> p(x|z,y)`` with ``log_prob``) and a
:class:`~gmkit_core.interfaces.Prior`:

- ELBO (Kingma & Welling 2014, arXiv:1312.6114):

  .. math:: \mathcal L(x) = \mathbb E_{q(z|x)}[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z)) \le \log p(x),

  one reparameterised draw :math:`z = \mu + \sigma\epsilon` for the first term, the KL in
  closed form when ``q`` is a :class:`~gmkit_core.distributions.Normal` and the prior the
  standard normal, else the one-draw Monte Carlo estimate :math:`\log q(z\mid x) - \log p(z)`.
- IWAE-k (Burda et al. 2016, arXiv:1509.00519), with :math:`z_i \sim q(z\mid x)` i.i.d.:

  .. math:: \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k \frac{p(x\mid z_i)\,p(z_i)}{q(z_i\mid x)},
     \qquad \mathcal L = \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)

  (in expectation), with equality for every ``k`` when ``q`` is the true posterior.

Shapes: ``x`` ``(B, *shape)``, ``condition`` ``(B,)`` or None; every bound is ``(B,)`` nats.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from gmkit_core.distributions import Normal, StandardNormal
from gmkit_core.interfaces import Prior

__all__ = ["ELBO", "elbo", "iwae", "kl_divergence", "log_weights"]


class ELBO(NamedTuple):
    r"""The two terms of the ELBO, each ``(B,)`` nats: :math:`\log p(x\mid z)` and the KL."""

    reconstruction: Tensor
    kl: Tensor

    @property
    def elbo(self) -> Tensor:
        return self.reconstruction - self.kl


def kl_divergence(q: Any, prior: Prior, z: Tensor) -> Tensor:
    r""":math:`\mathrm{KL}(q\,\|\,p)` ``(B,)``: closed form for Normal against N(0, I), else ``log q(z) - log p(z)`` at ``z`` ``(B, D)``."""
    if isinstance(q, Normal) and isinstance(prior, StandardNormal):
        return q.kl(prior.as_normal(q.loc))
    return q.log_prob(z) - prior.log_prob(z)


def elbo(
    x: Tensor,
    encoder: nn.Module,
    decoder: nn.Module,
    prior: Prior,
    condition: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> ELBO:
    """One-sample ELBO terms of ``x`` ``(B, *shape)``; see the module docstring."""
    q = encoder(x, condition)
    z = q.rsample(generator)  # (B, D)
    return ELBO(decoder(z, condition).log_prob(x), kl_divergence(q, prior, z))


def _repeat(t: Tensor | None, k: int) -> Tensor | None:
    """``(B, *)`` -> ``(k*B, *)``, sample-major (row ``i*B + b`` is example ``b``)."""
    return None if t is None else t.unsqueeze(0).expand(k, *t.shape).reshape(k * t.shape[0], *t.shape[1:])


def log_weights(
    x: Tensor,
    q: Any,
    decoder: nn.Module,
    prior: Prior,
    k: int,
    condition: Tensor | None = None,
    generator: torch.Generator | None = None,
    kl_weight: float = 1.0,
) -> Tensor:
    r"""``(k, B)`` log importance weights :math:`\log p(x\mid z_i) + w\,(\log p(z_i) - \log q(z_i\mid x))`, :math:`z_i \sim q`.

    ``q`` is the encoder's output for ``x``; ``w = kl_weight`` is 1 for the bound
    (a smaller ``w`` anneals the prior term during warm-up).
    """
    z = q.rsample(generator, (k,))  # (k, B, D)
    log_q = q.log_prob(z)  # (k, B)
    flat = z.reshape(-1, z.shape[-1])  # (k*B, D)
    log_px = decoder(flat, _repeat(condition, k)).log_prob(_repeat(x, k)).view(k, -1)  # (k, B)
    log_pz = prior.log_prob(flat).view(k, -1)  # (k, B)
    return log_px + kl_weight * (log_pz - log_q)


def iwae(
    x: Tensor,
    encoder: nn.Module,
    decoder: nn.Module,
    prior: Prior,
    k: int,
    condition: Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
    kl_weight: float = 1.0,
) -> Tensor:
    r"""IWAE-k bound ``(B,)``, drawing at most ``chunk`` samples per example at a time to bound memory.

    :math:`\log\frac1k\sum_i w_i = \mathrm{logsumexp}_c(\mathrm{logsumexp}_{i\in c}\log w_i) - \log k` over chunks ``c``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    q = encoder(x, condition)
    step = k if chunk is None else max(1, chunk)
    parts = [
        torch.logsumexp(log_weights(x, q, decoder, prior, min(step, k - start), condition, generator, kl_weight), dim=0)
        for start in range(0, k, step)
    ]
    return torch.logsumexp(torch.stack(parts), dim=0) - math.log(k)
