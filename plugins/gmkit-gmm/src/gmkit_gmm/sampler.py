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

from typing import Any, ClassVar

import torch
from torch import Tensor

from gmkit_core.data import Dataset
from gmkit_core.errors import ConfigError, DataError

from .em import EMResult, fit_em
from .mixture import COVARIANCES, GaussianMixture
from .options import as_choice, as_float, as_int

__all__ = ["LatentGMMSampler"]

_OWNER = "sampler 'gmm'"


class LatentGMMSampler:
    """Fits ``components`` Gaussians (``covariance``) to the training codes by EM, then decodes draws.

    Options: ``components`` (10), ``covariance`` (``full``), ``reg_covar`` (1e-4, added to
    each covariance diagonal), ``max_iter`` (200), ``tol`` (1e-4 nats per code), ``seed``
    (0, the EM initialisation; the draws use the ``generator`` passed at call time) and
    ``batch_size`` (256, for encoding). The last fit is kept in ``mixture`` and ``result``.
    """

    needs_data: ClassVar[bool] = True

    def __init__(self, components: int = 10, covariance: str = "full", reg_covar: float = 1e-4,
                 max_iter: int = 200, tol: float = 1e-4, seed: int = 0, batch_size: int = 256):
        self.components = as_int(components, "components", _OWNER, 1)
        self.covariance = as_choice(covariance, "covariance", _OWNER, COVARIANCES)
        self.reg_covar = as_float(reg_covar, "reg_covar", _OWNER, 0.0)
        self.max_iter = as_int(max_iter, "max_iter", _OWNER, 1)
        self.tol = as_float(tol, "tol", _OWNER, 0.0)
        self.seed = as_int(seed, "seed", _OWNER)
        self.batch_size = as_int(batch_size, "batch_size", _OWNER, 1)
        self.mixture: GaussianMixture | None = None
        self.result: EMResult | None = None
        self.code_shape: tuple[int, ...] = ()

    @torch.no_grad()
    def codes(self, model: Any, data: Dataset) -> Tensor:
        """``model.encode`` over ``data`` in batches (labels passed as the condition of conditional models): ``(N, *code)``."""
        device = next(model.parameters(), torch.zeros(())).device
        conditional = bool(getattr(model, "conditional", False))
        out = []
        for batch in data.batches(self.batch_size):
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
        mixture = GaussianMixture(z.shape[1], self.components, self.covariance).to(z)
        generator = torch.Generator(device=z.device).manual_seed(self.seed)
        try:
            self.result = fit_em(mixture, z, max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar,
                                 generator=generator)
        except (ValueError, FloatingPointError) as exc:
            raise ConfigError(f"{_OWNER}: EM on {len(data)} codes failed: {exc}") from None
        self.mixture = mixture
        return mixture

    @torch.no_grad()
    def __call__(self, model: Any, n: int, condition: Tensor | None = None,
                 generator: torch.Generator | None = None, data: Dataset | None = None) -> Tensor:
        """``n`` samples like ``model.sample``: fit on ``data``'s codes, draw ``z``, ``model.decode(z)``."""
        if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
            raise ConfigError(f"{_OWNER} needs a model with encode() and decode() (e.g. a VAE); "
                              f"{type(model).__name__} has none")
        if data is None or len(data) == 0:
            raise DataError(f"{_OWNER} needs the training data to fit the latent codes")
        mixture = self.fit(model, data)
        z = mixture.sample(n, generator).reshape(n, *self.code_shape)
        return model.decode(z, condition=condition, generator=generator)
