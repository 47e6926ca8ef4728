r"""The skeleton the three continuous-time models share.

A model here is a :class:`~gmkit_core.paths.Denoiser`: it maps data to *model space*, exposes
its :class:`~gmkit_core.paths.GaussianPath` and :math:`\hat x_0(x_t, t, y)`, and so samples with
the core's shared solvers (``euler``, ``heun``, ``dpmpp_2m``) and evaluates the
probability-flow ODE likelihood of :mod:`gmkit_score.ode`. Subclasses supply the path, the
network read-out (:meth:`ContinuousModel.x0_from_network`) and the training loss.

Model space: image levels :math:`k \in \{0..L-1\}` -> bin centres :math:`c_k = 2k/(L-1) - 1`,
bins :math:`[c_k - \delta, c_k + \delta)` with :math:`\delta = 1/(L-1)`; vectors -> :math:`x/s`
with :math:`s` the training data's standard deviation (``prepare``).

**ODE bound on discrete data.** With :math:`u \sim U[-\delta, \delta)^D` and the ODE density
:math:`p` in model space, :math:`P(x) = \int_{\text{bin}(x)} p = (2\delta)^D\,E_u[p(c_x + u)]`, so by Jensen

.. math:: -\log P(x) \le E_u[-\log p(c_x + u)] + D\log\frac{L-1}{2}

(Theis et al., 2016, arXiv:1511.01844): a bound *in expectation over the dequantisation
noise*, exact up to the ODE solver's error when the divergence is exact. Vectors: the
density :math:`-\log p(x) = -\log p_{\text{model}}(x/s) + D\log s`.

**Labels.** With labels (and ``class_conditional``) the network sees :math:`y`, replaced by the
null label ``K`` at rate ``label_dropout`` for classifier-free guidance (Ho & Salimans, 2022,
arXiv:2207.12598). ``nll`` is :math:`-\log p(x \mid y)`; the headline marginal
:math:`p(x) = \frac1K\sum_y p(x \mid y) \ge \frac1K p(x \mid y_{\text{true}})` is bounded by
``nll + log K`` (:meth:`ContinuousModel.marginal_nll`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch
from attrs.validators import ge, gt, in_, instance_of, le
from torch import Tensor

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel
from gmkit_core.paths import GaussianPath, broadcast, ode_velocity
from gmkit_core.registry import registry
from gmkit_core.solvers import SOLVERS

from . import ode

__all__ = [
    "ContinuousModel",
    "ContinuousConfig",
    "PathTrainingConfig",
    "opt",
    "DIVERGENCES",
    "fourier_features",
    "plane_options",
    "training_times",
]

DIVERGENCES = ("auto", "exact", "hutchinson")
#: ``divergence=auto`` is exact up to this many dimensions, Hutchinson above.
EXACT_MAX_DIMS = 256


def opt(default: Any, help: str, *validators: Any) -> Any:  # noqa: A002 - attrs metadata key
    """An attrs field with a default, validators and a help line."""
    validator = validators[0] if len(validators) == 1 else list(validators)
    return attrs.field(default=default, validator=validator or None, metadata={"help": help})


@attrs.frozen
class ContinuousConfig:
    """Options every model of this plugin has (networks, labels, sampling, the ODE likelihood)."""

    network: str = opt("auto", "network: unet (images), mlp (vectors) or auto", in_(("auto", "unet", "mlp")))
    hidden: int = opt(256, "mlp: hidden width", instance_of(int), ge(4))
    depth: int = opt(4, "mlp: residual layers", instance_of(int), ge(1))
    channels: int = opt(32, "unet: base width", instance_of(int), ge(1))
    mults: tuple[int, ...] = opt((1, 2), "unet: width multiplier per resolution, comma separated")
    blocks: int = opt(1, "unet: residual blocks per resolution", instance_of(int), ge(1))
    attention: tuple[int, ...] = opt((4,), "unet: resolutions (side length) with self-attention")
    heads: int = opt(4, "unet: attention heads", instance_of(int), ge(1))
    dropout: float = opt(0.1, "unet: dropout", ge(0.0), le(1.0))
    class_conditional: bool = opt(True, "condition on labels when the data have them (classifier-free guidance)")
    label_dropout: float = opt(0.1, "probability of training with the null label", ge(0.0), le(1.0))
    guidance: float = opt(1.0, "classifier-free guidance scale at sampling (1: plain conditional)")
    sampler: str = opt(
        "dpmpp_2m", "sampler of `sample`: euler, heun or dpmpp_2m (the shared ODE solvers)", in_(SOLVERS)
    )
    nfe: int = opt(40, "denoiser evaluations of `sample`", instance_of(int), ge(1))
    divergence: str = opt(
        "auto",
        "ODE likelihood: exact (a bound on discrete data), hutchinson (an estimate), "
        f"auto (exact up to {EXACT_MAX_DIMS} dimensions)",
        in_(DIVERGENCES),
    )
    ode_method: str = opt("rk4", "ODE likelihood solver: rk4 (fixed steps) or rk45 (adaptive)", in_(("rk4", "rk45")))
    ode_steps: int = opt(32, "rk4: steps (4 evaluations each)", instance_of(int), ge(1))
    rtol: float = opt(1e-5, "rk45: relative tolerance", gt(0.0))
    atol: float = opt(1e-5, "rk45: absolute tolerance", gt(0.0))
    ode_warp: float = opt(
        0.0,
        "likelihood ODE solved in s with t = t0 + (t1 - t0) s^warp (>= 1: steps crowd near the data; "
        "0: the model's choice, 2 for the vp and subvp SDEs, else 1)",
        ge(0.0),
    )
    ode_nodes: int = opt(
        -1,
        "divergence at this many Gauss-Legendre nodes of the solved path (0: at every solver stage; "
        "-1: 0 on vectors, 16 on images)",
        instance_of(int),
        ge(-1),
    )
    divergence_chunk: int = opt(
        16, "exact divergence: basis vectors per batched backward pass", instance_of(int), ge(1)
    )
    seed: int = opt(0, "seed of the noise in nll (dequantisation, probes, Monte Carlo time)", instance_of(int))


@attrs.frozen
class PathTrainingConfig(ContinuousConfig):
    """Options of the models trained by regression on a fixed path (``score_sde``, ``flow_matching``)."""

    t_power: float = opt(
        1.0, "training times t = t_min + (t_max - t_min) u^p, u antithetic uniform (p > 1: more near the data)", gt(0.0)
    )
    x_fourier: tuple[int, ...] = opt(
        (), "vectors: exponents n of input features sin/cos(2^n pi x) beside x (empty: none)"
    )
    dequantize: bool = opt(
        False, "images: train on c_x + u, u ~ U[-1/(L-1), 1/(L-1)), the density the likelihood bound integrates"
    )


def plane_options(data: DataSpec) -> dict[str, Any]:
    """2D vectors: ``x_fourier = (0, 1, 2)``, features that let an MLP form the sharp edges of a density on the
    plane (the checkerboard's squares; measured in docs/models/score.md); otherwise none."""
    return {"x_fourier": (0, 1, 2)} if data.kind == "vector" and data.dims <= 2 else {}


def training_times(B: int, device: torch.device, t_min: float, t_max: float, power: float) -> Tensor:
    r""":math:`t = t_{\min} + (t_{\max} - t_{\min})u^p` with antithetic :math:`u_b = (u + b/B) \bmod 1`, ``(B,)``."""
    u = torch.remainder(torch.rand((), device=device) + torch.arange(B, device=device) / B, 1.0)
    return t_min + (t_max - t_min) * (u if power == 1.0 else u.pow(power))


def fourier_features(z: Tensor, exponents: tuple[int, ...]) -> Tensor:
    r"""``[z, sin(2^n pi z), cos(2^n pi z) for n in exponents]`` concatenated on dim 1: ``(B, C(1+2K), ...)``."""
    if not exponents:
        return z
    feats = [z]
    for n in exponents:
        feats += [torch.sin(2.0**n * math.pi * z), torch.cos(2.0**n * math.pi * z)]
    return torch.cat(feats, 1)


class ContinuousModel(GenerativeModel):
    """Shared by ``vdm``, ``score_sde`` and ``flow_matching``; see the module docstring."""

    likelihood: ClassVar[str] = "bound"
    conditional: bool = True
    scale: Tensor
    levels: int | None
    #: the network's extra input channels per data channel (VDM's Fourier features)
    input_multiplier: int = 1
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 3000,
        "batch_size": 128,
        "lr": 2e-3,
        "optimizer": "adamw",
        "weight_decay": 0.0,
        "schedule": "cosine",
        "warmup": 100,
        "grad_clip": 1.0,
        "ema": 0.995,
        "eval_every": 500,
        "patience": 0,
    }
    #: learning rate on 2D toys and other vector data (None: ``train_defaults``' own)
    vector_lr: ClassVar[float | None] = 1e-3

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """2D toys and other vectors: longer training, larger batches (and ``vector_lr``)."""
        if data.kind != "vector":
            return dict(cls.train_defaults)
        lr = {} if cls.vector_lr is None else {"lr": cls.vector_lr}
        return {**cls.train_defaults, "steps": 10_000, "batch_size": 512, "eval_every": 2500, **lr}

    @classmethod
    def likelihood_kind(cls, data: DataSpec | None = None, config: Any = None) -> str:
        """With the exact divergence: ``bound`` on discrete images (dequantisation), ``exact`` on vectors (the
        flow's density, ODE error aside); with Hutchinson's: ``estimate``."""
        if config is None or data is None:
            return "exact (vector), bound (image); estimate with divergence=hutchinson"
        if cls.resolved_divergence(config, data) == "hutchinson":
            return "estimate"
        return "exact" if data.kind == "vector" else "bound"

    @staticmethod
    def resolved_divergence(config: Any, data: DataSpec) -> str:
        if config.divergence != "auto":
            return str(config.divergence)
        return "exact" if data.dims <= EXACT_MAX_DIMS else "hutchinson"

    def __init__(self, config: Any, data: DataSpec):
        super().__init__(config, data)
        image = data.kind == "image"
        if data.kind not in ("image", "vector"):
            raise DataError(f"{self.name}: needs images (C, H, W) or vectors (D,), got {data.kind} data '{data.name}'")
        if image and not data.levels:
            raise DataError(f"{self.name}: image data '{data.name}' must declare its number of levels")
        self.levels = data.levels if image else None
        self.network_name = config.network if config.network != "auto" else ("unet" if image else "mlp")
        if self.network_name == "unet" and not image:
            raise ConfigError(f"{self.name}: network=unet needs images; use network=mlp for vector data")
        self.num_classes = data.num_classes if config.class_conditional else None
        self.conditional = self.num_classes is not None
        self.register_buffer("scale", torch.ones(()))

    def input_exponents(self, config: Any) -> tuple[int, ...]:
        """``x_fourier`` (vectors only), and the network's input width to match."""
        exponents = tuple(config.x_fourier)
        if exponents and self.levels:
            raise ConfigError(f"{self.name}: x_fourier is for vector data")
        self.input_multiplier = 1 + 2 * len(exponents)
        return exponents

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    def build_network(self, out_channels: int | None = None) -> torch.nn.Module:
        """The registered denoiser network (``unet`` or ``mlp`` from gmkit-diffusion)."""
        c, data = self.config, self.data
        shape = (data.shape[0] * self.input_multiplier, *data.shape[1:])
        options = (
            {
                "channels": c.channels,
                "mults": c.mults,
                "blocks": c.blocks,
                "attention": c.attention,
                "heads": c.heads,
                "dropout": c.dropout,
            }
            if self.network_name == "unet"
            else {"hidden": c.hidden, "depth": c.depth}
        )
        return registry.get(
            "network",
            self.network_name,
            shape=shape,
            out_channels=out_channels or data.shape[0],
            num_classes=self.num_classes,
            **options,
        )

    # -- model space ------------------------------------------------------------------
    def device(self) -> torch.device:
        return self.scale.device

    def prepare(self, train: Dataset) -> None:
        """Vectors: ``scale`` = the training data's standard deviation."""
        if not self.levels and len(train) > 1:
            self.scale.fill_(float(train.x.double().std()))

    def to_model_space(self, x: Tensor) -> Tensor:
        """Stored data -> model space (bin centres in [-1, 1] for images, ``x / scale`` for vectors)."""
        return (
            to_unit_interval(x.to(self.device()), self.levels)
            if self.levels
            else x.to(self.device()).float() / self.scale
        )

    def decode(self, x0: Tensor, generator: torch.Generator | None = None, mode: bool = False) -> Tensor:
        """Model space -> stored data: the level whose bin holds ``x0`` (images), ``scale * x0`` (vectors)."""
        if self.levels:
            return torch.round((x0 + 1) * ((self.levels - 1) / 2)).clamp(0, self.levels - 1).long()
        return self.scale * x0

    def labels(self, batch: Batch) -> Tensor | None:
        if self.num_classes is None or batch.y is None:
            return None
        return batch.y.to(self.device()).long()

    def drop_labels(self, y: Tensor | None) -> Tensor | None:
        """Training labels with the null label at rate ``label_dropout``."""
        if y is None or self.config.label_dropout <= 0:
            return y
        drop = torch.rand(y.shape, device=y.device) < self.config.label_dropout
        return torch.where(drop, torch.full_like(y, int(self.num_classes or 0)), y)

    def sampling_labels(self, n: int, condition: Tensor | None, generator: torch.Generator | None) -> Tensor | None:
        """``condition`` checked and moved to the device; a conditional model without one draws uniform labels."""
        if self.num_classes is None:
            if condition is not None:
                raise ConfigError(f"{self.name}: this model is unconditional; sample without a label")
            return None
        if condition is None:
            return torch.randint(self.num_classes, (n,), generator=generator, device=self.device())
        y = torch.as_tensor(condition, device=self.device()).long().reshape(-1)
        if y.numel() == 1:
            y = y.expand(n)
        if y.shape != (n,) or int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ConfigError(f"{self.name}: condition must be {n} labels in [0, {self.num_classes})")
        return y

    def training_data(self, batch: Batch) -> Tensor:
        """``batch.x`` in model space; images with ``dequantize`` get uniform noise within their bins."""
        x = self.to_model_space(batch.x)
        if self.levels and getattr(self.config, "dequantize", False):
            half = 1.0 / (self.levels - 1)
            x = x + (torch.rand_like(x) * 2 - 1) * half
        return x

    # -- the denoiser ----------------------------------------------------------------------
    def path(self) -> GaussianPath:
        raise NotImplementedError

    def x0_from_network(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        r""":math:`\hat x_0(x_t, t, y)` from the network, unguided (subclasses)."""
        raise NotImplementedError

    def denoise(self, x_t: Tensor, t: Tensor, condition: Tensor | None = None, guidance: float | None = None) -> Tensor:
        r""":math:`\hat x_0`, guided as :math:`\hat x_0^\varnothing + s(\hat x_0^y - \hat x_0^\varnothing)` when ``s != 1``."""
        s = self.config.guidance if guidance is None else guidance
        if condition is None or s == 1.0:
            return self.x0_from_network(x_t, t, condition)
        null = torch.full_like(condition, int(self.num_classes or 0))
        both = self.x0_from_network(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([condition, null]))
        cond, uncond = both.chunk(2)
        return uncond + s * (cond - uncond)

    def velocity(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The probability-flow velocity (unguided), from :math:`\\hat x_0` unless a model predicts it directly."""
        return ode_velocity(self.path(), x, t, self.x0_from_network(x, t, y))

    # -- sampling -----------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        nfe: int | None = None,
        guidance: float | None = None,
    ) -> Tensor:
        """``n`` samples with a shared ODE solver (``sampler``, ``nfe``, ``guidance`` override the config)."""
        sampler = sampler or self.config.sampler
        if sampler not in SOLVERS:
            raise ConfigError(f"{self.name}: unknown sampler '{sampler}'; samplers: {', '.join(SOLVERS)}")
        return registry.get("sampler", sampler, nfe=nfe or self.config.nfe, guidance=guidance)(
            self, n, condition=condition, generator=generator
        )

    # -- likelihood ---------------------------------------------------------------------------
    def default_warp(self) -> float:
        """What ``ode_warp=0`` resolves to: 1 (plain time) unless a model's velocity needs more."""
        return 1.0

    def resolved_warp(self) -> float:
        """``ode_warp``, with ``0`` resolved to :meth:`default_warp`."""
        warp = float(self.config.ode_warp)
        if 0.0 < warp < 1.0:
            raise ConfigError(f"{self.name}: ode_warp must be 0 (the model's choice) or >= 1, got {warp}")
        return warp or self.default_warp()

    def resolved_nodes(self) -> int:
        """``ode_nodes``, with ``-1`` resolved: 0 (divergence at every stage) on vectors, 16 on images."""
        nodes = int(self.config.ode_nodes)
        return nodes if nodes >= 0 else (16 if self.levels else 0)

    def ode_times(self) -> tuple[float, float]:
        """``(t0, t1)`` of the likelihood ODE."""
        path = self.path()
        return path.t_min, path.t_max

    def prior_log_prob(self, x1: Tensor) -> Tensor:
        r""":math:`\log\mathcal N(x_1; 0, (\alpha_1^2 + \sigma_1^2) I)` at :math:`t_1` (fixed and normalised)."""
        t1 = torch.full((1,), self.ode_times()[1], device=x1.device)
        path = self.path()
        var = float(path.alpha(t1) ** 2 + path.sigma(t1) ** 2)
        d = x1[0].numel()
        return -0.5 * (x1.flatten(1).square().sum(1) / var + d * math.log(2 * math.pi * var))

    def ode_nll(
        self,
        batch: Batch,
        generator: torch.Generator | None = None,
        divergence: str | None = None,
        nodes: int | None = None,
        steps: int | None = None,
    ) -> tuple[Tensor, int]:
        """``(nll nats (B,), nfe)`` by the probability-flow ODE (see the module docstring); ``divergence``,
        ``nodes`` and ``steps`` override the config's."""
        divergence = divergence or self.resolved_divergence(self.config, self.data)
        x = self.to_model_space(batch.x)
        if self.levels:
            half = 1.0 / (self.levels - 1)
            u = torch.rand(x.shape, generator=generator, device=x.device) * (2 * half) - half
            x, constant = x + u, self.data.dims * math.log((self.levels - 1) / 2)
        else:
            constant = self.data.dims * math.log(float(self.scale))
        y = self.labels(batch)
        t0, t1 = self.ode_times()
        c = self.config
        result = ode.log_density(
            lambda z, t: self.velocity(z, t, y),
            x,
            t0,
            t1,
            self.prior_log_prob,
            divergence=divergence,
            method=c.ode_method,
            steps=c.ode_steps if steps is None else steps,
            rtol=c.rtol,
            atol=c.atol,
            generator=generator,
            warp=self.resolved_warp(),
            nodes=self.resolved_nodes() if nodes is None else nodes,
            chunk=c.divergence_chunk,
        )
        self.last_nfe, self.last_divergence_nfe = result.nfe, result.divergence_evaluations
        return constant - result.log_density, result.nfe

    def nll_generator(self) -> torch.Generator:
        return torch.Generator(device=self.device()).manual_seed(self.config.seed)

    def nll(self, batch: Batch) -> Tensor:
        """ODE negative log-likelihood in nats (a bound in expectation with the exact divergence)."""
        return self.ode_nll(batch, self.nll_generator())[0].detach()

    def marginal_nll(self, batch: Batch) -> Tensor:
        r"""``nll + log K``: a bound on :math:`-\log\frac1K\sum_y p(x\mid y)` from the true label's term."""
        return self.nll(batch) + math.log(int(self.data.num_classes or 1))

    def ode_settings(self) -> dict[str, Any]:
        """What evaluate reports about the likelihood ODE."""
        c = self.config
        out: dict[str, Any] = {
            "ode_divergence": self.resolved_divergence(c, self.data),
            "ode_method": c.ode_method,
            "ode_t0": self.ode_times()[0],
            "ode_t1": self.ode_times()[1],
            "ode_warp": self.resolved_warp(),
            "ode_nodes": self.resolved_nodes(),
        }
        if c.ode_method == "rk4":
            out.update(ode_steps=c.ode_steps)
        else:
            out.update(ode_rtol=c.rtol, ode_atol=c.atol)
        out["ode_nfe"] = getattr(self, "last_nfe", None)
        out["ode_divergence_nfe"] = getattr(self, "last_divergence_nfe", None)
        return out

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Mean training loss on ``data`` with the global RNG seeded by ``seed`` (cheap; ``nll`` solves an ODE)."""
        with torch.random.fork_rng(devices=[self.device()] if self.device().type == "cuda" else []):
            torch.manual_seed(self.config.seed)
            return self._mean(data, batch_size, lambda b: self.loss(b)["loss"].detach().expand(len(b)))

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        out = super().evaluate(data, batch_size)
        out.update(self.ode_settings())
        return out


def at(t: Tensor, like: Tensor) -> Tensor:
    """Shorthand of :func:`gmkit_core.paths.broadcast`."""
    return broadcast(t, like)
