r"""The two-stage ``latent`` model: a stage-two density over the latents of a stage-one autoencoder.

Stage one (:mod:`~gmkit_transformer.stages`) is a VAE-like model, :math:`q(z \mid x)` Gaussian
and :math:`p(x \mid z)` on the levels, or a VQ-VAE with codes :math:`k(x)` and :math:`p(x \mid e_k)`.
It is read from a run file (``stage1=RUN.h5``, frozen) or trained by the main fit of this run
(``stage1_model=vae``, ``stage1_options=...``). Stage two is any registered model of the
latents' data kind (vectors ``(D,)`` or code images ``(1, h, w)`` with ``K`` levels), fitted by
:meth:`Latent.finish` on the encoder's latents of the training split. The model is
:math:`p(x) = \int p(x \mid z)\, p_2(z)\, dz` (or :math:`\sum_k p(x \mid e_k) p_2(k)`).

**Bound, Gaussian latent.** For any :math:`q`, Jensen gives

.. math::
    -\log p(x) \le \mathbb E_{q(z|x)}[-\log p(x \mid z)] - \mathbb H[q(z \mid x)] + \mathbb E_{q(z|x)}[-\log p_2(z)],

where :math:`-\log p_2(z)` is stage two's NLL of the continuous vector ``z`` (its exact density
in nats, or an upper bound on it in expectation, e.g. DDPM's variational bound), so no
dequantisation term enters; the entropy of the Normal is in closed form and the two
expectations are estimated with one reparameterised draw (an unbiased estimate of the bound).
With :math:`p_2 = \mathcal N(0, I)` this is the plain VAE's :math:`-\mathcal L`. Where stage two's
NLL is exact, ``evaluate`` adds IWAE-k (Burda et al., 2016, arXiv:1509.00519):

.. math:: -\log p(x) \le -\log \frac1k \sum_{i=1}^k \frac{p(x \mid z_i)\, p_2(z_i)}{q(z_i \mid x)}, \quad z_i \sim q(z \mid x).

**Bound, code map.** The encoder is deterministic, and
:math:`p(x) = \sum_k p_2(k) p(x \mid e_k) \ge p_2(k(x))\, p(x \mid e_{k(x)})`, so

.. math:: -\log p(x) \le -\log p(x \mid e_{k(x)}) - \log p_2(k(x)).

**Samples**: :math:`z \sim p_2` (stage two's own sampler and options), then :math:`x \sim p(x \mid z)`.

References: Kingma & Welling (2014, arXiv:1312.6114); van den Oord et al., VQ-VAE (2017,
arXiv:1711.00937); Vahdat, Kreis & Kautz, LSGM (2021, arXiv:2106.05931); Rombach et al.,
latent diffusion (2022, arXiv:2112.10752).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.config import option, parse_assignments, parse_literal
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import bits_per_dim
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel, OptimizerGroup, likelihood_of
from gmkit_core.registry import registry

from . import stages
from .stages import CODES, GAUSSIAN

__all__ = ["LatentConfig", "Latent", "LatentSampler"]


def _assignments(_: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for item in value:
        if "=" not in item:
            raise ValueError(f"'{attribute.name}' takes key=value items, got '{item}'")


def _pairs(default: tuple[str, ...], help: str) -> Any:  # noqa: A002 - attrs' word
    return option(default, help, [v.instance_of(tuple), _assignments], converter=tuple)


@attrs.frozen
class LatentConfig:
    """Options of the ``latent`` model (``--set key=value``)."""

    stage1: str = option(
        "",
        "run file of a trained stage one (vae-like or vqvae), kept frozen; empty: train stage1_model in the main fit",
        v.instance_of(str),
    )
    stage1_model: str = option(
        "vae", "registered model trained as stage one when stage1 is empty", [v.instance_of(str), v.min_len(1)]
    )
    stage1_options: tuple[str, ...] = _pairs(
        (), "key=value options of stage1_model, e.g. stage1_options=latent_dim=8,warmup_steps=500"
    )
    stage2: str = option(
        "auto",
        "registered model fitted on the latents: auto = nsf for Gaussian latents, transformer for code maps",
        [v.instance_of(str), v.min_len(1)],
    )
    stage2_options: tuple[str, ...] = _pairs(
        (), "key=value options of the stage-two model, e.g. stage2_options=network=mlp,T=200"
    )
    stage2_train: tuple[str, ...] = _pairs(
        (), "key=value trainer settings of stage two over its own defaults, e.g. stage2_train=steps=2000,lr=1e-3"
    )
    latent_draws: int = option(
        8, "draws z ~ q(z|x) per image in stage two's training and validation sets (Gaussian latents)", v.ge(1)
    )
    iwae_k: int = option(
        100, "importance samples of the IWAE-k bound in evaluate (0: off; exact stage two only)", v.ge(0)
    )
    seed: int = option(0, "seed of the fixed noise of nll, validation and evaluate", v.instance_of(int))


class Latent(GenerativeModel):
    """Stage one (``stage1``, a submodule) and stage two (``stage2``); ``nll`` is the pixel bound above.

    The buffer ``stage1_record`` holds stage one's provenance (source file, its SHA-256,
    model, config) as JSON bytes, so the run file rebuilds without the stage-one file;
    ``stage2_fitted`` says whether :meth:`finish` ran.
    """

    Config = LatentConfig
    likelihood: ClassVar[str] = "bound"
    conditional = False
    #: The main fit trains stage one (default ``vae``): gmkit-vae's settings for its ``vae``.
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

    stage1: Any  # a GenerativeModel keeping a stage-one contract (duck-typed), or None until loaded
    stage2: GenerativeModel | None
    stage2_fitted: Tensor
    stage1_record: Tensor

    def __init__(self, config: LatentConfig, data: DataSpec):
        super().__init__(config, data)
        if not data.is_image or not data.levels:
            raise DataError(f"latent models discrete images; '{data.name}' is {data.kind} data")
        self.register_buffer("stage2_fitted", torch.zeros((), dtype=torch.int64))
        self.register_buffer("stage1_record", torch.zeros(0, dtype=torch.uint8))
        self.stage1 = self.stage2 = None
        self.kind = ""
        self.info: dict[str, Any] = {}
        if config.stage1:
            if not Path(config.stage1).is_file():
                return  # a run file rebuilds stage one from its own record (load_state_dict)
            model, info = stages.from_file(config.stage1, data)
        else:
            model, info = stages.from_registry(config.stage1_model, parse_assignments(config.stage1_options), data)
        self._build(model, info)

    # -- construction ---------------------------------------------------------------------
    def _build(self, stage1: Any, info: dict[str, Any]) -> None:
        self.kind = stages.latent_kind(stage1, info["model"])
        self.stage1, self.info = stage1, info
        if self.frozen:
            stage1.requires_grad_(False)
        self.stage1_record = stages.encode_record(info)
        name = self.config.stage2
        if name == "auto":
            name = "nsf" if self.kind == GAUSSIAN else "transformer"
        self.stage2_name = name
        spec = stages.latent_spec(stage1, self.kind)
        if registry.entry("model", name).load().likelihood_kind(spec) == "none":
            raise ConfigError(f"model 'latent': stage two '{name}' has no likelihood on {spec.kind} latents")
        try:
            self.stage2 = registry.get("model", name, data=spec, **parse_assignments(self.config.stage2_options))
        except DataError as exc:
            what = "vectors (D,)" if self.kind == GAUSSIAN else f"code maps {spec.shape} with {spec.levels} levels"
            raise ConfigError(f"model 'latent': stage two '{name}' does not model {what}: {exc}") from None
        if self.stage2.conditional:
            raise ConfigError(f"model 'latent': stage two '{name}' is label-conditional; use an unconditional model")

    @property
    def frozen(self) -> bool:
        """Stage one comes from a run file and is not trained here."""
        return bool(self.config.stage1)

    def _ready(self) -> tuple[Any, GenerativeModel]:
        if self.stage1 is None or self.stage2 is None:
            raise ConfigError(f"model 'latent': stage1={self.config.stage1}: no such run file")
        return self.stage1, self.stage2

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load weights; a ``stage1_record`` unlike this instance's rebuilds both stages from it first."""
        record = state_dict.get("stage1_record")
        if record is not None and not torch.equal(record.cpu(), self.stage1_record.cpu()):
            info = stages.decode_record(record)
            device = self.stage2_fitted.device
            self._build(stages.rebuild(info, self.data), info)
            self.to(device)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- stage one's latents --------------------------------------------------------------
    @contextlib.contextmanager
    def _eval(self) -> Iterator[tuple[Any, GenerativeModel]]:
        """Both stages in eval mode, no gradients."""
        stage1, stage2 = self._ready()
        modes = stage1.training, stage2.training
        stage1.eval()
        stage2.eval()
        try:
            with torch.no_grad():
                yield stage1, stage2
        finally:
            stage1.train(modes[0])
            stage2.train(modes[1])

    def _generator(self, device: torch.device, stream: int = 0) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(2 * self.config.seed + stream)

    def latents(self, x: Tensor, generator: torch.Generator | None = None, draws: int = 1) -> Tensor:
        """Stage two's data for images ``x`` ``(B, C, H, W)``: ``draws`` z ~ q(z|x) each, ``(draws*B, D)``
        (sample-major); or the code maps ``(B, 1, h, w)``."""
        stage1, _ = self._ready()
        if self.kind == CODES:
            return stage1.encode_codes(x).unsqueeze(1)
        q = stage1.encoder(x, None)
        return q.rsample(generator, (draws,)).reshape(-1, q.loc.shape[-1])

    def decode(self, z: Tensor) -> Any:
        r""":math:`p(x \mid z)` for latents ``z`` ``(B, D)`` or code maps ``(B, 1, h, w)``."""
        stage1, _ = self._ready()
        return stage1.decode(z.squeeze(1)) if self.kind == CODES else stage1.decoder(z, None)

    # -- the bound ------------------------------------------------------------------------
    def terms(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        r"""The bound's terms ``(B,)`` nats: ``recon`` :math:`-\log p(x|z)`, ``entropy`` :math:`\mathbb H[q]`
        (0 for codes), ``latent`` :math:`-\log p_2(z)`, and ``bound`` = recon - entropy + latent."""
        stage1, stage2 = self._ready()
        if self.kind == CODES:
            k = stage1.encode_codes(x).unsqueeze(1)  # (B, 1, h, w)
            recon, entropy, latent = -self.decode(k).log_prob(x), torch.zeros(len(x)), stage2.nll(Batch(k))
        else:
            q = stage1.encoder(x, None)
            z = q.rsample(generator)  # (B, D)
            recon, entropy, latent = -stage1.decoder(z, None).log_prob(x), q.entropy(), stage2.nll(Batch(z))
        dtype = recon.dtype
        entropy, latent = entropy.to(dtype).to(recon.device), latent.to(dtype)
        return {"recon": recon, "entropy": entropy, "latent": latent, "bound": recon - entropy + latent}

    def iwae_nll(self, x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        r"""``(B,)`` :math:`-\log \frac1k\sum_i p(x|z_i) p_2(z_i) / q(z_i|x)` (Gaussian latent, exact stage two)."""
        stage1, stage2 = self._ready()
        q = stage1.encoder(x, None)
        z = q.rsample(generator, (k,))  # (k, B, D)
        flat = z.reshape(-1, z.shape[-1])  # (k*B, D)
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])  # (k*B, C, H, W)
        log_px = stage1.decoder(flat, None).log_prob(xs).view(k, -1)
        log_w = log_px - stage2.nll(Batch(flat)).to(log_px.dtype).view(k, -1) - q.log_prob(z)  # (k, B)
        return -(torch.logsumexp(log_w, dim=0) - math.log(k))

    def nll(self, batch: Batch) -> Tensor:
        """``(B,)`` nats: the pixel bound with fixed noise (seeded by ``seed``), an upper bound on ``-log P(x)``."""
        with self._eval():
            return self.terms(batch.x, self._generator(batch.x.device))["bound"]

    # -- training -------------------------------------------------------------------------
    def prepare(self, train: Dataset) -> None:
        stage1, _ = self._ready()
        if not self.frozen:
            stage1.prepare(train)

    def optimizer_groups(self) -> dict[str, OptimizerGroup]:
        """The main fit trains stage one only (none when it is frozen); stage two is fitted in :meth:`finish`."""
        stage1, _ = self._ready()
        return (
            {} if self.frozen else {"model": OptimizerGroup(tuple(p for p in stage1.parameters() if p.requires_grad))}
        )

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """Stage one's loss (the main fit); with a frozen stage one, stage two's loss on this batch's latents."""
        stage1, stage2 = self._ready()
        if not self.frozen:
            stage1.step = self.step
            return stage1.loss(batch)
        with self._eval():
            z = self.latents(batch.x)
        return stage2.loss(Batch(z))

    def validation_score(self, data: Dataset, batch_size: int = 256) -> float:
        """Stage one's own score until stage two is fitted, then the mean pixel bound (fixed noise)."""
        stage1, _ = self._ready()
        if not bool(self.stage2_fitted):
            return stage1.validation_score(data, batch_size)
        return super().validation_score(data, batch_size)

    def finish(self, data: dict[str, Dataset], fit: Callable[..., GenerativeModel]) -> None:
        """Stage two: fit ``stage2`` on the latents of ``data["train"]`` (best on ``data["validation"]``).

        Gaussian latents: ``latent_draws`` draws :math:`z \\sim q(z|x)` per image (a sample of the
        aggregate posterior); code maps: :math:`k(x)`. ``stage2_train`` overrides stage two's
        own trainer defaults.
        """
        stage1, stage2 = self._ready()
        latent_data = {
            split: self._latent_dataset(ds, stream)
            for stream, (split, ds) in enumerate(data.items())
            if split in ("train", "validation")
        }
        overrides = {k: parse_literal(val) for k, val in parse_assignments(self.config.stage2_train).items()}
        self.stage2 = fit(stage2, latent_data, **overrides)
        self.stage2_fitted.fill_(1)

    def _latent_dataset(self, ds: Dataset, stream: int, batch_size: int = 512) -> Dataset:
        device = self.stage2_fitted.device
        generator = self._generator(device, 2 + stream)
        draws = 1 if self.kind == CODES else self.config.latent_draws
        with self._eval():
            parts = [self.latents(b.x.to(device), generator, draws).cpu() for b in ds.batches(batch_size)]
        z = torch.cat(parts)
        stage1, _ = self._ready()
        return Dataset(z, None, stages.latent_spec(stage1, self.kind), ds.split)

    # -- sampling and evaluation ----------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None, **options: Any
    ) -> Tensor:
        """``z ~ p_2`` (``options`` go to stage two's ``sample``), ``x ~ p(x|z)``: ``(n, C, H, W)`` int64."""
        if condition is not None:
            raise ConfigError("latent is unconditional; sample without a label")
        with self._eval() as (stage1, stage2):
            allowed = [
                k for k in inspect.signature(stage2.sample).parameters if k not in ("n", "condition", "generator")
            ]
            unknown = [k for k in options if k not in allowed]
            if unknown:
                raise ConfigError(
                    f"stage two '{self.stage2_name}' sampling has no option {', '.join(map(repr, unknown))}; "
                    f"options: {', '.join(allowed) or 'none'}"
                )
            z = stage2.sample(n, generator=generator, **options)
            return self._decode_sample(z, generator)

    def _decode_sample(self, z: Tensor, generator: torch.Generator | None) -> Tensor:
        stage1, _ = self._ready()
        decoded = self.decode(z)
        if self.kind == CODES and getattr(stage1.config, "decode", "sample") == "mode":
            return decoded.mode()
        return decoded.sample(generator)

    @torch.no_grad()
    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The bound (``nll_nats``, ``bits_per_dim``), its terms, IWAE-k where it applies, and both stages.

        ``recon_nats`` :math:`\\mathbb E[-\\log p(x|z)]`, ``entropy_nats`` :math:`\\mathbb H[q]`,
        ``latent_nats`` :math:`\\mathbb E[-\\log p_2(z)]` (stage two's NLL: nats of a density for
        vectors, of the code map for codes), ``kl_nats`` = latent - entropy.
        """
        stage1, stage2 = self._ready()
        device = self.stage2_fitted.device
        generator, iwae_generator = self._generator(device), self._generator(device, 1)  # IWAE has its own stream,
        sums = {
            "recon": 0.0,
            "entropy": 0.0,
            "latent": 0.0,
            "bound": 0.0,
            "iwae": 0.0,
        }  # so the bound's draws match nll's
        k = self.config.iwae_k if self.kind == GAUSSIAN and likelihood_of(stage2) == "exact" else 0
        with self._eval():
            for b in data.batches(batch_size):
                x = b.x.to(device)
                for key, value in self.terms(x, generator).items():
                    sums[key] += float(value.double().sum())
                if k:
                    sums["iwae"] += float(self.iwae_nll(x, k, iwae_generator).double().sum())
        n = max(len(data), 1)
        dims = data.spec.dims
        out: dict[str, Any] = {
            "n": len(data),
            "likelihood": "bound",
            "exact": False,
            "nll_nats": sums["bound"] / n,
            "bits_per_dim": bits_per_dim(sums["bound"] / n, dims),
            "recon_nats": sums["recon"] / n,
            "entropy_nats": sums["entropy"] / n,
            "latent_nats": sums["latent"] / n,
            "kl_nats": (sums["latent"] - sums["entropy"]) / n,
            "latent_kind": self.kind,
            "stage1": {k_: self.info.get(k_) for k_ in ("model", "source", "sha256", "plugin", "config")},
            "stage2": {
                "model": self.stage2_name,
                "likelihood": likelihood_of(stage2),
                "fitted": bool(self.stage2_fitted),
            },
        }
        if k:
            out.update(iwae_nll_nats=sums["iwae"] / n, iwae_bits_per_dim=bits_per_dim(sums["iwae"] / n, dims), iwae_k=k)
        return out

    def describe(self) -> str:
        if self.stage1 is None:
            return f"{super().describe()} (stage one not loaded)"
        fitted = "" if bool(self.stage2_fitted) else " (not fitted)"
        return (
            f"{super().describe()}: stage one {self.info['model']} ({self.kind}, {self.info['source']}), "
            f"stage two {self.stage2_name}{fitted}"
        )


class LatentSampler:
    """Sampler ``latent``: draws from a ``latent`` run with any sample options of its stage two.

    ``gmkit sample RUN --sampler latent --option guidance=2`` passes ``guidance=2`` to stage two's
    ``sample``; ``--option sampler=ddim --option steps=50`` draws stage two's latents with the
    registered sampler ``ddim`` and its options instead.
    """

    needs_data = False

    def __init__(self, **options: Any):
        self.sampler = options.pop("sampler", None)
        self.options = options

    @staticmethod
    def applies_to(model: GenerativeModel) -> str | None:
        return None if isinstance(model, Latent) else "the latent sampler needs a 'latent' model"

    def __call__(
        self,
        model: GenerativeModel,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        data: Dataset | None = None,
    ) -> Tensor:
        why = self.applies_to(model)
        if why is not None:
            raise ConfigError(why)
        model = cast(Latent, model)
        if self.sampler is None:
            return model.sample(n, condition=condition, generator=generator, **self.options)
        draw = registry.get("sampler", str(self.sampler), **self.options)
        with model._eval() as (_, stage2):
            reason = draw.applies_to(stage2)
            if reason is not None:
                raise ConfigError(f"sampler '{self.sampler}' for stage two: {reason}")
            z = draw(stage2, n, condition=None, generator=generator, data=None)
            return model._decode_sample(z, generator)
