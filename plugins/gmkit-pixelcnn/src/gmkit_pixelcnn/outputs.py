r"""Output laws :math:`p(x_{i,c} \mid x_{<(i,c)})` over the ``L`` levels of one sub-pixel.

The network emits ``P`` parameters per sub-pixel, ``params``: ``(*, P)``.

- ``categorical``: ``P = L`` logits, :math:`p(k) = \mathrm{softmax}(\ell)_k`;
  any number of levels, no order assumed (right for codebook indices).
- ``logistic_mixture``: ``P = 3M``, a mixture of ``M`` discretised logistics
  on the bins of ``[-1, 1]`` (PixelCNN++, Salimans et al., 2017,
  arXiv:1701.05517), :math:`p(k) = \sum_m \pi_m [\sigma((c_k + h - \mu_m)/s_m) - \sigma((c_k - h - \mu_m)/s_m)]`
  with open outer bins; few parameters for many ordered levels (e.g. 256).
  Channels within a pixel are coupled through the network's channel masks
  (each channel's mixture is computed from the earlier channels), not through
  PixelCNN++'s linear mean coupling.

Both sum to one over the levels exactly; the shared math lives in
:mod:`gmkit_core.distributions`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmkit_core.distributions import Categorical, DiscretizedLogisticMixture, sample_categorical
from gmkit_core.errors import ConfigError

__all__ = ["OUTPUTS", "CategoricalOutput", "LogisticMixtureOutput", "make_output"]

# PixelCNN++ bounds the log-scales from below so bins stay resolvable.
MIN_LOG_SCALE = -7.0


class CategoricalOutput:
    """``L`` logits per sub-pixel."""

    def __init__(self, levels: int):
        self.levels = levels
        self.params_per_dim = levels

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """``params``: ``(B, C, H, W, L)``, ``x``: ``(B, C, H, W)`` -> ``(B,)`` nats."""
        return Categorical(params).log_prob(x)

    def log_probs(self, params: Tensor) -> Tensor:
        """``log p(k)`` for every level: ``(*, P)`` -> ``(*, L)``."""
        return torch.log_softmax(params, dim=-1)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One level per row of ``params`` ``(n, P)`` -> ``(n,)`` int64."""
        return sample_categorical(params, generator)


class LogisticMixtureOutput:
    """``3M`` parameters per sub-pixel: mixture logits, locations, log-scales."""

    def __init__(self, levels: int, mixtures: int):
        self.levels, self.mixtures = levels, mixtures
        self.params_per_dim = 3 * mixtures

    def law(self, params: Tensor, event_dims: int | None = None) -> DiscretizedLogisticMixture:
        logits, loc, log_scale = params.chunk(3, dim=-1)
        return DiscretizedLogisticMixture(logits, loc, log_scale.clamp_min(MIN_LOG_SCALE), self.levels, event_dims)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.law(params).log_prob(x)

    def log_probs(self, params: Tensor) -> Tensor:
        grid = torch.arange(self.levels, device=params.device).expand(*params.shape[:-1], self.levels)  # (*, L)
        expanded = params.unsqueeze(-2).expand(*params.shape[:-1], self.levels, params.shape[-1])  # (*, L, P)
        return self.law(expanded, event_dims=0).log_prob(grid)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.law(params).sample(generator)


OUTPUTS = ("categorical", "logistic_mixture")


def make_output(kind: str, levels: int, mixtures: int = 5) -> CategoricalOutput | LogisticMixtureOutput:
    if kind == "categorical":
        return CategoricalOutput(levels)
    if kind == "logistic_mixture":
        if levels < 2:
            raise ConfigError("output 'logistic_mixture' needs at least 2 levels")
        return LogisticMixtureOutput(levels, mixtures)
    raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, got '{kind}'")
