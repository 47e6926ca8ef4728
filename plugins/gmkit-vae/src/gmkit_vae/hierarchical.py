r"""Markovian hierarchical VAE: ``L`` layers of latents :math:`z_1, \dots, z_L`, each of size ``D``.

.. math::
   p(x, z_{1:L}) = p(x\mid z_1)\,\prod_{t=2}^{L} p(z_{t-1}\mid z_t)\;p(z_L), \qquad
   q(z_{1:L}\mid x) = q(z_1\mid x)\,\prod_{t=2}^{L} q(z_t\mid z_{t-1}),

every conditional a diagonal Gaussian whose mean and log-variance an MLP predicts, and
:math:`p(z_L)` any registered prior. It is the :class:`~gmkit_vae.model.VAE` skeleton with
two pieces swapped: the latent is the concatenation :math:`z = [z_1, \dots, z_L]` ``(*, L*D)``,
the prior over it is :class:`MarkovPrior` and the posterior :class:`MarkovPosterior`; the
bounds are the same functions, with the KL estimated by Monte Carlo,
:math:`\log q(z_{1:L}\mid x) - \log p(z_{1:L})`.

References: Sønderby et al., Ladder VAE (2016, arXiv:1602.02282), section 2;
Luo, Understanding Diffusion Models (2022, arXiv:2208.11970), eq. 23-24.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from attrs import validators as v
from torch import Tensor, nn

from gmkit_core.config import option
from gmkit_core.distributions import Normal
from gmkit_core.heads import Head
from gmkit_core.interfaces import Decoder, Encoder, Prior
from gmkit_core.registry import registry

from .model import VAE, VAEConfig
from .networks import GaussianEncoder, ObservationDecoder, mlp

__all__ = ["HVAE", "HVAEConfig", "GaussianLink", "MarkovPosterior", "MarkovPrior"]


class GaussianLink(nn.Module):
    r""":math:`z_{\mathrm{in}} \mapsto \mathcal N(\mu(z_{\mathrm{in}}), \mathrm{diag}\,\sigma^2(z_{\mathrm{in}}))`: ``(*, D)`` -> Normal over ``(*, D)``."""

    def __init__(self, dim: int, hidden: int, activation: str = "elu"):
        super().__init__()
        self.net = mlp([dim, hidden, 2 * dim], activation)

    def forward(self, z: Tensor) -> Normal:
        loc, logvar = self.net(z).chunk(2, dim=-1)
        return Normal.from_logvar(loc, logvar, event_dims=1)


class MarkovPosterior:
    r""":math:`q(z_{1:L}\mid x) = q(z_1\mid x)\prod_{t\ge2} q(z_t\mid z_{t-1})` over ``z = [z_1..z_L]`` ``(*, B, L*D)``."""

    def __init__(self, first: Normal, links: nn.ModuleList):
        self.first, self.links = first, links
        self.dim = first.loc.shape[-1]

    def rsample(self, generator: torch.Generator | None = None, sample_shape: tuple[int, ...] = ()) -> Tensor:
        z = self.first.rsample(generator, sample_shape)  # (*, B, D)
        layers = [z]
        for link in self.links:
            z = link(z).rsample(generator)
            layers.append(z)
        return torch.cat(layers, dim=-1)  # (*, B, L*D)

    def log_prob(self, z: Tensor) -> Tensor:
        layers = z.split(self.dim, dim=-1)
        out = self.first.log_prob(layers[0])
        for link, below, above in zip(self.links, layers[:-1], layers[1:], strict=True):
            out = out + link(below).log_prob(above)
        return out

    @property
    def top_mean(self) -> Tensor:
        r"""Means propagated up the chain, :math:`m_1 = \mu_1(x)`, :math:`m_t = \mu_t(m_{t-1})`: ``(B, D)``."""
        m = self.first.loc
        for link in self.links:
            m = link(m).loc
        return m


class MarkovEncoder(Encoder):
    """``x, y -> q(z_{1:L} | x, y)``: a :class:`GaussianEncoder` for ``z_1`` and ``L-1`` upward links."""

    def __init__(self, first: GaussianEncoder, links: nn.ModuleList):
        super().__init__()
        self.first, self.links = first, links

    def forward(self, x: Tensor, condition: Tensor | None = None) -> MarkovPosterior:
        return MarkovPosterior(self.first(x, condition), self.links)


class MarkovPrior(Prior):
    r""":math:`p(z_{1:L}) = p(z_L)\prod_{t\ge2} p(z_{t-1}\mid z_t)` over ``z = [z_1..z_L]`` ``(B, L*D)``.

    ``top`` is :math:`p(z_L)` (a :class:`~gmkit_core.interfaces.Prior` over ``D``);
    ``links[t-2]`` is :math:`p(z_{t-1}\mid z_t)`.
    """

    def __init__(self, top: Prior, links: nn.ModuleList, dim: int):
        super().__init__()
        self.top, self.links, self.dim = top, links, dim

    def log_prob(self, z: Tensor) -> Tensor:
        layers = z.split(self.dim, dim=-1)
        out = self.top.log_prob(layers[-1])
        for link, below, above in zip(self.links, layers[:-1], layers[1:], strict=True):
            out = out + link(above).log_prob(below)
        return out

    def descend(self, top: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral draw of ``z_{L-1}, ..., z_1`` below a given ``z_L`` ``(n, D)`` -> ``(n, L*D)``."""
        layers = [top]
        for link in reversed(self.links):
            layers.insert(0, link(layers[0]).sample(generator))
        return torch.cat(layers, dim=-1)

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if condition is not None:
            raise ValueError("the Markov prior is unconditional")
        with torch.no_grad():
            return self.descend(self.top.sample(n, generator=generator), generator)


