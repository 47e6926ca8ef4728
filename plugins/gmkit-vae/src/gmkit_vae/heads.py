r"""``rgb_mixture``: the PixelCNN++ pixel distribution, channels coupled within a pixel.

The core's ``logistic_mixture`` head models every sub-pixel independently given ``z``. For
colour images (``C <= 3`` channels) this head instead takes, per pixel, a mixture of ``K``
components shared by the channels, and within a component conditions each channel on the
ones before it through a linear shift of its mean (Salimans et al., 2017, arXiv:1701.05517):

.. math::

   P(x) = \sum_k \pi_k \prod_{c} P_{\mathrm{logistic}}\big(x_c;\ \mu_{kc} +
          \textstyle\sum_{c' < c} a_{k c c'}\, u(x_{c'}),\ s_{kc}\big),

with :math:`u(x) = 2x/(L-1) - 1` the bin centre and each factor a discretised logistic on the
``L`` levels (outer bins to infinity). Each factor sums to one over its channel given the
channels before it, so ``P`` sums to one over the ``L^C`` colours of a pixel.

Raw layout: ``(B, C, H, W, 4K)``; channel ``c``'s ``4K`` numbers are ``[logits_c, loc_c,
log_scale_c, coeff_c]``. The mixture logits are ``sum_c logits_c``; the coupling coefficients
are ``tanh`` of ``coeff``: for 3 channels ``a_10 = coeff_1``, ``a_20 = coeff_0``, ``a_21 = coeff_2``;
for 2 channels ``a_10 = coeff_1`` (the other slots are unused).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gmkit_core.distributions import DiscretizedLogistic, sample_categorical, to_unit_interval
from gmkit_core.errors import ConfigError
from gmkit_core.heads import MIN_LOG_SCALE, Head

__all__ = ["RGBMixture", "RGBMixtureHead", "VAE_HEADS"]

#: (channel, earlier channel) -> the channel slot whose ``coeff`` holds :math:`a_{c c'}`
_COEFF_SLOT = {(1, 0): 1, (2, 0): 0, (2, 1): 2}


class RGBMixture:
    """The distribution over images ``(*, C, H, W)`` given raw ``(*, C, H, W, 4K)``; see the module docstring."""

    def __init__(self, raw: Tensor, levels: int, mixtures: int):
        k = mixtures
        self.levels, self.channels = levels, raw.shape[-4]
        per_pixel = raw.movedim(-4, -2)  # (*, H, W, C, 4K)
        self.logits = per_pixel[..., :k].sum(-2)  # (*, H, W, K)
        self.loc = per_pixel[..., k : 2 * k]  # (*, H, W, C, K)
        self.log_scale = per_pixel[..., 2 * k : 3 * k].clamp_min(MIN_LOG_SCALE)
        self.coeff = torch.tanh(per_pixel[..., 3 * k :])

    def _means(self, u: Tensor) -> Tensor:
        """Component means ``(*, H, W, C, K)`` given the bin centres ``u`` ``(*, H, W, C)`` of the channels."""
        means = [self.loc[..., 0, :]]
        for c in range(1, self.channels):
            m = self.loc[..., c, :]
            for e in range(c):
                m = m + self.coeff[..., _COEFF_SLOT[(c, e)], :] * u[..., e : e + 1]
            means.append(m)
        return torch.stack(means, dim=-2)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log P(x)`` ``(*,)`` nats, summed over the pixels of ``x`` ``(*, C, H, W)``."""
        xp = x.movedim(-3, -1)  # (*, H, W, C)
        u = to_unit_interval(xp, self.levels, self.loc.dtype)
        per = DiscretizedLogistic(self._means(u), self.log_scale, self.levels)._log_probs_per_dim(xp.unsqueeze(-1))
        ll = torch.logsumexp(torch.log_softmax(self.logits, -1) + per.sum(-2), dim=-1)  # (*, H, W)
        return ll.flatten(-2).sum(-1)

    @torch.no_grad()
    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``(*, C, H, W)`` (int64 levels): a component per pixel, then the channels in order."""
        k = sample_categorical(self.logits, generator)[..., None, None]  # (*, H, W, 1, 1)
        pick = k.expand(*self.loc.shape[:-1], 1)

        def chosen(t: Tensor) -> Tensor:
            return t.gather(-1, pick).squeeze(-1)  # (*, H, W, C)

        loc, log_scale, coeff = chosen(self.loc), chosen(self.log_scale), chosen(self.coeff)
        out: list[Tensor] = []
        for c in range(self.channels):
            m = loc[..., c]
            for e in range(c):
                m = m + coeff[..., _COEFF_SLOT[(c, e)]] * to_unit_interval(out[e], self.levels, m.dtype)
            out.append(DiscretizedLogistic(m, log_scale[..., c], self.levels).sample(generator))
        return torch.stack(out, dim=-1).movedim(-1, -3)


class RGBMixtureHead(Head):
    """``rgb_mixture``: :class:`RGBMixture` over ``(C, H, W)`` images with ``C <= 3``; ``4K`` numbers per sub-pixel."""

    name = "rgb_mixture"

    def __init__(self, levels: int, mixtures: int = 5, event_dims: int | None = 3):
        if event_dims != 3:
            raise ConfigError("output 'rgb_mixture' models (C, H, W) images")
        super().__init__(levels, event_dims)
        self.mixtures = int(mixtures)

    @property
    def params(self) -> int:
        return 4 * self.mixtures

    def build(self, raw: Tensor, event_dims: int | None) -> RGBMixture:
        return RGBMixture(raw, self.levels, self.mixtures)


#: output choices the VAE adds to the core's heads
VAE_HEADS = ("rgb_mixture",)


def check_rgb(shape: tuple[int, ...], levels: int | None) -> None:
    """A ConfigError unless the data are images ``(C, H, W)`` with ``C <= 3`` and at least 2 levels."""
    if len(shape) != 3 or shape[0] > 3 or not levels or levels < 2:
        raise ConfigError(
            f"output 'rgb_mixture' needs images of shape (C, H, W) with at most 3 channels and integer levels, "
            f"got shape {shape} with levels {levels}; use logistic_mixture"
        )
