r"""The VAE skeleton and its small variants: ``vae``, ``beta_vae``, ``cvae`` and ``iwae``.

A :class:`VAE` is an encoder :math:`q_\phi(z\mid x)`, a decoder :math:`p_\theta(x\mid z)`
and a prior :math:`p(z)` (any registered prior, by name), trained on the ELBO
(:mod:`gmkit_vae.bounds`) with the KL weighted by a linear warm-up
:math:`w_t = \beta \min(1, t / T_{\mathrm{warm}})`:

.. math:: \text{loss} = -\frac1B\sum_b \big(\log p(x_b\mid z_b) - w_t\,\mathrm{KL}(q(z\mid x_b)\,\|\,p(z))\big).

``nll`` is :math:`-\mathcal L(x)` (the ELBO with weight 1) in nats on the discrete data as
stored, an upper bound on :math:`-\log p(x)`; ``evaluate`` adds the tighter IWAE-k bound.
The variants change one piece each: ``beta_vae`` the weight :math:`\beta`, ``cvae`` feeds
labels to encoder and decoder, ``iwae`` trains on :math:`\mathcal L_k`, and ``hvae``
(:mod:`gmkit_vae.hierarchical`) swaps in a Markov chain of latents.

References: Kingma & Welling (2014, arXiv:1312.6114); Higgins et al., beta-VAE (ICLR 2017);
Sohn et al., conditional VAE (NeurIPS 2015); Burda et al., IWAE (2016, arXiv:1509.00519);
Bowman et al. (2016, arXiv:1511.06349) and Sønderby et al. (2016, arXiv:1602.02282) for KL warm-up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
import torch
from attrs import validators as v
from torch import Tensor, nn

from gmkit_core.config import option
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.errors import DataError
from gmkit_core.heads import HEADS, Head, make_head
from gmkit_core.interfaces import GenerativeModel, Prior, bits_per_dim
from gmkit_core.registry import registry

from .bounds import ELBO, elbo, iwae
from .heads import VAE_HEADS, RGBMixtureHead, check_rgb
from .networks import ACTIVATIONS, NETWORKS, GaussianEncoder, ObservationDecoder, choose_network

__all__ = ["VAE", "VAEConfig", "BetaVAE", "BetaVAEConfig", "CVAE", "IWAE", "IWAEConfig"]

#: Seed of the fixed noise used by ``validation_score`` and ``evaluate`` (comparable across checkpoints).
EVAL_SEED = 0

#: Most decoder output values (rows x data dimensions x head parameters) one IWAE pass in ``evaluate``
#: may produce: 2**24 float32 values are 64 MiB, a few hundred MiB with the head's intermediates.
IWAE_VALUES = 2**24


@attrs.frozen
class VAEConfig:
    """Options shared by every VAE variant."""

    latent_dim: int = option(16, "size D of the latent z", v.gt(0))
    network: str = option(
        "auto",
        "encoder/decoder: mlp, conv (images with sides multiple of 4), spatial (conv with a latent map of "
        "latent_dim / (H/4 * W/4) channels at H/4 x W/4; the default above 16x16), auto = conv for images "
        ">= 16x16 else mlp",
        v.in_(NETWORKS),
    )
    hidden: tuple[int, ...] = option(
        (512,), "widths of the fully connected hidden layers of the encoder (the decoder mirrors them)", converter=tuple
    )
    channels: int = option(32, "channels of the first conv layer (conv and spatial networks only)", v.gt(0))
    activation: str = option("elu", "hidden-layer nonlinearity", v.in_(tuple(ACTIVATIONS)))
    dropout: float = option(
        0.3, "dropout after each fully connected hidden layer (regularises small data sets)", [v.ge(0.0), v.lt(1.0)]
    )
    output: str = option(
        "auto",
        "p(x|z), a core observation head: auto = bernoulli (2 levels), logistic_mixture "
        "(more levels), gaussian (vectors); or categorical, logistic, discretized_gaussian; "
        "or rgb_mixture (colour images: a mixture per pixel, channels coupled as in PixelCNN++)",
        v.in_((*HEADS, *VAE_HEADS)),
    )
    mixtures: int = option(5, "components K of the discretised logistic mixture", v.gt(0))
    prior: str = option(
        "standard_normal", "registered prior p(z) by name (standard_normal: closed-form KL; others: Monte Carlo KL)"
    )
    warmup_steps: int = option(2000, "steps of linear KL warm-up from 0 to full weight (0: none)", v.ge(0))
    iwae_k: int = option(
        100,
        "importance samples k of the IWAE bound reported by evaluate (--set iwae_k=1000 for "
        "the customary figure, ten times slower)",
        v.gt(0),
    )
    iwae_subset: int = option(
        0,
        "examples of the split the IWAE bound is computed on in evaluate: a fixed random "
        "subset of this many (0: all); iwae_stderr gives its standard error",
        v.ge(0),
    )
    iwae_chunk: int = option(
        100, "importance samples drawn at a time per example when evaluating (bounds memory)", v.gt(0)
    )

    def __attrs_post_init__(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"'hidden' must list positive widths, got {self.hidden}")


class VAE(GenerativeModel):
    """Variational autoencoder with a Gaussian latent; see the module docstring."""

    Config: ClassVar[type] = VAEConfig
    likelihood: ClassVar[str] = "bound"
    conditional = False
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 6000,
        "batch_size": 64,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup": 0,
        "grad_clip": 0.0,
        "ema": 0.0,
        "eval_every": 250,
        "patience": 0,
    }

    #: trainer settings for images larger than 16 x 16 (about 10 CPU-minutes on 3 x 32 x 32 patches32)
    large_image_train: ClassVar[dict[str, Any]] = {"steps": 800, "batch_size": 64}

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16: :attr:`large_image_train` over ``train_defaults``; else ``train_defaults``."""
        if data.is_large_image:
            return {**cls.train_defaults, **cls.large_image_train}
        return dict(cls.train_defaults)

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16 (the other defaults are sized for 8 x 8 digits):

        - a ``spatial`` latent map of 4 channels at ``H/4 x W/4`` (256 numbers for 32 x 32) when the
          sides are multiples of 4, instead of a flat vector behind fully connected layers;
        - for colour images (at most 3 channels, more than 32 levels) the ``rgb_mixture`` output,
          which couples the channels of a pixel;
        - a KL warm-up of a quarter of the large-image training steps;
        - the IWAE figure of ``evaluate`` on a fixed random subset of 200 examples (its standard
          error reported): IWAE-100 on every example costs about a third of the training.
        """
        if not data.is_large_image:
            return {}
        out: dict[str, Any] = {
            "latent_dim": 64,
            "warmup_steps": cls.large_image_train["steps"] // 4,
            "iwae_subset": 200,
        }
        if len(data.shape) == 3 and all(s % 4 == 0 for s in data.shape[1:]):
            out.update(network="spatial", latent_dim=4 * (data.shape[1] // 4) * (data.shape[2] // 4))
        if len(data.shape) == 3 and data.shape[0] <= 3 and (data.levels or 0) > 32:
            out["output"] = "rgb_mixture"
        return out

    encoder: nn.Module
    decoder: nn.Module
    prior: Prior

    def __init__(self, config: VAEConfig, data: DataSpec):
        super().__init__(config, data)
        classes = self._classes(data)
        options = {
            "network": choose_network(data, config.network),
            "hidden": config.hidden,
            "channels": config.channels,
            "activation": config.activation,
            "dropout": config.dropout,
            "classes": classes,
        }
        head: Head
        if config.output == "rgb_mixture":
            check_rgb(data.shape, data.levels if data.is_image else None)
            head = RGBMixtureHead(data.levels or 0, config.mixtures, event_dims=3)
        else:
            head = make_head(
                config.output, data.levels if data.is_image else None, config.mixtures, event_dims=len(data.shape)
            )
        #: raw parameters per data dimension of the observation head (sizes the IWAE passes)
        self.head_params: int = head.params
        self.build(head, options)

    # -- the pieces (variants override these) --------------------------------------------
    def build(self, observation: Head, options: dict[str, Any]) -> None:
        """Create ``self.encoder``, ``self.decoder`` and ``self.prior``."""
        d = self.config.latent_dim
        self.encoder = GaussianEncoder(self.data, d, **options)
        self.decoder = ObservationDecoder(self.data, d, observation, **options)
        self.prior = registry.get("prior", self.config.prior, shape=d)

    def _classes(self, data: DataSpec) -> int:
        return 0

    @property
    def beta(self) -> float:
        """The KL weight once warm (1: the ELBO)."""
        return 1.0

    def kl_weight(self) -> float:
        """KL weight at ``self.step``: linear warm-up from 0 to :attr:`beta` over ``warmup_steps``."""
        warm = self.config.warmup_steps
        return self.beta * (1.0 if warm == 0 else min(1.0, self.step / warm))

    def _condition(self, batch: Batch) -> Tensor | None:
        if not self.conditional:
            return None
        if batch.y is None:
            raise DataError(f"{type(self).__name__} is conditional: the data must carry labels")
        return batch.y

    # -- objective and bounds ------------------------------------------------------------
    def bound(self, batch: Batch, generator: torch.Generator | None = None) -> ELBO:
        """ELBO terms ``(B,)`` of ``batch``."""
        return elbo(batch.x, self.encoder, self.decoder, self.prior, self._condition(batch), generator)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        terms, w = self.bound(batch), self.kl_weight()
        loss = -(terms.reconstruction - w * terms.kl).mean()
        return {
            "loss": loss,
            "elbo": terms.elbo.mean().detach(),
            "kl": terms.kl.mean().detach(),
            "kl_weight": loss.new_tensor(w),
        }

    def nll(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        """``-ELBO`` ``(B,)`` nats (one posterior draw): an upper bound on ``-log P(x)``."""
        return -self.bound(batch, generator).elbo

    def iwae_nll(self, batch: Batch, k: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``-IWAE_k`` ``(B,)`` nats (``k`` defaults to ``iwae_k``), drawn ``iwae_chunk`` samples at a time.

        Memory is bounded whatever the batch: when ``examples x samples`` decoder outputs of the chunk
        would exceed :data:`IWAE_VALUES` values, the chunk shrinks and the batch is split into groups
        of examples (:meth:`iwae_plan`). Each example's bound is still the log-mean of its own ``k``
        importance weights; only the order in which the noise is drawn changes.
        """
        k = k or self.config.iwae_k
        chunk, group = self.iwae_plan(len(batch.x), k)
        condition = self._condition(batch)
        return -torch.cat(
            [
                iwae(
                    batch.x[start : start + group],
                    self.encoder,
                    self.decoder,
                    self.prior,
                    k,
                    None if condition is None else condition[start : start + group],
                    generator,
                    chunk,
                )
                for start in range(0, len(batch.x), group)
            ]
        )

    def iwae_plan(self, examples: int, k: int) -> tuple[int, int]:
        """``(chunk, group)``: samples per example and examples per decoder pass of :meth:`iwae_nll`, so that
        ``chunk x group`` decoder rows hold at most :data:`IWAE_VALUES` output values (at least one row)."""
        rows = max(1, IWAE_VALUES // (self.data.dims * self.head_params))
        chunk = max(1, min(self.config.iwae_chunk, k, rows))
        return chunk, max(1, min(examples, rows // chunk))

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Mean ``-(log p(x|z) - beta KL)`` in nats (``-ELBO`` unless ``beta != 1``) under fixed noise.

        Fixed noise makes checkpoints compare on the same draws; the weight is the one
        trained towards, so a beta-VAE is not judged by a bound it does not optimise.
        """
        total = 0.0
        with self._evaluating() as (device, generator):
            for b in data.batches(batch_size):
                terms = self.bound(b.to(device), generator)
                total -= float((terms.reconstruction - self.beta * terms.kl).double().sum())
        return total / max(len(data), 1)

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The core's figures (``nll_nats`` = ``-ELBO``; for ``cvae`` the marginal over labels and the
        conditional one) under fixed noise, plus ``kl_nats`` and ``iwae_nll_nats`` (``-IWAE_k``, ``k = iwae_k``).

        For a conditional model the IWAE figure is given the labels: ``conditional_iwae_nll_nats``.
        The IWAE figure is the mean over ``iwae_subset`` examples (all when 0; ``iwae_subset`` in the
        output is the number used) and ``iwae_stderr`` its standard error over those examples,
        :math:`s/\\sqrt m` with :math:`s` the sample standard deviation of the ``m`` per-example values.
        """
        with self._evaluating() as (device, generator), torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)  # the core's passes draw from the global generator
            out = super().evaluate(data, batch_size)
            kl = 0.0
            for b in data.batches(batch_size):
                kl += float(self.bound(b.to(device), generator).kl.double().sum())
            index = self.iwae_examples(len(data))
            iw = torch.cat(
                [
                    self.iwae_nll(data.batch(chunk).to(device), generator=generator).double().cpu()
                    for chunk in index.split(batch_size)
                ]
            )
        n, m = max(len(data), 1), len(iw)
        stderr = float(iw.std() / m**0.5) if m > 1 else float("nan")
        key = "conditional_iwae_nll_nats" if out.get("conditional") else "iwae_nll_nats"
        out.update(
            {
                "kl_nats": kl / n,
                key: float(iw.mean()),
                "iwae_k": self.config.iwae_k,
                "iwae_subset": m,
                "iwae_stderr": stderr,
            }
        )
        if data.spec.kind != "vector":
            out[key.replace("nll_nats", "bits_per_dim")] = bits_per_dim(out[key], data.spec.dims)
        return out

    def iwae_examples(self, n: int) -> Tensor:
        """Indices ``(m,)`` of the examples ``evaluate`` computes the IWAE bound on: all ``n``, or a fixed
        random subset of ``iwae_subset`` (seeded by ``EVAL_SEED``, in increasing order)."""
        m = self.config.iwae_subset
        if m == 0 or m >= n:
            return torch.arange(n)
        return torch.randperm(n, generator=torch.Generator().manual_seed(EVAL_SEED))[:m].sort().values

    # -- latent-variable protocol ----------------------------------------------------------
    @property
    def latent_prior(self) -> Prior:
        """The prior of the latent that :meth:`encode` returns and :meth:`decode` takes."""
        return self.prior

    @torch.no_grad()
    def encode(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """Posterior means ``(B, D)`` of the (top) latent for data ``x`` ``(B, *shape)``."""
        with self._evaluating():
            return self.encoder(x, condition).loc

    @torch.no_grad()
    def decode(self, z: Tensor, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """A draw from :math:`p(x\\mid z)` for latents ``z`` ``(n, D)``, shaped like :meth:`sample`."""
        with self._evaluating():
            return self.decoder(z, condition).sample(generator)

    @torch.no_grad()
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``z ~ p(z)``, ``x ~ p(x|z)``: ``(n, *shape)`` (int64 levels for images).

        A conditional model with no ``condition`` draws the labels uniformly.
        """
        with self._evaluating() as (device, _):
            if self.conditional and condition is None:
                condition = torch.randint(
                    self.data.num_classes or 1,
                    (n,),
                    generator=generator,
                    device=generator.device if generator is not None else device,
                )
            if condition is not None:
                condition = condition.to(device)
            return self.decode(self.latent_prior.sample(n, generator=generator), condition, generator)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[tuple[torch.device, torch.Generator]]:
        """Eval mode and no gradients for the block; yields the device and a generator seeded with ``EVAL_SEED``."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield device, torch.Generator(device=device).manual_seed(EVAL_SEED)
        finally:
            self.train(was_training)


@attrs.frozen
class BetaVAEConfig(VAEConfig):
    """``vae`` options plus the KL weight ``beta``."""

    beta: float = option(
        4.0, "weight beta on the KL term in training (after warm-up); beta > 1 favours disentangled latents", v.ge(0.0)
    )


class BetaVAE(VAE):
    r"""beta-VAE: the KL weight ramps linearly to :math:`\beta` over ``warmup_steps`` (Higgins et al. 2017)."""

    Config = BetaVAEConfig

    @property
    def beta(self) -> float:
        return self.config.beta


class CVAE(VAE):
    r"""Conditional VAE: :math:`q(z\mid x, y)`, :math:`p(x\mid z, y)`, :math:`p(z)`; ``y`` one-hot into both networks (Sohn et al. 2015)."""

    conditional = True

    def _classes(self, data: DataSpec) -> int:
        if not data.num_classes:
            raise DataError(f"cvae needs labelled data; {data.name} has no classes")
        return data.num_classes


@attrs.frozen
class IWAEConfig(VAEConfig):
    """``vae`` options plus the number of importance samples used in training."""

    k: int = option(5, "importance samples k of the IWAE-k bound trained on", v.gt(0))


class IWAE(VAE):
    r"""Trains on :math:`\mathcal L_k` (Burda et al. 2016); during warm-up the prior/posterior ratio is weighted by :math:`w_t`."""

    Config = IWAEConfig

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        bound = iwae(
            batch.x,
            self.encoder,
            self.decoder,
            self.prior,
            self.config.k,
            self._condition(batch),
            kl_weight=self.kl_weight(),
        )
        return {
            "loss": -bound.mean(),
            "objective": bound.mean().detach(),
            "kl_weight": bound.new_tensor(self.kl_weight()),
        }

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Mean ``-IWAE_k`` (the training ``k``) in nats under fixed noise: the bound this model optimises."""
        with self._evaluating() as (device, generator):
            total = sum(
                float(self.iwae_nll(b.to(device), self.config.k, generator).double().sum())
                for b in data.batches(batch_size)
            )
        return total / max(len(data), 1)