class FirstLayerDecoder(Decoder):
    r""":math:`p(x\mid z_1)`: the wrapped decoder applied to the first ``D`` entries of ``z = [z_1..z_L]``."""

    def __init__(self, decoder: ObservationDecoder, dim: int):
        super().__init__()
        self.decoder, self.dim = decoder, dim

    def forward(self, z: Tensor, condition: Tensor | None = None):
        return self.decoder(z[..., : self.dim], condition)


@attrs.frozen
class HVAEConfig(VAEConfig):
    """``vae`` options (``latent_dim`` is the size of each layer, ``prior`` is p(z_L)) plus the depth."""

    layers: int = option(2, "number L of latent layers", v.ge(2))
    link_hidden: int = option(128, "hidden width of the MLPs of p(z_{t-1}|z_t) and q(z_t|z_{t-1})", v.gt(0))


class HVAE(VAE):
    """Markovian hierarchical VAE; see the module docstring."""

    Config = HVAEConfig
    prior: MarkovPrior

    def build(self, observation: Head, options: dict[str, Any]) -> None:
        c, d = self.config, self.config.latent_dim

        def links() -> nn.ModuleList:
            return nn.ModuleList(GaussianLink(d, c.link_hidden, c.activation) for _ in range(c.layers - 1))

        self.encoder = MarkovEncoder(GaussianEncoder(self.data, d, **options), links())
        self.decoder = FirstLayerDecoder(ObservationDecoder(self.data, d, observation, **options), d)
        self.prior = MarkovPrior(registry.get("prior", c.prior, shape=d), links(), d)

    @property
    def latent_prior(self) -> Prior:
        """:math:`p(z_L)`, the prior of the top latent that :meth:`encode` and :meth:`decode` speak of."""
        return self.prior.top

    @torch.no_grad()
    def encode(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """Means ``(B, D)`` of the top latent ``z_L`` propagated up the posterior chain."""
        with self._evaluating():
            return self.encoder(x, condition).top_mean

    @torch.no_grad()
    def decode(self, z: Tensor, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``z_L`` ``(n, D)`` -> ancestral draw of ``z_{L-1..1}`` -> ``x ~ p(x|z_1)``, shaped like :meth:`sample`."""
        with self._evaluating():
            return self.decoder(self.prior.descend(z, generator), condition).sample(generator)
