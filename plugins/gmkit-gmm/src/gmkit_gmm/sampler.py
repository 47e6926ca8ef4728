r"""The ``gmm`` sampler: sample a latent-variable model through a GMM fitted to its codes.

A VAE trained with an :math:`\mathcal N(0, I)` prior leaves the aggregate posterior
:math:`q(z) = \frac1N\sum_n q(z\mid x_n)` far from that prior ("holes"); decoding
draws from a Gaussian mixture fitted to the training codes :math:`z_n = \mathrm{encode}(x_n)`
instead usually gives better samples (Ghosh et al., 2020, arXiv:1903.12436, "ex-post
density estimation"). The model must expose ``encode(x, condition=None) -> (B, D)``
and ``decode(z, condition=None, generator=None) -> samples``.

``gmkit sample RUN.h5 --sampler gmm --option components=10``.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.config import option
from gmkit_core.data import Dataset
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.sampling import ConfiguredSampler

from .em import EMResult, fit_em
from .mixture import COVARIANCES, GaussianMixture

__all__ = ["LatentGMMSampler"]

_OWNER = "sampler 'gmm'"


class LatentGMMSampler(ConfiguredSampler):
    """Fits ``components`` Gaussians (``covariance``) to the training codes by EM, then decodes draws.

    Options (:class:`LatentGMMSampler.Options`, validated like model options):
    ``components`` (10), ``covariance`` (``full``), ``reg_covar`` (1e-4, added to each covariance
    diagonal), ``max_iter`` (200), ``tol`` (1e-4 nats per code), ``seed`` (0, the EM
    initialisation; the draws use the ``generator`` passed at call time) and ``batch_size``
    (256, for encoding). The last fit is kept in ``mixture`` and ``result``.
    """

    name = "gmm"
    needs_data = True

    @attrs.frozen
    class Options:
        components: int = option(10, "mixture components fitted to the codes", v.ge(1))
        covariance: str = option("full", "covariance of each component: full, diag or spherical", v.in_(COVARIANCES))
        reg_covar: float = option(1e-4, "added to each covariance diagonal", v.ge(0.0))
        max_iter: int = option(200, "most EM iterations", v.ge(1))
        tol: float = option(1e-4, "EM stops when the mean log-likelihood changes by less (nats per code)", v.ge(0.0))
        seed: int = option(0, "seed of the EM initialisation")
        batch_size: int = option(256, "examples encoded at a time", v.ge(1))

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.mixture: GaussianMixture | None = None
        self.result: EMResult | None = None
        self.code_shape: tuple[int, ...] = ()

    @staticmethod
    def applies_to(model: Any) -> str | None:
        if callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None)):
            return None
        return f"it needs a model with encode() and decode() (e.g. a VAE); {type(model).__name__} has none"

    @torch.no_grad()
    def codes(self, model: Any, data: Dataset) -> Tensor:
        """``model.encode`` over ``data`` in batches (labels passed as the condition of conditional models): ``(N, *code)``."""
        device = next(model.parameters(), torch.zeros(())).device
        conditional = bool(getattr(model, "conditional", False))
        out = []
        for batch in data.batches(self.options.batch_size):
            batch = batch.to(device)
            z = model.encode(batch.x, condition=batch.y if conditional else None)
            out.append(z)
        return torch.cat(out)

    @torch.no_grad()
    def fit(self, model: Any, data: Dataset) -> GaussianMixture:
        """EM on the codes of ``data``; returns (and keeps) the fitted mixture."""
        z = self.codes(model, data)
        self.code_shape = tuple(z.shape[1:])
        z = z.reshape(z.shape[0], -1)
        mixture = GaussianMixture(z.shape[1], self.options.components, self.options.covariance).to(z)
        generator = torch.Generator(device=z.device).manual_seed(self.options.seed)
        try:
            self.result = fit_em(
                mixture,
                z,
                max_iter=self.options.max_iter,
                tol=self.options.tol,
                reg_covar=self.options.reg_covar,
                generator=generator,
            )
        except (ValueError, FloatingPointError) as exc:
            raise ConfigError(f"{_OWNER}: EM on {len(data)} codes failed: {exc}") from None
        self.mixture = mixture
        return mixture

    @torch.no_grad()
    def __call__(
        self,
        model: Any,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Dataset | None = None,
    ) -> Tensor:
        """``n`` samples like ``model.sample``: fit on ``data``'s codes, draw ``z``, ``model.decode(z)``."""
        why = self.applies_to(model)
        if why:
            raise ConfigError(f"{_OWNER}: {why}")
        if data is None or len(data) == 0:
            raise DataError(f"{_OWNER} needs the training data to fit the latent codes")
        mixture = self.fit(model, data)
        z = mixture.sample(n, generator).reshape(n, *self.code_shape)
        return model.decode(z, condition=condition, generator=generator)
