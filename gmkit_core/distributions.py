r"""Distributions shared by every family.

Continuous: :class:`Normal` (diagonal Gaussian, reparameterised, closed-form
KL) and :class:`StandardNormal` (also a registered Prior).

Discrete, for integer data ``x`` in ``{0, ..., L-1}`` (shapes ``(*, C, H, W)``):
:class:`Bernoulli` (L = 2), :class:`Categorical` (any L), and the discretised
:class:`DiscretizedLogistic`, :class:`DiscretizedGaussian` and
:class:`DiscretizedLogisticMixture`. The discretised ones place level ``k`` at
the centre ``c_k = 2k/(L-1) - 1`` of a bin of half-width ``h = 1/(L-1)`` in
``[-1, 1]``; the outer bins extend to infinity, so the probabilities of the
L levels sum to one exactly:

.. math:: P(x = k) = F((c_k + h - \mu)/s) - F((c_k - h - \mu)/s).

Every ``log_prob`` sums over the last ``event_dims`` dimensions of ``x``
(default: all but the first) and returns nats.

References: Kingma & Welling, Auto-Encoding Variational Bayes (2014, arXiv:1312.6114);
Salimans et al., PixelCNN++ (2017, arXiv:1701.05517); Ho et al., DDPM (2020, arXiv:2006.11239).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .interfaces import Prior, bits_per_dim

__all__ = [
    "LOG_2PI",
    "Normal",
    "StandardNormal",
    "kl_normal",
    "Bernoulli",
    "Categorical",
    "DiscretizedLogistic",
    "DiscretizedGaussian",
    "DiscretizedLogisticMixture",
    "to_unit_interval",
    "bits_per_dim",
    "dequantize",
    "quantize",
    "dequantization_nats",
]

LOG_2PI = math.log(2 * math.pi)


def _sum_event(t: Tensor, event_dims: int | None) -> Tensor:
    n = t.ndim - 1 if event_dims is None else event_dims
    return t.sum(dim=tuple(range(t.ndim - n, t.ndim))) if n else t


def to_unit_interval(x: Tensor, levels: int, dtype: torch.dtype | None = None) -> Tensor:
    """Integer levels ``{0..L-1}`` -> bin centres ``2x/(L-1) - 1`` in ``[-1, 1]`` (default float dtype)."""
    return x.to(dtype or torch.get_default_dtype()) * (2.0 / (levels - 1)) - 1.0


def dequantize(x: Tensor, levels: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Uniform dequantisation ``y = (x + u) / L``, ``u ~ U[0, 1)^D``, so ``y`` lies in ``[0, 1)^D``.

    For any density ``p`` on ``[0, 1]^D``, Jensen gives
    ``-log P(x) <= E_u[-log p(y)] + D log L`` (Theis et al., 2016, arXiv:1511.01844):
    add :func:`dequantization_nats` to the continuous NLL to bound the discrete one.
    """
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.get_default_dtype())
    y = (x.to(u.dtype) + u) / levels
    # in float32, x + u with u just below 1 can round up to x + 1: keep y strictly inside its own bin
    upper = torch.nextafter((x.to(u.dtype) + 1) / levels, torch.zeros_like(y))
    return torch.minimum(y, upper)


def quantize(y: Tensor, levels: int, *, centred: bool = False) -> Tensor:
    r"""A continuous value -> the discrete level whose bin holds it, int64 in ``[0, L)`` (out-of-range values clamp).

    - ``centred=False`` (the scale of :func:`dequantize`): ``y`` in ``[0, 1)``, level ``k`` owns
      ``[k/L, (k+1)/L)``, so ``quantize(dequantize(x, L), L) == x``: :math:`\lfloor yL \rfloor`.
    - ``centred=True`` (the scale of :func:`to_unit_interval` and the discretised laws): ``y`` in
      ``[-1, 1]``, level ``k`` owns the bin of half-width ``1/(L-1)`` around ``2k/(L-1) - 1``, so
      ``quantize(to_unit_interval(x, L), L, centred=True) == x``: :math:`\mathrm{round}((y+1)(L-1)/2)`.
    """
    if centred:
        return torch.round((y + 1) * ((levels - 1) / 2)).clamp(0, levels - 1).long()
    k = torch.floor(y * levels)
    # y * L may round across an edge: compare with the edges k/L, (k+1)/L as dequantize computes them
    k = k - (k / levels > y).to(k.dtype)
    k = k + ((k + 1) / levels <= y).to(k.dtype)
    return k.clamp(0, levels - 1).long()


