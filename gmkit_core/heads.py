r"""Observation heads: raw network outputs -> a distribution over the data.

A network emits ``P`` numbers per data dimension, parameters on the last axis:
``raw`` ``(*batch, *event, P)``. A :class:`Head` knows ``P`` (:attr:`Head.params`)
and turns ``raw`` into one of :mod:`gmkit_core.distributions`, whose
``log_prob(x)`` on ``x`` ``(*batch, *event)`` sums over the event and returns nats
of the data as stored (a probability mass on integer levels, a density on vectors).

======================== ============ ====== =====================================================
name                     data         P      distribution
======================== ============ ====== =====================================================
``bernoulli``            2 levels     1      :class:`~gmkit_core.distributions.Bernoulli`
``categorical``          L levels     L      :class:`~gmkit_core.distributions.Categorical`
``logistic``             L levels     2      :class:`~gmkit_core.distributions.DiscretizedLogistic`
``logistic_mixture``     L levels     3K     :class:`~gmkit_core.distributions.DiscretizedLogisticMixture`
``discretized_gaussian`` L levels     2      :class:`~gmkit_core.distributions.DiscretizedGaussian`
``gaussian``             vectors      2      diagonal :class:`~gmkit_core.distributions.Normal`
======================== ============ ====== =====================================================

Location-scale heads read ``[loc, log_scale]`` (mixtures: ``[logits_1..K, loc_1..K,
log_scale_1..K]``) and bound the log-scale below by :data:`MIN_LOG_SCALE`.
The discrete heads' :meth:`Head.log_probs` gives ``log P(x = k)`` for every level
(brute-force tables, per-sub-pixel sampling, modes).

A convolutional network that emits ``(B, C*P, *spatial)`` (channel ``c``'s ``P``
parameters contiguous) is put in this layout by :func:`channels_last`.

References: Kingma & Welling (2014, arXiv:1312.6114); Salimans et al., PixelCNN++
(2017, arXiv:1701.05517); van den Oord et al., PixelRNN (2016, arXiv:1601.06759).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributions import (
    Bernoulli,
    Categorical,
    DiscretizedGaussian,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    Normal,
)
from .errors import ConfigError

__all__ = [
    "MIN_LOG_SCALE",
    "HEADS",
    "Head",
    "BernoulliHead",
    "CategoricalHead",
    "LogisticHead",
    "LogisticMixtureHead",
    "DiscretizedGaussianHead",
    "GaussianHead",
    "make_head",
    "channels_last",
]

#: Lower bound on predicted log-scales. A bin of 256-level data is ``2/255`` wide in ``[-1, 1]``,
#: so a scale of ``exp(-7)`` (about 1e-3) already puts nearly all of a component's mass on one level.
MIN_LOG_SCALE = -7.0


class Head:
    """``raw`` ``(*, *event, P)`` -> a distribution over ``(*, *event)``; ``event_dims`` as in the distributions.

    ``levels``: the number ``L`` of discrete levels (0 for continuous data).
    """

    name: str = ""
    discrete: bool = True

    def __init__(self, levels: int = 0, event_dims: int | None = None):
        self.levels, self.event_dims = int(levels), event_dims

    @property
    def params(self) -> int:
        """``P``: raw numbers per data dimension."""
        raise NotImplementedError

    def build(self, raw: Tensor, event_dims: int | None) -> Any:
        """The distribution of ``raw`` summing ``log_prob`` over the last ``event_dims`` dimensions of ``x``."""
        raise NotImplementedError

    def __call__(self, raw: Tensor) -> Any:
        if raw.shape[-1] != self.params:
            raise ValueError(f"{self.name} head expects {self.params} parameters on the last axis, got {raw.shape[-1]}")
        return self.build(raw, self.event_dims)

    def log_probs(self, raw: Tensor) -> Tensor:
        """``log P(x = k)`` per data dimension for every level: ``(*, P)`` -> ``(*, L)``."""
        if not self.discrete:
            raise ValueError(f"the {self.name} head is a density, it has no table of levels")
        grid = torch.arange(self.levels, device=raw.device).expand(*raw.shape[:-1], self.levels)  # (*, L)
        expanded = raw.unsqueeze(-2).expand(*raw.shape[:-1], self.levels, raw.shape[-1])  # (*, L, P)
        return self.build(expanded, 0).log_prob(grid)


class BernoulliHead(Head):
    """One logit per dimension: :math:`P(x=1) = \\sigma(\\ell)`."""

    name = "bernoulli"

    @property
    def params(self) -> int:
        return 1

    def build(self, raw: Tensor, event_dims: int | None) -> Bernoulli:
        return Bernoulli(raw.squeeze(-1), event_dims)

    def log_probs(self, raw: Tensor) -> Tensor:
        return torch.stack([F.logsigmoid(-raw[..., 0]), F.logsigmoid(raw[..., 0])], dim=-1)


class CategoricalHead(Head):
    """``L`` logits per dimension: :math:`P(x=k) = \\mathrm{softmax}(\\ell)_k`; no order among the levels."""

    name = "categorical"

    @property
    def params(self) -> int:
        return self.levels

    def build(self, raw: Tensor, event_dims: int | None) -> Categorical:
        return Categorical(raw, event_dims)

    def log_probs(self, raw: Tensor) -> Tensor:
        return torch.log_softmax(raw, dim=-1)


class LogisticHead(Head):
    """``[loc, log_scale]`` of a logistic binned onto the ``L`` levels of ``[-1, 1]``."""

    name = "logistic"

    @property
    def params(self) -> int:
        return 2

    def build(self, raw: Tensor, event_dims: int | None) -> DiscretizedLogistic:
        loc, log_scale = raw.unbind(-1)
        return DiscretizedLogistic(loc, log_scale.clamp_min(MIN_LOG_SCALE), self.levels, event_dims)


class DiscretizedGaussianHead(Head):
    """``[loc, log_scale]`` of a Gaussian binned onto the ``L`` levels of ``[-1, 1]``."""

    name = "discretized_gaussian"

    @property
    def params(self) -> int:
        return 2

    def build(self, raw: Tensor, event_dims: int | None) -> DiscretizedGaussian:
        loc, log_scale = raw.unbind(-1)
        return DiscretizedGaussian(loc, log_scale.clamp_min(MIN_LOG_SCALE), self.levels, event_dims)


class LogisticMixtureHead(Head):
    """``[logits_1..K, loc_1..K, log_scale_1..K]``: a mixture of ``K`` discretised logistics (PixelCNN++)."""

    name = "logistic_mixture"

    def __init__(self, levels: int, mixtures: int = 5, event_dims: int | None = None):
        super().__init__(levels, event_dims)
        self.mixtures = int(mixtures)

    @property
    def params(self) -> int:
        return 3 * self.mixtures

    def build(self, raw: Tensor, event_dims: int | None) -> DiscretizedLogisticMixture:
        logits, loc, log_scale = raw.chunk(3, dim=-1)  # (*, K) each
        return DiscretizedLogisticMixture(logits, loc, log_scale.clamp_min(MIN_LOG_SCALE), self.levels, event_dims)


class GaussianHead(Head):
    """``[loc, log_scale]`` of a diagonal Gaussian density (continuous vectors)."""

    name = "gaussian"
    discrete = False

    @property
    def params(self) -> int:
        return 2

    def build(self, raw: Tensor, event_dims: int | None) -> Normal:
        loc, log_scale = raw.unbind(-1)
        return Normal(loc, torch.exp(log_scale.clamp_min(MIN_LOG_SCALE)), event_dims)


_HEADS: dict[str, type[Head]] = {
    h.name: h
    for h in (BernoulliHead, CategoricalHead, LogisticHead, LogisticMixtureHead, DiscretizedGaussianHead, GaussianHead)
}
HEADS = ("auto", *_HEADS)


def make_head(
    name: str, levels: int | None, mixtures: int = 5, event_dims: int | None = None, owner: str = "output"
) -> Head:
    """The head ``name`` for data with ``levels`` discrete levels (``None`` or 0: continuous vectors).

    ``auto`` picks ``bernoulli`` for 2 levels, ``logistic_mixture`` for more and
    ``gaussian`` for vectors. A head that does not fit the data (a density on
    integer levels, a discrete head on vectors, Bernoulli on more than 2 levels)
    is a :class:`ConfigError` naming ``owner`` (the option) and what fits.
    """
    levels = int(levels or 0)
    if name == "auto":
        name = "gaussian" if not levels else ("bernoulli" if levels == 2 else "logistic_mixture")
    if name not in _HEADS:
        raise ConfigError(f"{owner} '{name}' is unknown; choices: {', '.join(HEADS)}")
    cls = _HEADS[name]
    if not levels and cls.discrete:
        raise ConfigError(f"{owner} '{name}' is for integer levels, the data are continuous vectors; use gaussian")
    if levels and not cls.discrete:
        raise ConfigError(
            f"{owner} '{name}' is a density and the data are integer levels; use bernoulli, "
            "categorical, logistic, logistic_mixture or discretized_gaussian"
        )
    if levels and levels < 2:
        raise ConfigError(f"{owner} '{name}' needs at least 2 levels, the data have {levels}")
    if cls is BernoulliHead and levels != 2:
        raise ConfigError(f"{owner} 'bernoulli' needs 2 levels, the data have {levels}; use logistic_mixture")
    if cls is LogisticMixtureHead:
        if mixtures < 1:
            raise ConfigError(f"mixtures must be at least 1, got {mixtures}")
        return LogisticMixtureHead(levels, mixtures, event_dims)
    return cls(levels, event_dims)


def channels_last(raw: Tensor, channels: int) -> Tensor:
    """``(B, C*P, *spatial)`` -> ``(B, C, *spatial, P)``: channel ``c``'s ``P`` parameters moved to the last axis."""
    b, cp, *spatial = raw.shape
    if cp % channels:
        raise ValueError(f"{cp} parameter channels do not split into {channels} channels")
    out = raw.reshape(b, channels, cp // channels, *spatial)
    return out.permute(0, 1, *range(3, out.ndim), 2)
