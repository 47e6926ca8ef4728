r"""The ``gmm`` model: a Gaussian mixture over vectors or flattened, dequantised images.

Vectors :math:`x \in \mathbb R^D` are modelled directly, :math:`p(x) = \sum_k \pi_k \mathcal N(x;\mu_k,\Sigma_k)`,
and :meth:`GMM.nll` is the exact :math:`-\log p(x)`.

Images :math:`x \in \{0..L-1\}^{C\times H\times W}` are flattened to :math:`D = CHW`, dequantised,
:math:`y = (x+u)/L`, and (unless ``logit_alpha = 0``) mapped to
:math:`z = \operatorname{logit}(\alpha + (1-2\alpha) y)`; the mixture models :math:`z`. Then

.. math::

    -\log P(x) \le \mathbb E_u\big[-\log p(z) - \log|\det \partial z/\partial y|\big] + D \log L,

and :meth:`GMM.nll` returns the ``eval_samples``-draw importance-weighted estimate
:math:`-\log \frac1S\sum_s p(z_s)|\det \partial z_s/\partial y_s| + D\log L`, whose expectation
is an upper bound on :math:`-\log P(x)` that tightens as :math:`S` grows (for :math:`S = 1` it is
the plain dequantisation bound; Theis et al., 2016, arXiv:1511.01844). The class declares
``likelihood = {"vector": "exact", "image": "bound"}``, so ``evaluate()`` reports ``exact: true``
on vectors. The logit is the core's :class:`~gmkit_core.transforms.Logit`.

Fitting: ``fit="em"`` runs EM in :meth:`GMM.prepare` (no optimiser steps needed);
``fit="gradient"`` initialises there with k-means++ and leaves the rest to the trainer,
which minimises :meth:`GMM.loss`, the mean negative log-likelihood (the one-draw bound on images).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.config import option
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import bits_per_dim, dequantization_nats, dequantize, quantize
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel
from gmkit_core.transforms import Logit

from .em import fit_em, initialize
from .mixture import COVARIANCES, GaussianMixture

__all__ = ["GMMConfig", "GMM", "REG_LOGIT", "REG_PLAIN"]

#: Default ``reg_covar`` for images modelled in logit space: a strong smoother, since with
#: ~1000 training images of 64 pixels a full covariance per component is barely determined;
#: 0.3 is what the validation split of digits prefers (docs/models/gmm.md).
REG_LOGIT = 0.3
#: Default elsewhere (vectors, images with ``logit_alpha = 0``): a guard against singular covariances.
REG_PLAIN = 1e-6


@attrs.frozen
class GMMConfig:
    """Options of the ``gmm`` model (``--set key=value``)."""

    components: int = option(10, "number of mixture components K", v.ge(1))
    covariance: str = option("full", "covariance of each component: full, diag or spherical", v.in_(COVARIANCES))
    fit: str = option(
        "em",
        "em: EM in prepare, no optimiser steps; gradient: k-means++ init, then the trainer's steps",
        v.in_(("em", "gradient")),
    )
    reg_covar: float | None = option(
        None,
        "added to every covariance diagonal in EM, in the modelled space; "
        f"default: {REG_LOGIT} on images in logit space, else {REG_PLAIN}",
        v.optional(v.ge(0.0)),
    )
    max_iter: int = option(200, "most EM iterations per restart", v.ge(1))
    tol: float = option(1e-4, "EM stops when the mean log-likelihood changes by less (nats per example)", v.gt(0.0))
    kmeans_iterations: int = option(10, "Lloyd iterations after k-means++ seeding", v.ge(0))
    restarts: int = option(1, "EM runs from different seeds; the best training likelihood is kept", v.ge(1))
    seed: int = option(0, "seed of the initialisation, the EM dequantisation noise and nll's noise")
    logit_alpha: float = option(
        0.01, "images: model logit(a + (1-2a) y) of the dequantised y; 0 models y itself", [v.ge(0.0), v.lt(0.5)]
    )
    dequant_copies: int = option(4, "images: dequantised copies of the training set EM fits", v.ge(1))
    eval_samples: int = option(1, "images: dequantisation draws per example in nll (1 = plain bound)", v.ge(1))


class GMM(GenerativeModel):
    """Gaussian mixture model; see the module docstring for the likelihood accounting."""

    Config = GMMConfig
    #: the density itself on vectors; a dequantisation bound on images
    likelihood: ClassVar[str | dict[str, str]] = {"vector": "exact", "image": "bound"}
    train_defaults: ClassVar[dict[str, Any]] = {"steps": 0}

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """More than 256 dimensions (e.g. 28 x 28 or 3 x 32 x 32 images): diagonal covariances, since a full
        D x D covariance per component costs O(N D^2) per EM step and O(D^2) memory."""
        return {"covariance": "diag"} if data.dims > 256 else {}

    def __init__(self, config: GMMConfig, data: DataSpec):
        super().__init__(config, data)
        if data.is_image and not data.levels:
            raise DataError(f"{data.name}: gmm needs the number of levels of image data")
        self.mixture = GaussianMixture(data.dims, config.components, config.covariance)
        self.logit = Logit(config.logit_alpha) if data.is_image and config.logit_alpha > 0 else None

    @property
    def reg_covar(self) -> float:
        """The ``reg_covar`` in force: the config's, or the default for this data kind."""
        if self.config.reg_covar is not None:
            return float(self.config.reg_covar)
        return REG_LOGIT if self.logit is not None else REG_PLAIN

    # -- data <-> the space the mixture models --------------------------------------
    def _to_latent(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        r"""``x`` -> (``z`` ``(B, D)``, ``offset`` ``(B,)``) with :math:`\log p(\text{data}) = \log p(z) + \text{offset}`."""
        dtype = self.mixture.loc.dtype
        if not self.data.is_image:
            z = x.reshape(x.shape[0], -1).to(dtype)
            return z, z.new_zeros(z.shape[0])
        levels = int(self.data.levels)  # type: ignore[arg-type]
        y = dequantize(x, levels, generator).reshape(x.shape[0], -1).to(dtype)
        offset = y.new_full((y.shape[0],), -dequantization_nats(self.data.dims, levels))
        if self.logit is None:
            return y, offset
        z, ladj = self.logit(y)
        return z, offset + ladj

    def _log_density(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One-draw estimate: exact ``log p(x)`` on vectors, the dequantisation lower bound on images; ``(B,)``."""
        z, offset = self._to_latent(x, generator)
        return self.mixture.log_prob(z) + offset

    def _generator(self, device: torch.device, stream: int) -> torch.Generator:
        """Seeded noise: stream 0 fits (initialisation, training dequantisation), stream 1 evaluates.

        Separate streams keep the evaluation noise independent of the noise the mixture was fitted to.
        """
        return torch.Generator(device=device).manual_seed(2 * self.config.seed + stream)

    # -- the GenerativeModel contract ---------------------------------------------------
    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """Mean negative log-likelihood in nats (images: one fresh dequantisation draw)."""
        nll = -self._log_density(batch.x)
        out = {"loss": nll.mean()}
        if self.data.is_image:
            out["bits_per_dim"] = bits_per_dim(out["loss"].detach(), self.data.dims)
        return out

    @torch.no_grad()
    def nll(self, batch: Batch) -> Tensor:
        """``(B,)`` nats: exact on vectors; on images the ``eval_samples``-draw bound, seeded by ``seed``."""
        if not self.data.is_image:
            return -self._log_density(batch.x)
        generator = self._generator(batch.x.device, 1)
        draws = torch.stack([self._log_density(batch.x, generator) for _ in range(self.config.eval_samples)])
        return math.log(self.config.eval_samples) - torch.logsumexp(draws, 0)

    @torch.no_grad()
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws: floats ``(n, D)`` for vectors, int64 levels ``(n, C, H, W)`` for images."""
        if condition is not None:
            raise ConfigError("gmm is unconditional: it takes no label or condition")
        z = self.mixture.sample(n, generator)
        if not self.data.is_image:
            return z.reshape(n, *self.data.shape)
        y = self.logit.inverse(z)[0] if self.logit is not None else z
        return quantize(y, int(self.data.levels or 0)).reshape(n, *self.data.shape)

    @torch.no_grad()
    def prepare(self, train: Dataset) -> None:
        """EM fit (``fit="em"``, best of ``restarts``) or k-means++ initialisation (``fit="gradient"``)."""
        cfg = self.config
        device = self.mixture.loc.device
        generator = self._generator(device, 0)
        x = train.x.to(device)
        copies = cfg.dequant_copies if self.data.is_image else 1
        reg = self.reg_covar
        latents = [self._to_latent(x, generator) for _ in range(copies)]
        z = torch.cat([latent for latent, _ in latents])
        #: Mean of log p(data) - log p(z) over the fitted points (0 on vectors; images: dequantisation and logit terms).
        self.em_offset = float(torch.cat([offset for _, offset in latents]).double().mean())
        if z.shape[0] < cfg.components:
            raise ConfigError(
                f"gmm: components={cfg.components} needs at least as many training points; "
                f"{train.describe()} gives {z.shape[0]}"
            )
        results, states = [], []
        try:
            if cfg.fit == "gradient":
                initialize(self.mixture, z, reg, cfg.kmeans_iterations, generator)
                return
            for _ in range(cfg.restarts):
                results.append(
                    fit_em(
                        self.mixture,
                        z,
                        max_iter=cfg.max_iter,
                        tol=cfg.tol,
                        reg_covar=reg,
                        kmeans_iterations=cfg.kmeans_iterations,
                        generator=generator,
                    )
                )
                states.append({k: t.clone() for k, t in self.mixture.state_dict().items()})
        except (ValueError, FloatingPointError) as exc:
            raise ConfigError(f"gmm: fitting {train.describe()} failed: {exc}") from None
        best = max(range(cfg.restarts), key=lambda i: results[i].final)
        self.mixture.load_state_dict(states[best])
        #: The kept run's EM trace (mean training log-likelihood per iteration, in the modelled space).
        self.em_result = results[best]

    def fit_history(self) -> dict[str, dict[str, list[float]]]:
        r"""The EM fit as run history, ``{"em": {"iteration": [0..N], "log_likelihood": [...]}}``; ``{}`` without EM.

        ``log_likelihood[i]`` is the mean training log-likelihood after ``i`` M-steps in nats per example
        on the data: the EM trace :math:`\ell_i` plus ``em_offset`` (zero on vectors; on images the
        dequantisation and logit terms, so it is the one-draw dequantisation bound on the fitted noise draws).
        """
        result = getattr(self, "em_result", None)
        if result is None:
            return {}
        return {
            "em": {
                "iteration": [float(i) for i in range(len(result.log_likelihood))],
                "log_likelihood": [ll + self.em_offset for ll in result.log_likelihood],
            }
        }

    def describe_fit(self) -> str | None:
        """One line on the EM fit (``EM: N iterations, log-likelihood L nats/example ...``); None without EM."""
        result = getattr(self, "em_result", None)
        if result is None:
            return None
        state = "converged" if result.converged else f"not converged within max_iter={self.config.max_iter}"
        restarts = f", best of {self.config.restarts} restarts" if self.config.restarts > 1 else ""
        plural = "" if result.iterations == 1 else "s"
        return (
            f"EM: {result.iterations} iteration{plural}, log-likelihood {result.final + self.em_offset:.4f} "
            f"nats/example on the training data ({state}{restarts})"
        )

    def describe(self) -> str:
        cfg = self.config
        return f"GMM (K={cfg.components}, {cfg.covariance}, fit={cfg.fit}; {sum(p.numel() for p in self.parameters()):,} parameters)"