def dequantization_nats(dims: int, levels: int) -> float:
    """The ``D log L`` term that turns a density on ``[0,1]^D`` into a bound on discrete data."""
    return dims * math.log(levels)


class Normal:
    r"""Diagonal Gaussian :math:`\mathcal N(\mu, \mathrm{diag}\,\sigma^2)`.

    ``loc`` and ``scale``: broadcastable tensors ``(*, event)``; samples are
    reparameterised, :math:`z = \mu + \sigma \epsilon`, :math:`\epsilon \sim \mathcal N(0, I)`.
    """

    def __init__(self, loc: Tensor, scale: Tensor, event_dims: int | None = None):
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.event_dims = event_dims

    @classmethod
    def from_logvar(cls, loc: Tensor, logvar: Tensor, event_dims: int | None = None) -> Normal:
        return cls(loc, torch.exp(0.5 * logvar), event_dims)

    def rsample(self, generator: torch.Generator | None = None, sample_shape: tuple[int, ...] = ()) -> Tensor:
        shape = tuple(sample_shape) + self.loc.shape
        eps = torch.randn(shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc + self.scale * eps

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None, sample_shape: tuple[int, ...] = ()) -> Tensor:
        return self.rsample(generator, sample_shape)

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\sum -\tfrac12 ((x-\mu)/\sigma)^2 - \log\sigma - \tfrac12\log 2\pi` over the event."""
        z = (x - self.loc) / self.scale
        return _sum_event(-0.5 * z.square() - torch.log(self.scale) - 0.5 * LOG_2PI, self._event(x))

    def entropy(self) -> Tensor:
        return _sum_event(0.5 + 0.5 * LOG_2PI + torch.log(self.scale), self._event(self.loc))

    def kl(self, other: Normal) -> Tensor:
        """Closed-form ``KL(self || other)``; see :func:`kl_normal`."""
        return kl_normal(self, other)

    def _event(self, x: Tensor) -> int:
        return self.loc.ndim - 1 if self.event_dims is None else self.event_dims


def kl_normal(q: Normal, p: Normal) -> Tensor:
    r""":math:`\mathrm{KL}(q\|p) = \sum \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q-\mu_p)^2}{2\sigma_p^2} - \frac12`."""
    var_ratio = (q.scale / p.scale).square()
    t = ((q.loc - p.loc) / p.scale).square()
    return _sum_event(0.5 * (var_ratio + t - 1 - torch.log(var_ratio)), q._event(q.loc))


class StandardNormal(Prior):
    r"""The prior :math:`p(z) = \mathcal N(0, I)` over ``shape``; ``log p(z) = -\tfrac12 (z^\top z + D\log 2\pi)``."""

    _device_anchor: Tensor

    def __init__(self, shape: int | tuple[int, ...] = 1):
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        return _sum_event(-0.5 * (z.square() + LOG_2PI), len(self.shape))

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *shape)`` standard normal draws from ``generator``; the prior takes no ``condition``."""
        if condition is not None:
            raise ValueError("standard_normal is an unconditional prior")
        anchor = self._device_anchor
        return torch.randn((n, *self.shape), generator=generator, device=anchor.device, dtype=anchor.dtype)

    def as_normal(self, like: Tensor) -> Normal:
        """This prior as a :class:`Normal` shaped like ``like`` (for closed-form KL)."""
        return Normal(torch.zeros_like(like), torch.ones_like(like), len(self.shape))


class Bernoulli:
    """Independent Bernoulli over binary data; ``logits`` has the shape of ``x``."""

    def __init__(self, logits: Tensor, event_dims: int | None = None):
        self.logits, self.event_dims = logits, event_dims

    def log_prob(self, x: Tensor) -> Tensor:
        logits, target = torch.broadcast_tensors(self.logits, x.to(self.logits.dtype))
        ll = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return _sum_event(ll, self.event_dims)

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(self.logits.shape, generator=generator, device=self.logits.device)
        return (u < torch.sigmoid(self.logits)).long()

    def mode(self) -> Tensor:
        return (self.logits > 0).long()


class Categorical:
    """Independent categoricals; ``logits`` is ``x.shape + (L,)`` (levels on the last axis)."""

    def __init__(self, logits: Tensor, event_dims: int | None = None):
        self.logits, self.event_dims = logits, event_dims

    def log_probs(self) -> Tensor:
        """``log P(x = k)`` for every level, shape ``x.shape + (L,)``."""
        return torch.log_softmax(self.logits, dim=-1)

    def log_prob(self, x: Tensor) -> Tensor:
        log_p = self.log_probs()
        shape = torch.broadcast_shapes(x.shape, log_p.shape[:-1])
        index = x.long().expand(shape).unsqueeze(-1)
        ll = log_p.expand(*shape, log_p.shape[-1]).gather(-1, index).squeeze(-1)
        return _sum_event(ll, self.event_dims)

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return sample_categorical(self.logits, generator)

    def mode(self) -> Tensor:
        return self.logits.argmax(-1)


def sample_categorical(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Inverse-CDF draw from ``softmax(logits)`` along the last axis; seeded by ``generator``."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)
    u = torch.rand(logits.shape[:-1] + (1,), generator=generator, device=logits.device, dtype=cdf.dtype)
    return (cdf < u * cdf[..., -1:]).sum(-1).clamp_max(logits.shape[-1] - 1)


def _log_bin_mass(upper: Tensor, lower: Tensor, log_cdf) -> Tensor:  # noqa: ANN001
    """``log(F(upper) - F(lower))`` for a symmetric CDF, stable in both tails.

    Mirrors to the left tail where ``lower > 0`` (``F(a)-F(b) = F(-b)-F(-a)``), then
    ``log F(a) + log(1 - exp(log F(b) - log F(a)))``.
    """
    flip = lower > 0
    a = torch.where(flip, -lower, upper)
    b = torch.where(flip, -upper, lower)
    log_fa, log_fb = log_cdf(a), log_cdf(b)
    return log_fa + torch.log(-torch.expm1((log_fb - log_fa).clamp_max(-1e-12)))


class _Discretized:
    """A continuous location-scale law binned onto ``L`` levels of ``[-1, 1]``."""

    log_cdf = staticmethod(F.logsigmoid)

    def __init__(self, loc: Tensor, log_scale: Tensor, levels: int, event_dims: int | None = None):
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        self.levels, self.event_dims = levels, event_dims

    def _log_probs_per_dim(self, x: Tensor) -> Tensor:
        h = 1.0 / (self.levels - 1)
        centre = to_unit_interval(x, self.levels, self.loc.dtype)
        inv_s = torch.exp(-self.log_scale)
        upper = (centre + h - self.loc) * inv_s
        lower = (centre - h - self.loc) * inv_s
        inf = torch.full_like(upper, math.inf)
        upper = torch.where(x >= self.levels - 1, inf, upper)
        lower = torch.where(x <= 0, -inf, lower)
        return _log_bin_mass(upper, lower, self.log_cdf)

    def log_prob(self, x: Tensor) -> Tensor:
        return _sum_event(self._log_probs_per_dim(x), self.event_dims)

    def _noise(self, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        y = self.loc + torch.exp(self.log_scale) * self._noise(generator)
        return quantize(y, self.levels, centred=True)


class DiscretizedLogistic(_Discretized):
    """Logistic(loc, exp(log_scale)) binned onto ``levels`` values."""

    def _noise(self, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)
        u = u.clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)


class DiscretizedGaussian(_Discretized):
    """Normal(loc, exp(log_scale)) binned onto ``levels`` values (the DDPM ``L_0`` decoder)."""

    log_cdf = staticmethod(torch.special.log_ndtr)

    def _noise(self, generator: torch.Generator | None) -> Tensor:
        return torch.randn(self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype)


class DiscretizedLogisticMixture:
    r"""Per-dimension mixture of K discretised logistics (PixelCNN++).

    ``logit_weights``, ``loc``, ``log_scale``: ``x.shape + (K,)``;
    :math:`\log P(x) = \mathrm{logsumexp}_k(\log \pi_k + \log P_k(x))`.
    """

    def __init__(
        self, logit_weights: Tensor, loc: Tensor, log_scale: Tensor, levels: int, event_dims: int | None = None
    ):
        self.logit_weights, self.levels, self.event_dims = logit_weights, levels, event_dims
        self.components = DiscretizedLogistic(loc, log_scale, levels)

    def log_prob(self, x: Tensor) -> Tensor:
        per = self.components._log_probs_per_dim(x.unsqueeze(-1))
        ll = torch.logsumexp(torch.log_softmax(self.logit_weights, -1) + per, dim=-1)
        return _sum_event(ll, self.event_dims)

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        k = sample_categorical(self.logit_weights, generator).unsqueeze(-1)
        loc = self.components.loc.gather(-1, k).squeeze(-1)
        log_scale = self.components.log_scale.gather(-1, k).squeeze(-1)
        return DiscretizedLogistic(loc, log_scale, self.levels).sample(generator)
