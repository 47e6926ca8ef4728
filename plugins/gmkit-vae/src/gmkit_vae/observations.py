r"""Observation models :math:`p_\theta(x \mid z)`: raw network outputs -> a distribution over the data.

A decoder network emits ``P`` numbers per data dimension, shape ``(*, *data_shape, P)``;
an :class:`Observation` turns them into one of the core's distributions, whose
``log_prob(x)`` sums over the data dimensions and returns nats of the data *as
stored* (a probability mass on integer images, a density on vectors).

==================== ============== ===== =============================================
name                 data           P     distribution
==================== ============== ===== =============================================
``bernoulli``        2 levels       1     :class:`~gmkit_core.distributions.Bernoulli`
``categorical``      any levels     L     :class:`~gmkit_core.distributions.Categorical`
``logistic``         >2 levels      2     :class:`~gmkit_core.distributions.DiscretizedLogistic`
``logistic_mixture`` >2 levels      3K    :class:`~gmkit_core.distributions.DiscretizedLogisticMixture`
``gaussian``         vectors        2     diagonal :class:`~gmkit_core.distributions.Normal`
==================== ============== ===== =============================================

``auto`` picks ``bernoulli`` for 2 levels, ``logistic_mixture`` for more, ``gaussian`` for vectors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gmkit_core.data import DataSpec
from gmkit_core.distributions import (
    Bernoulli,
    Categorical,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    Normal,
)
from gmkit_core.errors import ConfigError

__all__ = ["OBSERVATIONS", "Observation", "make_observation"]

OBSERVATIONS = ("auto", "bernoulli", "categorical", "logistic", "logistic_mixture", "gaussian")

#: Lower bound on predicted log-scales: a bin of the 256-level data is ``2/255`` wide, so
#: ``exp(-7)`` already puts almost all the mass of a component on one level.
MIN_LOG_SCALE = -7.0


class Observation:
    """Maps raw parameters ``(*, *shape, P)`` to a distribution over data of ``shape``."""

    params: int = 1

    def __init__(self, spec: DataSpec, mixtures: int = 1):
        self.spec, self.mixtures = spec, mixtures
        self.event_dims = len(spec.shape)

    def __call__(self, raw: Tensor) -> Any:
        raise NotImplementedError


class _Bernoulli(Observation):
    params = 1

    def __call__(self, raw: Tensor) -> Bernoulli:
        return Bernoulli(raw.squeeze(-1), self.event_dims)


class _Categorical(Observation):
    def __init__(self, spec: DataSpec, mixtures: int = 1):
        super().__init__(spec, mixtures)
        self.params = int(spec.levels or 0)

    def __call__(self, raw: Tensor) -> Categorical:
        return Categorical(raw, self.event_dims)


class _Logistic(Observation):
    params = 2

    def __call__(self, raw: Tensor) -> DiscretizedLogistic:
        loc, log_scale = raw.unbind(-1)
        return DiscretizedLogistic(loc, log_scale.clamp_min(MIN_LOG_SCALE), int(self.spec.levels or 0),
                                   self.event_dims)


class _LogisticMixture(Observation):
    def __init__(self, spec: DataSpec, mixtures: int = 1):
        super().__init__(spec, mixtures)
        self.params = 3 * mixtures

    def __call__(self, raw: Tensor) -> DiscretizedLogisticMixture:
        logits, loc, log_scale = raw.chunk(3, dim=-1)  # each (*, *shape, K)
        return DiscretizedLogisticMixture(logits, loc, log_scale.clamp_min(MIN_LOG_SCALE),
                                          int(self.spec.levels or 0), self.event_dims)


class _Gaussian(Observation):
    params = 2

    def __call__(self, raw: Tensor) -> Normal:
        loc, log_scale = raw.unbind(-1)
        return Normal(loc, torch.exp(log_scale.clamp_min(MIN_LOG_SCALE)), self.event_dims)


_CLASSES: dict[str, type[Observation]] = {
    "bernoulli": _Bernoulli, "categorical": _Categorical, "logistic": _Logistic,
    "logistic_mixture": _LogisticMixture, "gaussian": _Gaussian,
}


def make_observation(spec: DataSpec, name: str = "auto", mixtures: int = 5) -> Observation:
    """The observation model ``name`` for data ``spec`` (``auto``: chosen from the data).

    Raises :class:`ConfigError` when the choice does not fit the data (a discrete
    likelihood on vectors, a density on integer images, Bernoulli on more than 2 levels).
    """
    levels = spec.levels or 0
    if name == "auto":
        name = "gaussian" if not spec.is_image else ("bernoulli" if levels == 2 else "logistic_mixture")
    if name not in _CLASSES:
        raise ConfigError(f"unknown output '{name}'; choices: {', '.join(OBSERVATIONS)}")
    if spec.is_image == (name == "gaussian"):
        kind = "integer images" if spec.is_image else "vector data"
        fits = "bernoulli, categorical, logistic or logistic_mixture" if spec.is_image else "gaussian"
        raise ConfigError(f"output '{name}' does not fit {kind} ({spec.name}); use {fits}")
    if name == "bernoulli" and levels != 2:
        raise ConfigError(f"output 'bernoulli' needs 2 levels, {spec.name} has {levels}; use logistic_mixture")
    if name in ("logistic", "logistic_mixture") and levels < 2:
        raise ConfigError(f"output '{name}' needs at least 2 levels, {spec.name} has {levels}")
    if mixtures < 1:
        raise ConfigError(f"mixtures must be at least 1, got {mixtures}")
    return _CLASSES[name](spec, mixtures)
