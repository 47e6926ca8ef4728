r"""``gan`` and ``cgan``: adversarial models that own their training step.

A generator :math:`G(z)`, :math:`z \sim \mathcal N(0, I_d)`, and a discriminator
:math:`D(x)` play the game of :mod:`gmkit_gan.losses`. One training step is
``n_critic`` discriminator updates (each on a fresh batch of the training
stream) and one generator update, with two Adam optimisers (``"generator"`` and
``"discriminator"``, each with its own learning rate and betas: the two
time-scale update rule of Heusel et al. 2017, arXiv:1706.08500):

.. math::
    \text{discriminator: } L_D + \lambda\,\mathrm{GP} + \tfrac{\gamma}{2}\,\mathrm{R1},
    \qquad \text{generator: } L_G.

Data space. Images of ``L`` levels are seen as the bin centres
:math:`c_k = 2k/(L-1) - 1` in :math:`[-1, 1]` plus, with ``dequantize``, uniform
noise over the bin :math:`U(-\tfrac1{L-1}, \tfrac1{L-1})`; the generator ends in
``tanh`` and :meth:`GAN.sample` returns the level whose bin holds its output,
:math:`\mathrm{round}((y+1)(L-1)/2)` clamped to ``[0, L-1]``. Vectors are
standardised with the training split's mean and standard deviation (persistent
buffers set by :meth:`GAN.prepare`) and mapped back when sampling. With
``augment``, DiffAugment (:mod:`gmkit_gan.augment`) transforms real and fake
images alike before :math:`D`; the penalties are taken with respect to what
:math:`D` sees.

Sampling and evaluation use the trainer's EMA of the weights (``train.ema``,
on by default): it averages the whole module, and only the generator's
average is ever used (samples, validation); the discriminator's average is
carried along unused. There is no likelihood (``likelihood = "none"``):
sample quality is measured with ``gmkit eval RUN --metrics fd,kid,prdc``, and
the best weights are those with the lowest Fréchet distance of
``eval_samples`` fixed-seed samples to the validation split
(:meth:`GAN.validation_score`).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import attrs
import torch
from attrs import validators as v
from torch import Tensor, nn

from gmkit_core.config import option
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import quantize, to_unit_interval
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel, OptimizerGroup, Step

from .augment import diff_augment, parse_policy
from .losses import LOSSES, accuracies, discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from .networks import ConvGenerator, Discriminator, MLPGenerator, apply_spectral_norm, conv_trunk, halvings, mlp_trunk

__all__ = ["GAN", "CGAN", "GANConfig", "DiscriminatorDominanceWarning", "NETWORKS", "EVAL_SEED"]

NETWORKS = ("auto", "conv", "mlp")
#: Seed of the samples scored by ``validation_score`` (the same draws at every check).
EVAL_SEED = 0
#: Both accuracies at or above this count as a step the discriminator wins outright.
DOMINANCE = 0.99
#: Steps between checks of the dominance streak (each check reads one number from the device).
HEALTH_EVERY = 50


def _betas(instance: Any, attribute: attrs.Attribute, value: tuple[float, ...]) -> None:
    if len(value) != 2 or not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"'{attribute.name}' must be two Adam betas in [0, 1), e.g. 0.5,0.999; got {value}")


def _policy(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    parse_policy(value)


@attrs.frozen
class GANConfig:
    """Options of ``gan`` and ``cgan``."""

    loss: str = option(
        "non_saturating", "adversarial loss: non_saturating, hinge, least_squares or wgan_gp", validator=v.in_(LOSSES)
    )
    latent_dim: int = option(32, "size d of the noise z ~ N(0, I)", validator=v.gt(0))
    network: str = option(
        "auto",
        "auto = conv (DCGAN) for images whose sides halve at least once to >= 4, else mlp",
        validator=v.in_(NETWORKS),
    )
    hidden: tuple[int, ...] = option(
        (256, 256, 256), "hidden widths of the MLP generator and discriminator (mlp)", converter=tuple
    )
    channels: int = option(32, "conv channels at full resolution, doubled at each halving (conv)", validator=v.gt(0))
    features: int = option(
        128, "width of the conv discriminator's last hidden layer (the projection features)", validator=v.gt(0)
    )
    spectral_norm: bool = option(False, "spectral normalisation of every discriminator layer (Lipschitz bound)")
    gp_weight: float = option(
        10.0, "weight lambda of the WGAN-GP gradient penalty (loss=wgan_gp only)", validator=v.ge(0.0)
    )
    r1_gamma: float = option(1.0, "R1 penalty gamma/2 E||grad_x D(x)||^2 on real data (0: off)", validator=v.ge(0.0))
    n_critic: int = option(1, "discriminator updates (each on a new batch) per generator update", validator=v.gt(0))
    g_lr: float = option(0.0, "generator learning rate (0: train.lr)", validator=v.ge(0.0))
    d_lr: float = option(
        0.0, "discriminator learning rate (0: train.lr); d_lr > g_lr is the two time-scale rule", validator=v.ge(0.0)
    )
    g_betas: tuple[float, ...] = option((0.5, 0.999), "Adam betas of the generator", validator=_betas, converter=tuple)
    d_betas: tuple[float, ...] = option(
        (0.5, 0.999), "Adam betas of the discriminator", validator=_betas, converter=tuple
    )
    augment: str = option(
        "", "DiffAugment for images, comma-separated: color, translation, cutout ('': off)", validator=_policy
    )
    dequantize: bool = option(True, "add uniform noise within each level's bin to real images before D")
    eval_samples: int = option(
        500, "fixed-seed samples whose Frechet distance to validation picks the best weights", validator=v.ge(2)
    )
    health_patience: int = option(
        1000, "consecutive steps D wins outright (both accuracies >= 0.99) before a warning", validator=v.gt(0)
    )

    def __attrs_post_init__(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"'hidden' must list positive widths, got {self.hidden}")


class DiscriminatorDominanceWarning(RuntimeWarning):
    """The discriminator has separated real from fake perfectly for a long stretch (collapse risk)."""


def _grad_norm(params: list[nn.Parameter]) -> Tensor:
    """Euclidean norm of the gradients of ``params`` (as left by the last update: after clipping)."""
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class GAN(GenerativeModel):
    """Unconditional GAN; see the module docstring."""

    Config: ClassVar[type] = GANConfig
    likelihood: ClassVar[str] = "none"
    conditional = False
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 2000,
        "batch_size": 64,
        "lr": 2e-4,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "schedule": "constant",
        "warmup": 0,
        "grad_clip": 0.0,
        "ema": 0.995,
        "eval_every": 500,
        "checkpoint_every": 1000,
        "patience": 0,
    }
    vector_defaults: ClassVar[dict[str, Any]] = {
        **train_defaults,
        "batch_size": 256,
    }

    shift: Tensor
    scale: Tensor
    dominated_steps: Tensor

    def __init__(self, config: GANConfig, data: DataSpec):
        super().__init__(config, data)
        if data.kind not in ("image", "vector"):
            raise DataError(
                f"{type(self).__name__.lower()} models images and vectors, not {data.kind} data ({data.name})"
            )
        self.policy = parse_policy(config.augment)
        if self.policy and not data.is_image:
            raise ConfigError(
                f"augment={config.augment!r}: DiffAugment applies to images; {data.name} is vector "
                "data, so set augment=''"
            )
        classes = self._classes(data)
        self.network = self._network(data, config.network)
        if self.network == "conv":
            self.generator: nn.Module = ConvGenerator(data, config.latent_dim, config.channels, classes)
            trunk, width = conv_trunk(data, config.channels, config.features)
        else:
            self.generator = MLPGenerator(data, config.latent_dim, config.hidden, classes)
            trunk, width = mlp_trunk(data, config.hidden)
        self.discriminator = Discriminator(trunk, width, classes)
        if config.spectral_norm:
            apply_spectral_norm(self.discriminator)
        d = data.dims if data.kind == "vector" else 1
        self.register_buffer("shift", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))
        self.register_buffer("dominated_steps", torch.zeros((), dtype=torch.long))
        self._warned = False
        self._reference: dict[tuple[str, str, int], Tensor] = {}

    # -- construction --------------------------------------------------------------------
    @staticmethod
    def _network(data: DataSpec, choice: str) -> str:
        can_conv = data.is_image and halvings(*data.shape[1:]) > 0
        if choice == "conv" and not can_conv:
            raise ConfigError(
                f"network=conv needs images whose sides halve to at least 4 (e.g. 8x8); {data.name} "
                f"is {data.kind} {tuple(data.shape)}: use network=mlp"
            )
        return ("conv" if can_conv else "mlp") if choice == "auto" else choice

    def _classes(self, data: DataSpec) -> int:
        return 0

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Trainer settings: batch 64 for images, 256 for vectors (2000 steps, Adam at 2e-4, EMA 0.995)."""
        return dict(cls.vector_defaults if data.kind == "vector" else cls.train_defaults)

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16: a 128-d noise z (the 32-d default is sized for 8 x 8 digits)."""
        return {"latent_dim": 128} if data.is_large_image else {}

    def prepare(self, train: Dataset) -> None:
        """Vectors: standardise with the training split's per-dimension mean and standard deviation."""
        if self.data.kind == "vector":
            x = train.x.to(self.shift.dtype)
            self.shift.copy_(x.mean(0))
            self.scale.copy_(x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(self.scale))

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        c = self.config
        return {
            "generator": OptimizerGroup(
                self._params(self.generator), lr=c.g_lr or None, betas=(c.g_betas[0], c.g_betas[1])
            ),
            "discriminator": OptimizerGroup(
                self._params(self.discriminator), lr=c.d_lr or None, betas=(c.d_betas[0], c.d_betas[1])
            ),
        }

    @staticmethod
    def _params(module: nn.Module) -> tuple[nn.Parameter, ...]:
        return tuple(module.parameters())

    # -- data space ----------------------------------------------------------------------
    def to_model_space(self, x: Tensor) -> Tensor:
        """Data as stored -> what the discriminator sees: bin centres (+ bin noise) in [-1, 1], or standardised vectors."""
        if self.data.kind == "vector":
            return (x.to(self.shift.dtype) - self.shift) / self.scale
        levels = int(self.data.levels or 2)
        y = to_unit_interval(x, levels, self.shift.dtype)
        if self.config.dequantize and self.training:
            y = y + (torch.rand_like(y) * 2 - 1) / (levels - 1)
        return y

    def from_model_space(self, y: Tensor) -> Tensor:
        """Generator output -> data as stored: int64 levels (the bin holding ``y``) or de-standardised vectors."""
        if self.data.kind == "vector":
            return y * self.scale + self.shift
        return quantize(y, int(self.data.levels or 2), centred=True)

    def _labels(self, batch: Batch) -> Tensor | None:
        if not self.conditional:
            return None
        if batch.y is None:
            raise DataError(f"{type(self).__name__} is conditional: the data must carry labels")
        return batch.y.long()

    def generate(self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``G(z, y)`` for ``z ~ N(0, I)`` ``(n, d)``: ``(n, *shape)`` in model space (with gradients)."""
        device = self.shift.device
        z = torch.randn(
            n, self.config.latent_dim, generator=generator, device=generator.device if generator is not None else device
        )
        return self.generator(z.to(device), labels)

    def critic(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """``D(x, y)`` ``(B,)`` on model-space input (already augmented)."""
        return self.discriminator(x, labels)

    def _augment(self, x: Tensor) -> Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    # -- objectives ----------------------------------------------------------------------
    def discriminator_objective(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The discriminator's loss with penalties on ``batch`` and fresh fakes (same labels), and its statistics."""
        c, labels = self.config, self._labels(batch)
        real = self._augment(self.to_model_space(batch.x))
        with torch.no_grad():
            fake = self.generate(len(batch.x), labels)
        fake = self._augment(fake)
        r, f = self.critic(real, labels), self.critic(fake, labels)
        total = discriminator_loss(c.loss, r, f)
        stats: dict[str, Tensor] = {}
        if c.loss == "wgan_gp":
            gp = gradient_penalty(lambda u: self.critic(u, labels), real, fake)
            total = total + c.gp_weight * gp
            stats["gp"] = gp.detach()
        if c.r1_gamma > 0:
            r1 = r1_penalty(lambda u: self.critic(u, labels), real)
            total = total + 0.5 * c.r1_gamma * r1
            stats["r1"] = r1.detach()
        acc_real, acc_fake = accuracies(c.loss, r, f)
        return total, {"d_loss": total.detach(), "d_real_acc": acc_real, "d_fake_acc": acc_fake, **stats}

    def generator_objective(self, n: int, labels: Tensor | None = None) -> Tensor:
        """:math:`L_G` of ``n`` fresh fakes (with ``labels``)."""
        fake = self._augment(self.generate(n, labels))
        return generator_loss(self.config.loss, self.critic(fake, labels))

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """``loss``: the generator's :math:`L_G` (gradients reach both networks); ``d_loss`` etc.: the discriminator's terms."""
        _, stats = self.discriminator_objective(batch)
        return {"loss": self.generator_objective(len(batch.x), self._labels(batch)), **stats}

    def train_step(self, batch: Batch, step: Step) -> dict[str, Tensor]:
        """``n_critic`` discriminator updates, then one generator update; returns the health scalars."""
        d_params = list(self.discriminator.parameters())
        g_params = list(self.generator.parameters())
        sums: dict[str, Tensor] = {}
        for i in range(self.config.n_critic):
            if i:
                batch = step.next_batch()
            total, stats = self.discriminator_objective(batch)
            step.update("discriminator", total)
            stats["d_grad_norm"] = _grad_norm(d_params)
            for key, value in stats.items():
                sums[key] = sums[key] + value if key in sums else value
        d_stats = {k: s / self.config.n_critic for k, s in sums.items()}
        g_loss = self.generator_objective(len(batch.x), self._labels(batch))
        step.update("generator", g_loss)
        self._track_health(d_stats["d_real_acc"], d_stats["d_fake_acc"], step.index)
        return {"loss": g_loss.detach(), **d_stats, "g_grad_norm": _grad_norm(g_params)}

    def _track_health(self, acc_real: Tensor, acc_fake: Tensor, index: int) -> None:
        """Count consecutive steps the discriminator wins outright; warn once past ``health_patience``."""
        wins = (acc_real >= DOMINANCE) & (acc_fake >= DOMINANCE)
        self.dominated_steps.copy_(torch.where(wins, self.dominated_steps + 1, torch.zeros_like(self.dominated_steps)))
        if self._warned or index % HEALTH_EVERY:
            return
        streak = int(self.dominated_steps)
        if streak >= self.config.health_patience:
            self._warned = True
            warnings.warn(
                f"{type(self).__name__.lower()}: at step {index + 1} the discriminator has told every real from every "
                f"fake example for {streak} consecutive steps, so the generator learns little and may collapse; "
                "try --set spectral_norm=true, r1_gamma=1, loss=hinge or wgan_gp, augment=color,translation,cutout "
                "(images), or a lower d_lr",
                DiscriminatorDominanceWarning,
                stacklevel=2,
            )

    # -- sampling and scoring ------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``(n, *shape)`` samples of the generator in eval mode (int64 levels for images).

        A conditional model with no ``condition`` draws the labels uniformly with ``generator``.
        """
        device = self.shift.device
        if self.conditional and condition is None:
            condition = torch.randint(
                int(self.data.num_classes or 1),
                (n,),
                generator=generator,
                device=generator.device if generator is not None else device,
            )
        if condition is not None:
            condition = condition.to(device).long()
        was_training = self.training
        self.eval()
        try:
            return self.from_model_space(self.generate(n, condition, generator))
        finally:
            self.train(was_training)

    def _reference_features(self, data: Dataset, extractor: Any) -> Tensor:
        key = (data.spec.name, data.split, len(data))
        if key not in self._reference:
            self._reference = {key: extractor(data.x)}
        return self._reference[key]

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Fréchet distance between ``eval_samples`` samples (seed ``EVAL_SEED``) and ``data``, in the core's features.

        The extractor is the core's default for the data (``digits`` classifier
        features for digits, the points themselves for vectors), or block-averaged
        ``pixels`` for images no shipped extractor takes; a conditional model draws
        class-balanced labels ``i mod K``.
        """
        from gmkit_core.errors import DataError
        from gmkit_core.features import resolve
        from gmkit_core.metrics import frechet_distance

        try:
            extractor = resolve(None, self.data)
        except DataError:
            extractor = resolve("pixels", self.data)
        reference = self._reference_features(data, extractor)
        n = self.config.eval_samples
        device = self.shift.device
        rng = torch.Generator(device).manual_seed(EVAL_SEED)
        labels = torch.arange(n, device=device) % int(self.data.num_classes or 1) if self.conditional else None
        parts = [
            self.sample(
                min(batch_size, n - s), condition=None if labels is None else labels[s : s + batch_size], generator=rng
            ).cpu()
            for s in range(0, n, batch_size)
        ]
        return frechet_distance(reference, extractor(torch.cat(parts)))

    def describe(self) -> str:
        g = sum(p.numel() for p in self.generator.parameters())
        d = sum(p.numel() for p in self.discriminator.parameters())
        return (
            f"{type(self).__name__} ({self.network}, {self.config.loss} loss; generator {g:,}, "
            f"discriminator {d:,} parameters)"
        )


class CGAN(GAN):
    r"""Label-conditional GAN: :math:`G(z, y)` with conditional batch norm (conv) or a label embedding (MLP), projection :math:`D(x, y)`."""

    conditional = True

    def _classes(self, data: DataSpec) -> int:
        if not data.num_classes:
            raise DataError(f"cgan needs labelled data; {data.name} has no classes (use gan)")
        return int(data.num_classes)
