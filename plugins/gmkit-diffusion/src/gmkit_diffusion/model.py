r"""DDPM: a denoising diffusion probabilistic model with the full variational bound.

Forward process :math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`
on data mapped to model space (images: level ``k`` -> ``2k/(L-1) - 1``, vectors as
they are); reverse model :math:`p_\theta(x_{t-1} \mid x_t) = \mathcal N(\tilde\mu_t(x_t, \hat x_0(x_t, t)), \sigma_t^2 I)`
with :math:`\hat x_0` from a denoiser network (:mod:`~gmkit_diffusion.parameterization`)
and :math:`\sigma_t^2 \in \{\beta_t, \tilde\beta_t\}`; decoder :math:`p_\theta(x_0 \mid x_1)`
as in :mod:`~gmkit_diffusion.bound`. ``nll`` is the bound
:math:`L_T + \sum_{t \ge 2} L_{t-1} + L_0` in nats (an upper bound on :math:`-\log p_\theta(x)`
of the discrete images, or of the continuous vectors' density).

Class-conditional models (data with labels) train :math:`\hat x_0(x_t, t, y)` with
labels replaced by the null class at rate ``label_dropout``; they model
:math:`p(x) = \frac1K\sum_y p_\theta(x \mid y)`. ``nll`` is the bound on
:math:`-\log p_\theta(x \mid y)` at the given label; ``marginal_nll`` (the headline of
``evaluate``) is :math:`-\log p(x) \le -\log p_\theta(x \mid y) + \log K` for the true label,
valid because :math:`\sum_{y'} p(x \mid y') \ge p(x \mid y)`: one bound per example instead of
the ``K`` of the (tighter) log-mean-exp over all labels.
References: Ho et al. (2020, arXiv:2006.11239); Nichol & Dhariwal (2021, arXiv:2102.09672);
Ho & Salimans (2022, arXiv:2207.12598); Peebles & Xie (2023, arXiv:2212.09748).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs
import torch
from attrs.validators import ge, in_, instance_of, le
from torch import Tensor

from gmkit_core.config import option
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import DiscretizedGaussian, Normal, quantize, to_unit_interval
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel, NoiseSchedule, bits_per_dim
from gmkit_core.registry import registry
from gmkit_core.seeding import batch_generator

from . import bound, parameterization
from .path import DDPMPath, to_step
from .samplers import DDIMSampler, DDPMSampler, progress_bar

__all__ = ["DDPM", "DDPMConfig"]


@attrs.frozen
class DDPMConfig:
    """Options of ``ddpm``; ``--set key=value`` on the command line."""

    network: str = option(
        "auto",
        "denoiser: unet, dit, mlp (vectors), or auto (unet for images, mlp for vectors)",
        in_(("auto", "unet", "dit", "mlp")),
    )
    schedule: str = option(
        "loglinear",
        "noise schedule: loglinear (log SNR from 9.2 to -10), linear (1e-4..0.02), "
        "cosine (s=0.008), custom (uses betas)",
        in_(("loglinear", "linear", "cosine", "custom")),
    )
    logsnr_max: float = option(
        9.2, "loglinear: log SNR at t = 1 (images with L levels: 9.2 + 2 log((L-1)/16) when above 9.2)"
    )
    T: int = option(1000, "number of diffusion steps (schedule=custom takes T = len(betas))", [instance_of(int), ge(2)])
    betas: tuple[float, ...] = option((), "betas of schedule=custom, comma separated, each in (0, 1)")
    prediction: str = option(
        "auto",
        "what the network predicts: eps, x0, v, levels (images: logits over grey levels), "
        "or auto (levels for images, eps for vectors)",
        in_(("auto", *parameterization.PREDICTIONS)),
    )
    variance: str = option(
        "auto",
        "reverse variance sigma_t^2: beta, beta_tilde (the posterior's), or auto "
        "(beta_tilde for images, whose x0 is pinned down at small t; beta for vectors)",
        in_(("auto", *bound.VARIANCES)),
    )
    loss: str = option(
        "simple",
        "training loss: simple (MSE of the prediction target), vlb (the bound per dim), "
        "hybrid (simple + vlb_weight * vlb)",
        in_(("simple", "vlb", "hybrid")),
    )
    vlb_weight: float = option(1.0, "weight of the bound in the hybrid loss", ge(0.0))
    clip_x0: bool = option(
        True, "images: clip x0-hat to [-1, 1] (part of the model: used by the bound and the samplers)"
    )
    class_conditional: bool = option(True, "condition on labels when the data have them (classifier-free guidance)")
    label_dropout: float = option(
        0.1, "probability of training with the null class instead of the label", [ge(0.0), le(1.0)]
    )
    guidance: float = option(1.0, "classifier-free guidance scale s at sampling (1: plain conditional)")
    sampler: str = option("ddpm", "sampler of `sample`: ddpm (ancestral, T steps) or ddim", in_(("ddpm", "ddim")))
    sample_steps: int = option(50, "ddim: number of steps", [instance_of(int), ge(1)])
    eta: float = option(0.0, "ddim: stochasticity (0 deterministic, 1 ancestral-like)", ge(0.0))
    picture_sampler: str = option(
        "ddim",
        "sampler of the pictures gmkit train draws (periodic and final): ddim "
        "(sample_steps steps) or ddpm (ancestral, all T steps: T/sample_steps times slower)",
        in_(("ddpm", "ddim")),
    )
    nll_steps: int = option(
        0,
        "steps t of the bound in nll: 0 = all T (a true upper bound); K > 0 = an unbiased "
        "estimate: L_0 exactly plus K stratified steps of 2..T, each weighted by its stratum size",
        [instance_of(int), ge(0)],
    )
    val_steps: int = option(
        50, "steps of the fixed-seed bound estimate used as the validation score", [instance_of(int), ge(1)]
    )
    seed: int = option(0, "seed of the noise in nll and the validation score", instance_of(int))
    channels: int = option(32, "unet: base width", [instance_of(int), ge(1)])
    mults: tuple[int, ...] = option((1, 2), "unet: width multiplier per resolution, comma separated")
    blocks: int = option(1, "unet: residual blocks per resolution", [instance_of(int), ge(1)])
    attention: tuple[int, ...] = option((4,), "unet: resolutions (side length) with self-attention, comma separated")
    heads: int = option(4, "unet and dit: attention heads", [instance_of(int), ge(1)])
    dropout: float = option(0.1, "unet: dropout in the residual blocks", [ge(0.0), le(1.0)])
    patch_size: int = option(2, "dit: patch size", [instance_of(int), ge(1)])
    hidden: int = option(128, "dit and mlp: token / hidden width", [instance_of(int), ge(4)])
    depth: int = option(4, "dit: transformer blocks; mlp: residual layers", [instance_of(int), ge(1)])


class DDPM(GenerativeModel):
    """Denoising diffusion on images (int levels) or vectors; see the module docstring."""

    Config: ClassVar[type] = DDPMConfig
    likelihood: ClassVar[str] = "bound"
    conditional = True  # per instance: False when the data have no labels or class_conditional=false
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 500,
        "batch_size": 128,
        "lr": 2e-3,
        "optimizer": "adamw",
        "weight_decay": 0.0,
        "schedule": "cosine",
        "warmup": 100,
        "grad_clip": 1.0,
        "ema": 0.995,
        "eval_every": 250,
        "patience": 0,
    }
    scale: Tensor  # registered buffer (vectors only)
    levels: int | None
    num_classes: int | None

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """2D toys need longer training with larger batches than digits (samples match checkerboard);
        images above 16 x 16 get a schedule sized to 10 CPU-minutes of one thread (batch 32, 500 steps
        of about 0.8 CPU s at 3 x 32 x 32, a shorter EMA) and one validation, at the end."""
        if data.kind == "vector":
            return {**cls.train_defaults, "steps": 10_000, "batch_size": 512}
        if data.is_large_image:
            large = {"steps": 500, "batch_size": 32, "lr": 1e-3, "warmup": 50, "ema": 0.99, "eval_every": 500}
            return {**cls.train_defaults, **large}
        return dict(cls.train_defaults)

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images with ``L > 17`` levels: the loglinear schedule starts at log SNR
        ``9.2 + 2 log((L-1)/16)``, which keeps the noise at ``t = 1`` the same fraction of the level
        spacing as 9.2 does for 17 levels (14.74 for 256 levels), over ``T = 2000`` steps.

        Images larger than 16 x 16: ``gauss_levels`` prediction (two output channels per colour
        channel instead of ``L``), a U-Net of width 32 on three resolutions with attention at 8 x 8
        and no dropout, and a sampled bound (20 stratified steps plus ``L_0``, with its standard error)
        for ``nll`` and 4 steps for validation, since the full bound costs T = 2000 network passes
        per image (``gmkit eval RUN --set nll_steps=0`` computes it)."""
        out: dict[str, Any] = {}
        if data.kind == "image" and data.levels and data.levels > 17:
            out["logsnr_max"] = round(9.2 + 2 * math.log((data.levels - 1) / 16), 2)
            out["T"] = 2000  # 0.012 in log SNR per step (digits: 0.019): half the time discretisation of T = 1000
        if data.is_large_image:
            out.update(
                prediction="gauss_levels",
                mults=(1, 2, 2),
                attention=(8,),
                dropout=0.0,
                nll_steps=20,
                val_steps=4,
            )
        return out

    @property
    def nll_is_sampled(self) -> bool:
        """``nll_steps = K < T - 1``: ``nll`` is a stratified estimate of the bound."""
        return 0 < self.config.nll_steps < self.schedule.T - 1

    def __init__(self, config: DDPMConfig, data: DataSpec):
        super().__init__(config, data)
        image = data.kind == "image"
        if image and not data.levels:
            raise DataError(f"ddpm: image data '{data.name}' must declare its number of levels")
        self.levels = data.levels if image else None
        self.network_name = config.network if config.network != "auto" else ("unet" if image else "mlp")
        self.prediction = config.prediction if config.prediction != "auto" else ("levels" if image else "eps")
        if self.prediction in ("levels", "gauss_levels") and not image:
            raise ConfigError(f"ddpm: prediction={self.prediction} needs image data; use eps, x0 or v for vectors")
        self.variance = config.variance if config.variance != "auto" else ("beta_tilde" if image else "beta")
        self.num_classes = data.num_classes if config.class_conditional else None
        self.conditional = self.num_classes is not None  # this instance's capability (the class can be either)
        self.schedule = self._build_schedule(config)
        self.network = self._build_network(config, data)
        # Vectors are diffused as x / scale (set by `prepare` to the training data's standard deviation);
        # the bound then gains D log(scale), the log-Jacobian of that map.
        if not image:
            self.register_buffer("scale", torch.ones(()))

    # -- construction ----------------------------------------------------------
    @staticmethod
    def _build_schedule(config: DDPMConfig) -> NoiseSchedule:
        if config.schedule == "custom":
            if not config.betas:
                raise ConfigError("ddpm: schedule=custom needs betas=b1,b2,...")
            return registry.get("schedule", "custom", betas=config.betas)
        if config.betas:
            raise ConfigError(f"ddpm: betas are only used with schedule=custom, not {config.schedule}")
        if config.schedule == "loglinear":
            return registry.get("schedule", "loglinear", T=config.T, logsnr_max=config.logsnr_max)
        return registry.get("schedule", config.schedule, T=config.T)

    def _build_network(self, config: DDPMConfig, data: DataSpec) -> torch.nn.Module:
        out = parameterization.output_channels(self.prediction, data.shape[0], self.levels)
        common: dict[str, Any] = {"shape": data.shape, "out_channels": out, "num_classes": self.num_classes}
        per_network: dict[str, dict[str, Any]] = {
            "unet": {
                "channels": config.channels,
                "mults": config.mults,
                "blocks": config.blocks,
                "attention": config.attention,
                "heads": config.heads,
                "dropout": config.dropout,
            },
            "dit": {
                "patch_size": config.patch_size,
                "hidden": config.hidden,
                "depth": config.depth,
                "heads": config.heads,
            },
            "mlp": {"hidden": config.hidden, "depth": config.depth},
        }
        return registry.get("network", self.network_name, **common, **per_network[self.network_name])

    # -- the pieces the bound and the samplers share -----------------------------
    def _device(self) -> torch.device:
        return self.schedule.betas.device

    def prepare(self, train: Dataset) -> None:
        """Vectors: ``scale`` = standard deviation of the training data (images need none: levels map to [-1, 1])."""
        if not self.levels and len(train) > 1:
            self.scale.fill_(float(train.x.double().std()))

    def to_model_space(self, x: Tensor) -> Tensor:
        """Stored data -> model space: levels to bin centres in [-1, 1] (images), ``x / scale`` (vectors)."""
        return to_unit_interval(x, self.levels) if self.levels else x.float() / self.scale

    def _log_scale_nats(self) -> float:
        """``D log(scale)``: the change of variables from model space back to vectors (0 for images)."""
        return 0.0 if self.levels else self.data.dims * math.log(float(self.scale))

    def noise(self, shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal draws of ``shape`` on the model's device, from ``generator``."""
        return torch.randn(tuple(shape), generator=generator, device=self._device())

    def denoise(self, xt: Tensor, t: Tensor, y: Tensor | None = None, guidance: float | None = None) -> Tensor:
        r""":math:`\hat x_0(x_t, t, y)`, ``(B, *shape)``; with ``y`` and a guidance scale ``s != 1``,
        :math:`\hat\epsilon_\varnothing + s(\hat\epsilon_y - \hat\epsilon_\varnothing)` (equivalently on :math:`\hat x_0`)."""
        t = to_step(t, self.schedule.T) if t.is_floating_point() else t  # continuous time: the nearest step
        s = self.config.guidance if guidance is None else guidance
        if y is None or s == 1.0:
            x0 = self._x0(xt, t, y)
        else:
            null = self._null_labels(y)
            both = self._x0(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, null]))
            cond, uncond = both.chunk(2)
            x0 = uncond + s * (cond - uncond)
        return x0.clamp(-1, 1) if self.levels and self.config.clip_x0 else x0

    def _null_labels(self, y: Tensor) -> Tensor:
        """The null class (label ``num_classes``) in the shape of ``y``."""
        if self.num_classes is None:
            raise ConfigError(
                "ddpm: this model is unconditional (its data had no labels or class_conditional=false); "
                "it takes no labels"
            )
        return torch.full_like(y, self.num_classes)

    def path(self) -> DDPMPath:
        """The schedule in continuous time, ``t = step / T``, for the shared samplers (euler, heun, dpmpp_2m)."""
        return DDPMPath(self.schedule)

    def _x0(self, xt: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        out = self.network(xt, t, y)
        return parameterization.to_x0(self.schedule, self.prediction, out, xt, t, self.levels)

    def reverse_variance(self, t: Tensor, like: Tensor) -> Tensor:
        r""":math:`\sigma_t^2` shaped to broadcast on ``like``."""
        return bound.reverse_variance(self.schedule, t, self.variance, like)

    def decode(self, x0: Tensor, generator: torch.Generator | None = None, mode: bool = False) -> Tensor:
        """Draw from (or take the mode of) the decoder :math:`p(x_0 \\mid x_1)` with mean ``x0``: int64 levels or floats."""
        scale = math.sqrt(float(self.schedule.betas[0]))
        if self.levels:
            if mode:
                return quantize(x0, self.levels, centred=True)
            return DiscretizedGaussian(x0, torch.full_like(x0, math.log(scale)), self.levels).sample(generator)
        return self.scale * (x0 if mode else Normal(x0, torch.full_like(x0, scale)).sample(generator))

    def sampling_labels(self, n: int, condition: Tensor | None, generator: torch.Generator | None) -> Tensor | None:
        """``condition`` checked and moved to the device; for a conditional model without one, uniform labels."""
        device = self._device()
        if self.num_classes is None:
            if condition is not None:
                raise ConfigError(
                    "ddpm: this model is unconditional (its data had no labels or "
                    "class_conditional=false); sample without a label"
                )
            return None
        if condition is None:
            return torch.randint(self.num_classes, (n,), generator=generator, device=device)
        y = torch.as_tensor(condition, device=device).long().reshape(-1)
        if y.numel() == 1:
            y = y.expand(n)
        if y.shape != (n,) or int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ConfigError(f"ddpm: condition must be {n} labels in [0, {self.num_classes})")
        return y

    # -- the bound ----------------------------------------------------------------
    def terms(self, x: Tensor, y: Tensor | None, t: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For data ``x`` (stored type), steps ``t`` and noise ``eps``: the bound term at ``t``
        (:math:`L_0` where ``t = 1``, else :math:`L_{t-1}`), ``(B,)`` nats, plus ``x0_hat`` and ``x_t``."""
        x0 = self.to_model_space(x)
        xt = self.schedule.q_sample(x0, t, eps)
        x0_hat = self.denoise(xt, t, y, guidance=1.0)
        kl = bound.kl_term(self.schedule, x0, x0_hat, t.clamp(min=2), self.variance)
        first = t == 1
        if bool(first.any()):
            l0 = bound.decoder_nll(self.schedule, x if self.levels else x0, x0_hat, self.levels)
            kl = torch.where(first, l0, kl)
        return kl, x0_hat, xt

    @torch.no_grad()
    def bound(
        self,
        batch: Batch,
        steps: int = 0,
        seed: int | None = None,
        chunk: int = 2**19,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""The bound in nats, ``(B,)``: :math:`L_T + \sum_t L_{t-1} + L_0` (given the labels, if any).

        ``steps = 0`` sums all ``T`` terms; ``steps = K`` keeps :math:`L_0` and draws, for each example
        independently, one step per stratum of ``round(linspace(1, T, K+1))`` (steps 2..T), weighted by
        the stratum size (unbiased).
        Noise comes from a generator seeded with ``seed`` (default ``config.seed``) and the batch's
        values (:func:`~gmkit_core.seeding.batch_generator`: other batches, other draws), or from
        ``generator`` when given (on the model's device; it advances, so pass a freshly seeded one to
        give two calls the same draws); the network
        sees up to ``chunk`` scalars (examples x steps x dims) at a time.
        """
        T, device = self.schedule.T, self._device()
        x = batch.x.to(device)
        g = generator or batch_generator(self.config.seed if seed is None else seed, x)
        y = self._labels(batch)
        B = x.shape[0]
        if steps and steps < T - 1:
            # L_0 (t = 1) exactly; per example, one step per stratum (e_{j-1}, e_j] of t = 2..T, weighted by
            # its size (independent draws per example, so the spread over examples carries the sampling noise).
            edges = torch.linspace(1, T, steps + 1, dtype=torch.float64).round().long()
            sizes = edges[1:] - edges[:-1]
            u = torch.rand(steps, B, generator=g, device=device, dtype=torch.float64).cpu()
            drawn = edges[:-1, None] + 1 + (u * sizes[:, None]).long()  # (steps, B)
            ts = torch.cat([torch.ones(1, B, dtype=torch.long), drawn])
            weights = torch.cat([torch.ones(1, dtype=torch.long), sizes]).double()
        else:
            ts = torch.arange(1, T + 1)[:, None].expand(T, B)
            weights = torch.ones(T, dtype=torch.float64)
        ts, weights = ts.to(device), weights.to(device)
        total = bound.prior_term(self.schedule, self.to_model_space(x)).double()
        per = max(1, chunk // (B * self.data.dims))
        starts = range(0, len(ts), per)
        label = f"bound estimate (L_0 + {len(ts) - 1} of {T - 1} steps)" if len(ts) < T else f"bound over all {T} steps"
        for i in progress_bar(starts, len(starts) > 10, label):
            tk, wk = ts[i : i + per], weights[i : i + per]
            k = len(tk)
            xs = x.repeat(k, *([1] * (x.ndim - 1)))
            ys = None if y is None else y.repeat(k)
            eps = torch.randn(xs.shape, generator=g, device=device)
            term = self.terms(xs, ys, tk.reshape(-1), eps)[0].double().reshape(k, B)
            total = total + (wk[:, None] * term).sum(0)
        return total + self._log_scale_nats()

    def _labels(self, batch: Batch) -> Tensor | None:
        if self.num_classes is None or batch.y is None:
            return None
        return batch.y.to(self._device()).long()

    # -- the GenerativeModel contract -------------------------------------------------
    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x, device = batch.x.to(self._device()), self._device()
        B, T = x.shape[0], self.schedule.T
        y = self._labels(batch)
        if y is not None and self.config.label_dropout > 0:
            drop = torch.rand(B, device=device) < self.config.label_dropout
            y = torch.where(drop, self._null_labels(y), y)
        t = torch.randint(1, T + 1, (B,), device=device)
        eps = torch.randn(x.shape, device=device)
        x0 = self.to_model_space(x)
        xt = self.schedule.q_sample(x0, t, eps)
        out = self.network(xt, t, y)
        x0_hat = parameterization.to_x0(self.schedule, self.prediction, out, xt, t, self.levels)
        if self.prediction in ("levels", "gauss_levels"):
            pred = parameterization.to_eps(self.schedule, x0_hat, xt, t)
        else:
            pred = out
        target = parameterization.target(self.schedule, self.prediction, x0, eps, t)
        simple = (pred - target).square().flatten(1).mean(1).mean()
        if self.levels and self.config.clip_x0:
            x0_hat = x0_hat.clamp(-1, 1)
        kl = bound.kl_term(self.schedule, x0, x0_hat, t.clamp(min=2), self.variance)
        l0 = bound.decoder_nll(self.schedule, x if self.levels else x0, x0_hat, self.levels)
        vlb = T * torch.where(t == 1, l0, kl) + bound.prior_term(self.schedule, x0) + self._log_scale_nats()
        vlb = vlb / self.data.dims
        vlb = vlb.mean()
        loss = {"simple": simple, "vlb": vlb, "hybrid": simple + self.config.vlb_weight * vlb}[self.config.loss]
        return {"loss": loss, "simple": simple.detach(), "vlb_nats_per_dim": vlb.detach()}

    def nll(self, batch: Batch) -> Tensor:
        """The variational bound in nats per example on -log p of the data as stored (given the labels, if any)."""
        with torch.no_grad():
            return self.bound(batch, steps=self.config.nll_steps).to(torch.get_default_dtype())

    def marginal_nll(self, batch: Batch) -> Tensor:
        r""":math:`-\log p(x) \le -\log p_\theta(x \mid y) + \log K` at the true label ``y``, ``(B,)`` nats.

        One bound per example; the base class's log-mean-exp over all ``K`` labels is
        tighter by at most :math:`\log K` but costs ``K`` full bounds. Without labels
        (or an unconditional instance), :meth:`nll`.
        """
        out = self.nll(batch)
        if self.num_classes is not None and batch.y is not None:
            out = out + math.log(self.num_classes)
        return out

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Mean fixed-seed stratified estimate of the bound from ``val_steps`` steps (nats)."""
        total = 0.0
        with torch.no_grad():
            for b in data.batches(batch_size):
                total += float(self.bound(b, steps=self.config.val_steps).sum())
        return total / max(len(data), 1)

    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        guidance: float | None = None,
        sampler: str | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """``n`` samples; each keyword overrides the config: ``guidance`` the scale
        (``gmkit sample RUN --label 3 --option guidance=3``), ``sampler`` (ddpm or ddim) ``sampler``,
        ``steps`` ddim's ``sample_steps``."""
        kind = self.config.sampler if sampler is None else sampler
        if kind not in ("ddpm", "ddim"):
            raise ConfigError(f"ddpm: sampler={kind!r}; choose ddpm (ancestral) or ddim")
        if kind == "ddpm" and steps is not None:
            raise ConfigError("ddpm: steps applies to the ddim sampler; the ancestral sampler takes all T steps")
        draw = (
            DDPMSampler(guidance=guidance)
            if kind == "ddpm"
            else DDIMSampler(steps=steps or self.config.sample_steps, eta=self.config.eta, guidance=guidance)
        )
        return draw(self, n, condition=condition, generator=generator)

    @property
    def picture_sample_options(self) -> dict[str, Any]:
        """Keywords of :meth:`sample` for the pictures ``gmkit train`` draws: fast DDIM unless ``picture_sampler=ddpm``."""
        if self.config.picture_sampler == "ddpm":
            return {"sampler": "ddpm"}
        return {"sampler": "ddim", "steps": self.config.sample_steps}

    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The base class's figures; a conditional model computes its bound once per example, since
        its marginal figure is that bound plus ``log K`` (the base class would compute both)."""
        if self.num_classes is not None and data.y is not None:
            values = self._per_example(data, batch_size, self.nll)  # -log p(x | y) bounds, (N,)
            n, dims = len(values), data.spec.dims
            mean = float(values.mean()) if n else 0.0
            out: dict[str, Any] = {"n": len(data), "likelihood": "bound", "exact": False}
            out["conditional_nll_nats"], out["conditional"] = mean, True
            out["nll_nats"] = mean + math.log(self.num_classes)
            if self.nll_is_sampled and n > 1:
                out["nll_stderr_nats"] = float(values.std() / math.sqrt(n))
            if data.spec.kind != "vector":
                for key in [k for k in out if k.endswith("nll_nats")]:
                    out[key.replace("nll_nats", "bits_per_dim")] = bits_per_dim(out[key], dims)
                if "nll_stderr_nats" in out:
                    out["bits_per_dim_stderr"] = bits_per_dim(out["nll_stderr_nats"], dims)
        else:
            out = super().evaluate(data, batch_size)
        out["bound_steps"] = self.config.nll_steps or self.schedule.T
        if self.nll_is_sampled:
            T = self.schedule.T
            out["bound_estimate"] = (
                f"unbiased estimate of the {T}-step bound (L_T + L_0 + {self.config.nll_steps} stratified steps "
                f"of 2..{T} per example), not itself a bound; nll_stderr_nats is its standard error; "
                "--set nll_steps=0 for the full bound"
            )
        return out
