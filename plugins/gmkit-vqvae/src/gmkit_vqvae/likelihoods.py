r"""Decoder likelihoods :math:`p(x \mid z_q)` on images with ``L`` integer levels.

A :class:`Likelihood` says how many parameter channels ``P`` the decoder emits
per pixel and turns parameters ``(B, P, H, W)`` into a distribution over
``x`` ``(B, C, H, W)`` built from :mod:`gmkit_core.distributions`:

- ``categorical``: ``P = C L`` logits, :math:`p(x) = \prod \mathrm{softmax}(\ell)_{x}`;
- ``logistic``: ``P = 2C``, a discretised logistic per pixel;
- ``logistic_mixture``: ``P = 3MC``, a mixture of ``M`` discretised logistics per pixel
  (Salimans et al., 2017, arXiv:1701.05517);
- ``mse``: ``P = C`` means :math:`\hat x` in :math:`[-1, 1]`, trained by the squared
  error :math:`\lVert \tilde x - \hat x \rVert^2` with :math:`\tilde x = 2x/(L-1) - 1`.
  It is not a normalised likelihood, so a model using it reports no NLL.

The first three are probability masses on the stored levels, so
:math:`-\log p(x \mid z_q)` in nats enters a true bound on :math:`-\log p(x)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gmkit_core.distributions import (
    Categorical,
    DiscretizedLogistic,
    DiscretizedLogisticMixture,
    to_unit_interval,
)

__all__ = ["LIKELIHOODS", "Likelihood", "DecodedImage"]

LIKELIHOODS = ("logistic_mixture", "logistic", "categorical", "mse")
_MIN_LOG_SCALE = -7.0  # keeps discretised logistics finite; far below a bin's half-width 1/(L-1)


class Likelihood:
    """Parameters ``(B, P, H, W)`` -> a distribution over ``(B, C, H, W)`` levels in ``[0, L)``.

    ``kind`` is one of :data:`LIKELIHOODS`; ``mixtures`` is ``M`` for ``logistic_mixture``.
    """

    def __init__(self, kind: str, channels: int, levels: int, mixtures: int = 1):
        if kind not in LIKELIHOODS:
            raise ValueError(f"decoder likelihood must be one of {', '.join(LIKELIHOODS)}, got {kind!r}")
        self.kind, self.channels, self.levels, self.mixtures = kind, channels, levels, mixtures

    @property
    def normalised(self) -> bool:
        """Whether ``log_prob`` is a probability mass on the levels (False for ``mse``)."""
        return self.kind != "mse"

    @property
    def param_channels(self) -> int:
        C, L, M = self.channels, self.levels, self.mixtures
        return {"categorical": C * L, "logistic": 2 * C, "logistic_mixture": 3 * M * C, "mse": C}[self.kind]

    def distribution(self, params: Tensor, event_dims: int | None = None) -> Any:
        """The :mod:`gmkit_core.distributions` object for ``params`` (not for ``mse``)."""
        B, _, H, W = params.shape
        C, L, M = self.channels, self.levels, self.mixtures
        if self.kind == "categorical":
            logits = params.reshape(B, C, L, H, W).permute(0, 1, 3, 4, 2)  # (B, C, H, W, L)
            return Categorical(logits, event_dims)
        if self.kind == "logistic":
            loc, log_scale = params.reshape(B, 2, C, H, W).unbind(1)  # (B, C, H, W) each
            return DiscretizedLogistic(loc, log_scale.clamp_min(_MIN_LOG_SCALE), L, event_dims)
        if self.kind == "logistic_mixture":
            w, loc, log_scale = params.reshape(B, 3, C, M, H, W).permute(1, 0, 2, 4, 5, 3)  # (B, C, H, W, M)
            return DiscretizedLogisticMixture(w, loc, log_scale.clamp_min(_MIN_LOG_SCALE), L, event_dims)
        raise ValueError("the squared-error decoder has no distribution")


def _bin(y: Tensor, levels: int) -> Tensor:
    """Nearest level to ``y`` in :math:`[-1, 1]`: ``round((y+1)(L-1)/2)`` clamped to ``[0, L)``."""
    return torch.round((y + 1) * ((levels - 1) / 2)).clamp(0, levels - 1).long()


class DecodedImage:
    r""":math:`p(x \mid z_q)` for one batch: ``log_prob``, ``squared_error``, ``sample`` and ``mode``."""

    def __init__(self, likelihood: Likelihood, params: Tensor):
        self.likelihood, self.params = likelihood, params

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x | z_q)`` ``(B,)`` nats on the stored levels ``x`` ``(B, C, H, W)``."""
        if not self.likelihood.normalised:
            raise ValueError("the squared-error decoder has no likelihood")
        return self.likelihood.distribution(self.params).log_prob(x)

    def squared_error(self, x: Tensor) -> Tensor:
        r""":math:`\lVert \tilde x - \hat x \rVert^2` ``(B,)`` in :math:`[-1,1]` units, :math:`\hat x` the mean (``mse``) or :meth:`mode`."""
        mean = self.params if not self.likelihood.normalised else to_unit_interval(self.mode(), self.likelihood.levels)
        return (to_unit_interval(x, self.likelihood.levels).to(mean.dtype) - mean).square().sum((1, 2, 3))

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``(B, C, H, W)`` int64; the squared-error decoder returns its rounded mean."""
        if not self.likelihood.normalised:
            return _bin(self.params, self.likelihood.levels)
        return self.likelihood.distribution(self.params).sample(generator)

    @torch.no_grad()
    def mode(self) -> Tensor:
        """The most probable level of each pixel ``(B, C, H, W)`` int64 (rounded mean for ``mse``)."""
        L = self.likelihood.levels
        if not self.likelihood.normalised:
            return _bin(self.params, L)
        per_pixel = self.likelihood.distribution(self.params, event_dims=0)
        B, _, H, W = self.params.shape
        level = torch.zeros((B, self.likelihood.channels, H, W), dtype=torch.long, device=self.params.device)
        scores = torch.stack([per_pixel.log_prob(level + k) for k in range(L)], -1)  # (B, C, H, W, L)
        return scores.argmax(-1)

