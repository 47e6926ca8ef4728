r"""The registered flow models: ``realnvp``, ``glow``, ``maf``, ``nsf``.

A :class:`FlowModel` is a base prior :math:`p_Z` and a transform ``f`` (data ->
noise, built by the subclass from its config):

- vectors ``(B, D)``: :math:`-\log p(x) = -\log p_Z(f(x)) - \log|\det J_f(x)|`, exact.
- images ``(B, C, H, W)`` with levels :math:`\{0..L-1\}`: dequantise
  :math:`y = (x + u)/L`, preprocess :math:`y \mapsto \operatorname{logit}(\alpha + (1-2\alpha) y)`
  (or :math:`y \mapsto 2y - 1`) with its log-det, then the flow. The reported
  :math:`-\log P(x)` is the dequantisation bound of :mod:`gmkit_flows.dequantization`
  including the :math:`D \log L` term, so ``likelihood == "bound"``:
  nats on the discrete data, an upper bound (in expectation over the noise).

Training minimises that per-dimension bound (one noise draw); ``nll`` uses
``nll_samples`` importance-weighted draws from a fixed seed.
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
from gmkit_core.distributions import bits_per_dim, dequantization_nats, quantize
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel, Prior, Transform
from gmkit_core.transforms import Compose, Logit

from .architectures import MIXERS, autoregressive_stack, coupling_stack, glow, multiscale
from .dequantization import LogitNormalDequantizer, uniform_noise
from .mixture import GaussianMixture, MADEMoG
from .pointwise import ScaleShift
from .reshape import Reshape

__all__ = ["FlowModel", "RealNVP", "Glow", "MAF", "NSF"]


#: validators of counts (>= 1) and of fractions in [0, 1)
_POSITIVE = [v.instance_of(int), v.ge(1)]
_UNIT = [v.instance_of(float), v.ge(0.0), v.lt(1.0)]


def _dropout() -> Any:
    return option(
        None,
        f"dropout in the conditioners; default (none): {IMAGE_DROPOUT} on images "
        "(small image sets overfit), 0 on vectors",
        v.optional(_UNIT),
    )


#: Trainer settings under which every default config reaches its documented figure (a 5-minute budget).
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 4000,
    "batch_size": 64,
    "lr": 1e-3,
    "schedule": "cosine",
    "warmup": 100,
    "grad_clip": 5.0,
    "eval_every": 200,
    "patience": 6,
    "max_minutes": 5.0,
}

#: Trainer settings on vector data (the 2D densities of docs/models/flows.md): batches of 256 (the test NLL of
#: 8gaussians and checkerboard keeps falling with less gradient noise), no early stop (the end of the cosine
#: schedule is where they are best) and no wall-clock cut: the 4000 steps are the budget, a few CPU-minutes.
VECTOR_TRAIN_DEFAULTS: dict[str, Any] = {**TRAIN_DEFAULTS, "batch_size": 256, "patience": 0, "max_minutes": 0.0}

#: The dropout used on images when the config leaves ``dropout`` unset.
IMAGE_DROPOUT = 0.3

#: Trainer settings on images with a side above 16 (``DataSpec.is_large_image``: 28x28, 32x32x3): under
#: 10 CPU-minutes on one thread for the large-image architectures of ``realnvp`` and ``glow`` (``glow`` on
#: ``patches32``: 0.55 CPU s per step on a busy machine, 1200 steps took 660 s)
#: (``config_for``; docs/models/flows.md). Batches of 32, a fixed number of steps and no early stop or
#: wall-clock cut, so the figure does not depend on the machine's load; validation takes one
#: dequantisation draw per example (:meth:`FlowModel.validation_score`).
LARGE_IMAGE_TRAIN_DEFAULTS: dict[str, Any] = {
    **TRAIN_DEFAULTS,
    "steps": 900,
    "batch_size": 32,
    "patience": 0,
    "max_minutes": 0.0,
}


@attrs.frozen
class DataOptions:
    """Options on how a flow meets its data (shared by every flow model)."""

    base: str = option("standard_normal", "registered prior used as the base density p_Z")
    dequantization: str = option(
        "uniform",
        "images: uniform, or variational (a learned logit-normal q(u given x))",
        v.in_(("uniform", "variational")),
    )
    preprocess: str = option(
        "logit", "images: logit (y -> logit(alpha + (1-2 alpha) y)) or affine (y -> 2y - 1)", v.in_(("logit", "affine"))
    )
    logit_alpha: float = option(0.05, "images: the alpha of the logit preprocessing, in [0, 0.5)", _UNIT)
    nll_samples: int = option(8, "images: importance-weighted dequantisation draws per example in nll", _POSITIVE)
    dequantizer_hidden: int = option(32, "images, variational: channels of the dequantiser CNN", _POSITIVE)
    seed: int = option(0, "seed of random initialisations (LU factors) and of the nll noise", v.instance_of(int))


class FlowModel(GenerativeModel):
    """A flow over the data: ``Config`` gives the architecture, :meth:`build` the transform."""

    #: exact on continuous vectors; a dequantisation bound on discrete images
    likelihood: ClassVar[str | dict[str, str]] = {"vector": "exact", "image": "bound"}
    image_only: ClassVar[bool] = False

    def __init__(self, config: Any, data: DataSpec):
        super().__init__(config, data)
        if self.image_only and not data.is_image:
            raise DataError(f"{type(self).__name__.lower()} models images; '{data.name}' is {data.kind} data")
        if data.is_image and (data.levels is None or data.levels < 2):
            raise DataError(f"{data.name}: images need levels >= 2 for dequantisation")
        #: images: the number of levels (>= 2, checked above); vectors have none and never use it
        self.levels: int = data.levels or 0
        shape = tuple(data.shape)
        self.transform: Transform
        if data.is_image:
            pre: Transform = Logit(config.logit_alpha) if config.preprocess == "logit" else ScaleShift(2.0, -1.0)
            self.transform = Compose(pre, self.build(shape))
        else:
            self.transform = self.build(shape)
        self.base: Prior = self.make_base(shape)
        self.dequantizer: LogitNormalDequantizer | None = None
        if data.is_image and config.dequantization == "variational":
            channels, height, width = shape  # images are (C, H, W)
            self.dequantizer = LogitNormalDequantizer((channels, height, width), self.levels, config.dequantizer_hidden)

    #: trainer settings on vector data (:meth:`defaults_for`); ``train_defaults`` hold for images
    vector_train_defaults: ClassVar[dict[str, Any]] = VECTOR_TRAIN_DEFAULTS
    #: options whose default (None, or "auto") depends on the kind of data: name -> (on images, on vectors)
    kind_defaults: ClassVar[dict[str, tuple[Any, Any]]] = {}

    #: trainer settings on images with a side above 16 (:meth:`defaults_for`)
    large_image_train_defaults: ClassVar[dict[str, Any]] = LARGE_IMAGE_TRAIN_DEFAULTS

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Trainer settings: ``vector_train_defaults`` on vectors, ``large_image_train_defaults`` on images
        with a side above 16, ``train_defaults`` on other images."""
        if data.kind == "vector":
            return dict(cls.vector_train_defaults)
        return dict(cls.large_image_train_defaults if data.is_large_image else cls.train_defaults)

    def setting(self, name: str) -> Any:
        """The config's option ``name``, or its value for this kind of data (``kind_defaults``) when unset or auto."""
        value = getattr(self.config, name)
        if (value is None or value == "auto") and name in self.kind_defaults:
            return self.kind_defaults[name][0 if self.data.is_image else 1]
        return value

    def build(self, shape: tuple[int, ...]) -> Transform:
        """The flow ``f`` on ``(B, *shape)`` (after preprocessing for images)."""
        raise NotImplementedError

    def make_base(self, shape: tuple[int, ...]) -> Prior:
        """The base density :math:`p_Z` on ``(B, *shape)``: the registered prior named by ``base``."""
        from gmkit_core.registry import registry

        return registry.get("prior", self.config.base, shape=shape)

    @property
    def dropout(self) -> float:
        """The config's ``dropout``, or its data-dependent default when unset."""
        if self.config.dropout is not None:
            return self.config.dropout
        return IMAGE_DROPOUT if self.data.is_image else 0.0

    # -- densities -------------------------------------------------------------
    def log_prob(self, y: Tensor) -> Tensor:
        r""":math:`\log p(y) = \log p_Z(f(y)) + \log|\det J_f(y)|`, ``(B, *shape) -> (B,)`` nats."""
        z, ladj = self.transform(y)
        return self.base.log_prob(z) + ladj

    def _bound_draws(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        r"""One draw of :math:`\log p(y) - \log q(u|x) - D\log L` (a lower bound on ``log P(x)`` in expectation)."""
        if self.dequantizer is not None:
            u, log_q = self.dequantizer(x, generator)
        else:
            u, log_q = uniform_noise(x, generator, self._dtype())
        y = (x.to(u.dtype) + u) / self.levels
        return self.log_prob(y) - log_q - dequantization_nats(self.data.dims, self.levels)

    def _nll(self, x: Tensor, samples: int, generator: torch.Generator | None) -> Tensor:
        if not self.data.is_image:
            return -self.log_prob(x.to(self._dtype()))
        draws = self._bound_draws(x.repeat(samples, *([1] * (x.ndim - 1))), generator)  # (K*B,)
        return -(torch.logsumexp(draws.view(samples, -1), 0) - math.log(samples))

    def nll(self, batch: Batch) -> Tensor:
        """``(B,)`` nats on the data as stored: exact for vectors; for images the dequantisation bound."""
        x = batch.x.to(self._device())
        generator = torch.Generator(device=x.device).manual_seed(self.config.seed)
        return self._nll(x, self.config.nll_samples if self.data.is_image else 1, generator)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        nll = self._nll(batch.x.to(self._device()), 1, None)
        per_dim = nll.mean() / self.data.dims
        out = {"loss": per_dim, "nll_nats": nll.mean().detach()}
        if self.data.is_image:
            out["bits_per_dim"] = bits_per_dim(nll.mean().detach(), self.data.dims)
        return out

    # -- sampling --------------------------------------------------------------
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if condition is not None:
            raise ConfigError(f"{type(self).__name__} is unconditional; sample without a label")
        with torch.no_grad():
            y, _ = self.transform.inverse(self.base.sample(n, generator=generator))
        if not self.data.is_image:
            return y
        return quantize(y, self.levels)

    # -- setup -----------------------------------------------------------------
    def prepare(self, train: Dataset) -> None:
        """Data-dependent ActNorm initialisation on up to 512 training examples."""
        batch = train.batch(slice(0, 512))
        was_training = self.training
        self.train()
        with torch.no_grad():
            self.loss(batch)
        self.train(was_training)

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Mean ``nll``; on images with a side above 16 the one-draw bound (fixed seed), a ``nll_samples``-th
        of the cost of ``nll``, so that validating fits the training budget."""
        if not self.data.is_large_image:
            return super().validation_score(data, batch_size)
        generator = torch.Generator(device=self._device()).manual_seed(self.config.seed)
        return self._mean(data, batch_size, lambda b: self._nll(b.x.to(self._device()), 1, generator))

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        out = super().evaluate(data, batch_size)
        if data.spec.is_image:
            out["dequantization"] = self.config.dequantization
            out["nll_samples"] = self.config.nll_samples
        return out

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype


def _flat(shape: tuple[int, ...], stack: Transform) -> Transform:
    """Run a vector flow on flattened images."""
    if len(shape) == 1:
        return stack
    return Compose(Reshape(shape, (math.prod(shape),)), stack, Reshape((math.prod(shape),), shape))


@attrs.frozen
class MAFConfig(DataOptions):
    layers: int | None = option(
        None, "number of MADE layers; default (none): 10 on images, 5 on vectors", v.optional(_POSITIVE)
    )
    hidden: int = option(128, "hidden units per MADE layer", _POSITIVE)
    depth: int = option(2, "hidden layers per MADE", _POSITIVE)
    dropout: float | None = _dropout()
    mixer: str = option(
        "auto",
        "between layers: none, reverse (permutation), lu (invertible linear), or auto "
        "(reverse on images, lu on vectors)",
        v.in_(("auto", *MIXERS)),
    )
    actnorm: bool = option(True, "ActNorm (data-initialised) before each layer", v.instance_of(bool))
    components: int | None = option(
        None,
        "Gaussians per conditional of a MADE MoG base on top of the flow (MAF MoG; 0: the `base` prior); "
        "default (none): 0 on images, 20 on vectors",
        v.optional([v.instance_of(int), v.ge(0)]),
    )


class MAF(FlowModel):
    r"""Masked autoregressive flow: affine MADE layers, :math:`y_i = x_i e^{s_i(x_{<i})} + t_i(x_{<i})`.

    One pass to evaluate the density, ``D`` passes to sample. With ``components > 0`` the base
    density is a MADE MoG (:mod:`gmkit_flows.mixture`) in the reverse order of the last layer:
    the paper's MAF MoG. Papamakarios et al. (2017, arXiv:1705.07057).
    """

    Config = MAFConfig
    train_defaults: ClassVar[dict[str, Any]] = TRAIN_DEFAULTS
    #: 2D densities (docs/models/flows.md): MAF MoG with 5 layers, rotations between them, 20 components;
    #: twice the learning rate and 12000 steps (the checkerboard's conditionals switch sharply)
    kind_defaults: ClassVar[dict[str, tuple[Any, Any]]] = {
        "layers": (10, 5),
        "mixer": ("reverse", "lu"),
        "components": (0, 20),
    }
    vector_train_defaults: ClassVar[dict[str, Any]] = {**VECTOR_TRAIN_DEFAULTS, "lr": 2e-3, "steps": 12000}

    def make_base(self, shape: tuple[int, ...]) -> Prior:
        """A MADE MoG when ``components > 0`` (reverse order), else the registered prior ``base``."""
        components = self.setting("components")
        if not components:
            return super().make_base(shape)
        if self.config.base != "standard_normal":
            raise ConfigError(
                f"maf: base={self.config.base} and a MADE MoG base (components={components}) exclude each other; "
                "set components=0 to use base"
            )
        c = self.config
        features = math.prod(shape)
        return MADEMoG(shape, components, c.hidden, c.depth, torch.arange(features, 0, -1), self.dropout)

    def build(self, shape: tuple[int, ...]) -> Transform:
        c = self.config
        stack = autoregressive_stack(
            math.prod(shape),
            self.setting("layers"),
            "affine",
            c.hidden,
            c.depth,
            self.dropout,
            self.setting("mixer"),
            c.actnorm,
            seed=c.seed,
        )
        return _flat(shape, stack)


@attrs.frozen
class NSFConfig(DataOptions):
    structure: str = option(
        "autoregressive", "autoregressive (MADE) or coupling layers", v.in_(("autoregressive", "coupling"))
    )
    layers: int = option(4, "number of spline layers", _POSITIVE)
    hidden: int = option(128, "hidden units per conditioner layer", _POSITIVE)
    depth: int = option(2, "hidden layers per conditioner", _POSITIVE)
    bins: int | None = option(None, "spline bins K; default (none): 8 on images, 16 on vectors", v.optional(_POSITIVE))
    bound: float | None = option(
        None,
        "the spline acts on [-bound, bound], identity outside; default (none): 5 on "
        "images, 3 on vectors (ActNorm has scaled them to unit variance)",
        v.optional([v.instance_of(float), v.gt(0.0)]),
    )
    dropout: float | None = _dropout()
    mixer: str = option("lu", "between layers: none, reverse (permutation) or lu (invertible linear)", v.in_(MIXERS))
    actnorm: bool = option(True, "ActNorm (data-initialised) before each layer", v.instance_of(bool))


class NSF(FlowModel):
    """Neural spline flow: rational-quadratic spline layers (autoregressive or coupling) with LU mixing.

    Durkan et al. (2019, arXiv:1906.04032).
    """

    Config = NSFConfig
    train_defaults: ClassVar[dict[str, Any]] = TRAIN_DEFAULTS
    #: splines on 2D densities: twice the learning rate (checkerboard: 3.556 nats against 3.466, docs/models/flows.md)
    vector_train_defaults: ClassVar[dict[str, Any]] = {**VECTOR_TRAIN_DEFAULTS, "lr": 2e-3}
    kind_defaults: ClassVar[dict[str, tuple[Any, Any]]] = {"bins": (8, 16), "bound": (5.0, 3.0)}

    def build(self, shape: tuple[int, ...]) -> Transform:
        c = self.config
        make = autoregressive_stack if c.structure == "autoregressive" else coupling_stack
        stack = make(
            math.prod(shape),
            c.layers,
            "spline",
            c.hidden,
            c.depth,
            self.dropout,
            c.mixer,
            c.actnorm,
            self.setting("bins"),
            self.setting("bound"),
            c.seed,
        )
        return _flat(shape, stack)


@attrs.frozen
class RealNVPConfig(DataOptions):
    coupling: str = option(
        "affine", "affine (RealNVP) or additive (NICE, volume preserving)", v.in_(("affine", "additive"))
    )
    scales: int = option(2, "images: multi-scale levels (squeeze and factor out half per level)", _POSITIVE)
    steps: int = option(3, "images: couplings per mask type per scale; vectors: half of the coupling layers", _POSITIVE)
    hidden: int = option(64, "conditioner width (CNN channels for images, MLP units for vectors)", _POSITIVE)
    depth: int = option(2, "residual blocks (images) or hidden layers (vectors) per conditioner", _POSITIVE)
    dropout: float | None = _dropout()
    actnorm: bool = option(True, "ActNorm (data-initialised) before each coupling", v.instance_of(bool))
    components: int | None = option(
        None,
        "vectors: components of a learned diagonal Gaussian mixture base (0: the `base` prior); "
        "default (none): 10 on vectors; images always use `base`",
        v.optional([v.instance_of(int), v.ge(0)]),
    )


class RealNVP(FlowModel):
    """RealNVP: affine (or additive, NICE) couplings; multi-scale checkerboard/channel masks on images.

    On vectors the base is by default a learned diagonal Gaussian mixture (:class:`~gmkit_flows.mixture.GaussianMixture`,
    ``components``). Dinh et al. (2016, arXiv:1605.08803); NICE: Dinh et al. (2014, arXiv:1410.8516).
    """

    Config = RealNVPConfig
    train_defaults: ClassVar[dict[str, Any]] = TRAIN_DEFAULTS
    kind_defaults: ClassVar[dict[str, tuple[Any, Any]]] = {"components": (0, 10)}

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images with a side above 16: three scales of two couplings per mask type, 32 channels, no dropout
        (the full-resolution checkerboard couplings cost the most; about 0.5 CPU s per step of 32 on 3x32x32)."""
        if data.is_large_image:
            return {"scales": 3, "steps": 2, "hidden": 32, "dropout": 0.0}
        return {}

    def make_base(self, shape: tuple[int, ...]) -> Prior:
        """A learned Gaussian mixture on vectors when ``components > 0``, else the registered prior ``base``."""
        components = self.setting("components")
        if not components or self.data.is_image:
            return super().make_base(shape)
        if self.config.base != "standard_normal":
            raise ConfigError(
                f"realnvp: base={self.config.base} and a Gaussian mixture base (components={components}) exclude "
                "each other; set components=0 to use base"
            )
        return GaussianMixture(shape, components, self.config.seed)

    def build(self, shape: tuple[int, ...]) -> Transform:
        c = self.config
        if len(shape) == 3:
            return multiscale(shape, c.scales, c.steps, c.coupling, c.hidden, c.depth, self.dropout, c.actnorm)
        return coupling_stack(
            math.prod(shape), 2 * c.steps, c.coupling, c.hidden, c.depth, self.dropout, "none", c.actnorm
        )


@attrs.frozen
class GlowConfig(DataOptions):
    levels: int = option(2, "multi-scale levels (each squeezes, then factors out half)", _POSITIVE)
    steps: int = option(8, "flow steps per level: ActNorm, invertible 1x1 conv, coupling", _POSITIVE)
    coupling: str = option("affine", "affine or additive coupling", v.in_(("affine", "additive")))
    hidden: int = option(64, "CNN channels in each coupling", _POSITIVE)
    blocks: int = option(2, "residual blocks per coupling CNN", _POSITIVE)
    dropout: float | None = _dropout()


class Glow(FlowModel):
    """Glow: levels of [ActNorm, LU 1x1 convolution, affine coupling], squeeze and split (images only).

    Kingma & Dhariwal (2018, arXiv:1807.03039).
    """

    Config = GlowConfig
    image_only = True
    likelihood: ClassVar[str | dict[str, str]] = "bound"
    train_defaults: ClassVar[dict[str, Any]] = TRAIN_DEFAULTS

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images with a side above 16: up to three levels (as many as halve the sides evenly: 3 on 32x32,
        2 on 28x28) of 4 steps, no dropout (thousands of training images, a few epochs)."""
        if not data.is_large_image:
            return {}
        height, width = data.shape[-2:]
        levels = 1
        while levels < 3 and height % 2 ** (levels + 1) == 0 and width % 2 ** (levels + 1) == 0:
            levels += 1
        return {"levels": levels, "steps": 4, "dropout": 0.0}

    def build(self, shape: tuple[int, ...]) -> Transform:
        c = self.config
        channels, height, width = shape  # Glow is image_only: (C, H, W)
        return glow((channels, height, width), c.levels, c.steps, c.coupling, c.hidden, c.blocks, self.dropout, c.seed)
