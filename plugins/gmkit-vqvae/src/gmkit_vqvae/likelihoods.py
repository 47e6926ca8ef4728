r"""The decoder's output :math:`p(x \mid z_q)` on images with ``L`` integer levels.

The decoder emits ``P`` parameters per sub-pixel as ``(B, C P, H, W)`` (channel
``c``'s ``P`` contiguous), which :func:`gmkit_core.heads.channels_last` lays out for a
core observation head (``categorical``, ``logistic`` or ``logistic_mixture``,
:mod:`gmkit_core.heads`): probability masses on the stored levels, so
:math:`-\log p(x \mid z_q)` in nats enters a true bound on :math:`-\log p(x)`.

The one VQ-VAE-specific decoder is ``mse`` (``head = None``, ``P = 1``): means
:math:`\hat x` in :math:`[-1, 1]` trained by the squared error
:math:`\lVert \tilde x - \hat x \rVert^2`, :math:`\tilde x = 2x/(L-1) - 1`. It is not a
normalised likelihood, so a model using it reports no NLL.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmkit_core.distributions import quantize, to_unit_interval
from gmkit_core.heads import Head, channels_last

__all__ = ["DECODERS", "DecodedImage"]

DECODERS = ("logistic_mixture", "logistic", "categorical", "mse")


class DecodedImage:
    r""":math:`p(x \mid z_q)` for one batch of parameters ``(B, C P, H, W)``: ``log_prob``, ``squared_error``, ``sample``, ``mode``.

    ``head``: the core observation head, or ``None`` for the squared-error decoder.
    """

    def __init__(self, head: Head | None, params: Tensor, levels: int):
        self.head, self.params, self.levels = head, params, levels

    def _raw(self) -> Tensor:
        """``(B, C, H, W, P)`` parameters of each sub-pixel."""
        assert self.head is not None
        return channels_last(self.params, self.params.shape[1] // self.head.params)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p(x | z_q)`` ``(B,)`` nats on the stored levels ``x`` ``(B, C, H, W)``."""
        if self.head is None:
            raise ValueError("the squared-error decoder has no likelihood")
        return self.head(self._raw()).log_prob(x)

    def squared_error(self, x: Tensor) -> Tensor:
        r""":math:`\lVert \tilde x - \hat x \rVert^2` ``(B,)`` in :math:`[-1,1]` units, :math:`\hat x` the mean (``mse``) or :meth:`mode`."""
        mean = self.params if self.head is None else to_unit_interval(self.mode(), self.levels)
        return (to_unit_interval(x, self.levels).to(mean.dtype) - mean).square().sum((1, 2, 3))

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``(B, C, H, W)`` int64; the squared-error decoder returns its rounded mean."""
        if self.head is None:
            return quantize(self.params, self.levels, centred=True)
        return self.head(self._raw()).sample(generator)

    @torch.no_grad()
    def mode(self) -> Tensor:
        """The most probable level of each sub-pixel ``(B, C, H, W)`` int64 (rounded mean for ``mse``)."""
        if self.head is None:
            return quantize(self.params, self.levels, centred=True)
        return self.head.log_probs(self._raw()).argmax(-1)
