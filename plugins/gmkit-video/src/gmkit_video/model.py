r"""VideoGPT: a VQ-VAE over clips with 3D convolutions and a causal transformer prior over its code volume.

A clip :math:`x` ``(T, C, H, W)`` with ``L`` levels is encoded (:mod:`~gmkit_video.networks`) to
:math:`z_e` ``(t, h, w, D)`` with ``t = T / s_t``, ``h = H / s``, ``w = W / s``, quantised to the
code volume :math:`k(x)` ``(t, h, w)`` and :math:`z_q = e_{k(x)}` (:mod:`~gmkit_video.quantizer`),
and decoded to :math:`p(x \mid z_q)`, a core observation head over the stored levels (a
normalised distribution, so :math:`-\log p(x \mid z_q)` is in nats of the data). Stage 1 minimises
per clip

.. math:: -\log p(x \mid z_q(x)) + \beta \lVert z_e - \mathrm{sg}[e_{k}] \rVert^2

(the codebook moves by EMA). Stage 2 (:meth:`VideoGPT.finish`) fits the registered ``transformer``
on the training clips' code volumes in time-major raster order (:mod:`~gmkit_video.prior`).

**Bound.** The encoder is deterministic, so for the code volume :math:`k^* = k(x)`,
:math:`P(x) = \sum_k p(k)\, p(x \mid e_k) \ge p(k^*)\, p(x \mid e_{k^*})`, i.e.

.. math:: -\log P(x) \le -\log p(x \mid z_q(x)) - \log p_\text{prior}(k(x))

in nats per clip; bits/dim divide by :math:`TCHW \ln 2`. Until stage 2 has run, the code term is
the uniform prior's :math:`thw \log K` (still a valid bound, and what the trainer's validation
score uses during stage 1); ``evaluate`` says which prior is in use.

**Per-frame model** (``temporal=False``): every frame is its own clip of one frame (temporal
kernels of size 1, no temporal downsampling) and the prior models one frame's codes
``(1, h, w)``; the bound sums the frames' terms. It is the same VQ-VAE and prior without time,
the baseline against which the gain from modelling time is measured. With the defaults
(``k_t = s_t = 1``) the autoencoder runs frame by frame in both models, so a run and its
baseline with the same seed share stage 1 to the bit and differ in the prior alone.

**Frame prediction.** ``sample(n, prime=clips, frames=k)`` encodes the clips; since the encoder
is causal in time, code time steps ``0 .. k // s_t - 1`` depend on frames ``< k`` only and are
kept; the rest of the volume is drawn from the prior given them
(:func:`~gmkit_video.prior.sample_after_prefix`) and decoded; the first ``k`` output frames are
the given frames.

Reference: Yan, Zhang, Abbeel & Srinivas, VideoGPT: Video Generation using VQ-VAE and Transformers
(2021, arXiv:2104.10157); van den Oord, Vinyals & Kavukcuoglu (2017, arXiv:1711.00937).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.codebook import code_statistics, nearest_code
from gmkit_core.config import option, parse_assignments, parse_literal
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.data import load as load_data
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError, DataError, NotRegisteredError
from gmkit_core.heads import channels_last, make_head
from gmkit_core.interfaces import GenerativeModel, likelihood_of
from gmkit_core.registry import registry

from .networks import VideoDecoder, VideoEncoder
from .prior import code_dataset, code_spec, image_to_volume, sample_after_prefix, volume_to_image
from .quantizer import Quantized, VolumeQuantizer

__all__ = ["VideoGPTConfig", "VideoGPT"]

DECODERS = ("logistic_mixture", "logistic", "categorical", "discretized_gaussian")
_int, _positive = v.instance_of(int), v.gt(0)
_powers = v.in_((1, 2, 4, 8))


#: stage 2 trainer settings: 600 steps, then the transformer's own defaults, written out in full
PRIOR_TRAIN = (
    "steps=600",
    "batch_size=32",
    "lr=0.002",
    "optimizer=adamw",
    "weight_decay=0.01",
    "schedule=cosine",
    "warmup=100",
    "grad_clip=1.0",
    "ema=0.995",
    "eval_every=100",
    "patience=8",
)


def _assignments(_: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for item in value:
        if "=" not in item:
            raise ValueError(f"'{attribute.name}' takes key=value items, got '{item}'")


@attrs.frozen
class VideoGPTConfig:
    """Options of ``videogpt`` (``--set key=value``)."""

    codebook_size: int = option(64, "K, the number of codes", [_int, v.ge(2)])
    code_dim: int = option(16, "D, the dimension of each code vector", [_int, _positive])
    time_downsample: int = option(1, "s_t: the code volume has T/s_t time steps (1 with temporal=false)", _powers)
    downsample: int = option(4, "s: each code time step is an (H/s, W/s) map", _powers)
    hidden: int = option(32, "channels of the 3D encoder and decoder", [_int, _positive])
    res_blocks: int = option(1, "residual blocks in the encoder and in the decoder", [_int, v.ge(0)])
    time_kernel: int = option(
        1,
        "k_t, the temporal size of every encoder and decoder convolution that does not halve time "
        "(1: each frame is coded from its own pixels; 1 with temporal=false)",
        v.in_((1, 3)),
    )
    temporal: bool = option(
        True,
        "model time (3D codes over the clip); false: the per-frame baseline, each frame coded and modelled on its own",
        v.instance_of(bool),
    )
    decoder: str = option("logistic_mixture", "p(x|z_q): a core observation head over the levels", v.in_(DECODERS))
    mixtures: int = option(3, "components of the logistic_mixture decoder", [_int, _positive])
    beta: float = option(0.25, "weight of the commitment loss", [v.instance_of(float), v.ge(0.0)])
    ema_decay: float = option(0.99, "gamma of the EMA codebook", [v.instance_of(float), v.ge(0.0), v.lt(1.0)])
    ema_eps: float = option(1e-5, "epsilon, Laplace smoothing of the EMA counts", [v.instance_of(float), _positive])
    dead_code_window: int = option(
        50, "restart codes unused for this many training batches at encoder outputs (0: never)", [_int, v.ge(0)]
    )
    prior: str = option(
        "transformer",
        "prior over code volumes fitted as stage 2: a registered image model with "
        "an exact likelihood and teacher-forced logits (transformer)",
        [v.instance_of(str), v.min_len(1)],
    )
    prior_options: tuple[str, ...] = option(
        ("dim=64", "layers=4", "heads=4", "dropout=0.1"),
        "key=value options of the prior, e.g. prior_options=dim=64,layers=4",
        [v.instance_of(tuple), _assignments],
    )
    prior_train: tuple[str, ...] = option(
        PRIOR_TRAIN,
        "key=value trainer settings of stage 2 over the prior's own defaults (the defaults set every setting "
        "that the transformer's defaults set, so that its defaults can change without moving these)",
        [v.instance_of(tuple), _assignments],
    )
    decode: str = option(
        "sample", "how samples leave the decoder: a draw from p(x|z_q) or its mode", v.in_(("sample", "mode"))
    )


class VideoGPT(GenerativeModel):
    """3D VQ-VAE with a causal transformer prior over the code volume; ``nll`` is the bound above."""

    Config = VideoGPTConfig
    prior_fitted: Tensor
    prior_model: GenerativeModel
    likelihood: ClassVar[str] = "bound"
    conditional = False
    #: the prior's parameters get no gradient in stage 1
    ddp_find_unused_parameters: ClassVar[bool] = True
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 400,
        "batch_size": 16,
        "lr": 2e-3,
        "optimizer": "adam",
        "schedule": "cosine",
        "warmup": 100,
        "grad_clip": 1.0,
        "ema": 0.0,
        "eval_every": 100,
    }

    def __init__(self, config: VideoGPTConfig, data: DataSpec):
        super().__init__(config, data)
        if not data.is_video or not data.levels:
            raise DataError(
                f"videogpt models clips (N, T, C, H, W) with integer levels; '{data.name}' is {data.kind} data"
            )
        T, C, H, W = data.shape
        s, st = config.downsample, (config.time_downsample if config.temporal else 1)
        if config.time_downsample != 1 and not config.temporal:
            raise ConfigError("model 'videogpt': temporal=false codes each frame alone; set time_downsample=1")
        kt = config.time_kernel if config.temporal else 1
        if H % s or W % s:
            raise ConfigError(f"model 'videogpt': downsample={s} does not divide the frame size {H}x{W}")
        if T % st:
            raise ConfigError(f"model 'videogpt': time_downsample={st} does not divide the clip length T={T}")
        self.volume = (T // st, H // s, W // s)  # (t, h, w) codes per clip
        self.head = make_head(config.decoder, data.levels, config.mixtures, owner="decoder")
        self.encoder = VideoEncoder(C, config.hidden, config.code_dim, st, s, config.res_blocks, kt)
        self.quantizer = VolumeQuantizer(
            config.codebook_size, config.code_dim, config.ema_decay, config.ema_eps, config.dead_code_window
        )
        self.decoder = VideoDecoder(config.code_dim, config.hidden, C * self.head.params, st, s, config.res_blocks, kt)
        with torch.random.fork_rng(devices=[]):  # the prior's initial draws leave the global random stream as it was,
            self.prior_model = self._build_prior()  # so training randomness does not depend on the prior's shape
        self.register_buffer("prior_fitted", torch.zeros((), dtype=torch.int64))

    def _build_prior(self) -> GenerativeModel:
        name = self.config.prior
        try:
            registry.entry("model", name)
        except NotRegisteredError as exc:
            hint = " (pip install gmkit-transformer)" if name == "transformer" else ""
            raise NotRegisteredError(f"videogpt prior: {exc}{hint}") from None
        t, h, w = self.volume
        prior = registry.get(
            "model",
            name,
            data=code_spec(t if self.config.temporal else 1, h * w, self.config.codebook_size),
            **parse_assignments(self.config.prior_options),
        )
        if likelihood_of(prior) != "exact" or prior.conditional or not callable(getattr(prior, "logits", None)):
            raise ConfigError(
                f"model 'videogpt': prior '{name}' must be an unconditional model with an exact "
                "likelihood and teacher-forced logits(x), such as transformer"
            )
        return prior

    # -- layout ---------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.prior_fitted.device

    @property
    def _frame_by_frame(self) -> bool:
        """Whether the autoencoder codes each frame alone (``k_t = s_t = 1``, or ``temporal=false``).

        It then runs on frames ``(B T, C, 1, H, W)``, so the default model and the per-frame baseline
        compute their autoencoders identically: for one seed they share stage 1 to the bit and
        differ in the prior alone.
        """
        cfg = self.config
        return not cfg.temporal or (cfg.time_kernel == 1 and cfg.time_downsample == 1)

    def _as_frames(self, x: Tensor) -> Tensor:
        """``(B, T, ...)`` -> ``(B T, 1, ...)`` when the autoencoder codes frame by frame, else ``x``."""
        return x.reshape(-1, 1, *x.shape[2:]) if self._frame_by_frame else x

    def _frames_first(self, x: Tensor) -> Tensor:
        """Clips ``(B, T, C, H, W)`` levels -> network input ``(B', C, T', H, W)`` in [-1, 1] (frame by frame: B' = BT)."""
        x = self._as_frames(x)
        return to_unit_interval(x, int(self.data.levels or 0)).to(self.quantizer.codebook.dtype).transpose(1, 2)

    def _volume_of(self, codes: Tensor, batch: int) -> Tensor:
        """Encoder-layout codes ``(B', t', h, w)`` -> the clip's code volume ``(B, t, h, w)``."""
        return codes.reshape(batch, *self.volume)

    def quantize(self, x: Tensor) -> Quantized:
        """Clips ``(B, T, C, H, W)`` -> quantised ``z_q`` ``(B', t', h, w, D)`` (``B' = B T`` per frame)."""
        return self.quantizer(self.encoder(self._frames_first(x)).permute(0, 2, 3, 4, 1))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Clips ``(B, T, C, H, W)`` -> code volumes ``(B, t, h, w)`` int64 (no codebook update)."""
        z_e = self.encoder(self._frames_first(x)).permute(0, 2, 3, 4, 1)
        return self._volume_of(nearest_code(z_e, self.quantizer.codebook), x.shape[0])

    def _decoded(self, z_q: Tensor) -> Any:
        """``z_q`` ``(B', t', h, w, D)`` -> the head's distribution over ``(B', C, T', H, W)``."""
        raw = self.decoder(z_q.permute(0, 4, 1, 2, 3))  # (B', C P, T', H, W)
        return self.head(channels_last(raw, self.data.shape[1]))

    def _decoder_input(self, codes: Tensor) -> Tensor:
        """Code volumes ``(B, t, h, w)`` -> code vectors in the encoder's layout ``(B', t', h, w, D)``."""
        return self._as_frames(self.quantizer.lookup(codes))

    def _clip_order(self, y: Tensor, batch: int) -> Tensor:
        """Decoder-layout levels ``(B', C, T', H, W)`` -> clips ``(B, T, C, H, W)``."""
        return y.transpose(1, 2).reshape(batch, *self.data.shape)

    def recon_nats(self, x: Tensor, codes: Tensor) -> Tensor:
        r""":math:`-\log p(x \mid e_k)` ``(B,)`` nats of clips ``x`` ``(B, T, C, H, W)`` given code volumes ``(B, t, h, w)``."""
        dist = self._decoded(self._decoder_input(codes))
        return -dist.log_prob(self._as_frames(x).transpose(1, 2)).reshape(x.shape[0], -1).sum(1)

    @torch.no_grad()
    def decode(self, codes: Tensor, mode: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Code volumes ``(B, t, h, w)`` -> clips ``(B, T, C, H, W)`` int64: a draw from the decoder, or its mode."""
        raw = self.decoder(self._decoder_input(codes).permute(0, 4, 1, 2, 3))
        params = channels_last(raw, self.data.shape[1])  # (B', C, T', H, W, P)
        y = self.head.log_probs(params).argmax(-1) if mode else self.head(params).sample(generator)
        return self._clip_order(y, codes.shape[0])

    # -- the prior --------------------------------------------------------------------
    def _prior_images(self, codes: Tensor) -> Tensor:
        """Code volumes ``(B, t, h, w)`` -> the prior's images: ``(B, 1, t, h w)``, or ``(B t, 1, 1, h w)`` per frame."""
        if self.config.temporal:
            return volume_to_image(codes)
        return codes.reshape(-1, 1, 1, codes.shape[2] * codes.shape[3])

    def code_nats(self, codes: Tensor) -> Tensor:
        r""":math:`-\log p(k)` ``(B,)`` of code volumes ``(B, t, h, w)``: the fitted prior's exact NLL, else uniform."""
        if not bool(self.prior_fitted):
            return torch.full(
                (codes.shape[0],),
                math.prod(self.volume) * math.log(self.config.codebook_size),
                device=codes.device,
                dtype=self.quantizer.codebook.dtype,
            )
        nats = self.prior_model.nll(Batch(self._prior_images(codes)))
        return nats.reshape(codes.shape[0], -1).sum(1)

    # -- the contract ------------------------------------------------------------------
    def prepare(self, train: Dataset) -> None:
        """Start the codebook at encoder outputs of up to 512 training clips."""
        with torch.no_grad():
            z_e = self.encoder(self._frames_first(train.x[:512].to(self._device()))).permute(0, 2, 3, 4, 1)
        self.quantizer.seed_from(z_e.reshape(-1, self.config.code_dim))

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.x
        q = self.quantize(x)
        recon = -self._decoded(q.z_q).log_prob(self._as_frames(x).transpose(1, 2)).reshape(x.shape[0], -1).sum(1)
        commitment = q.commitment_loss.reshape(x.shape[0], -1).sum(1)
        perplexity, usage = code_statistics(torch.bincount(q.codes.flatten(), minlength=self.config.codebook_size))
        return {
            "loss": (recon + self.config.beta * commitment).mean(),
            "recon": recon.mean().detach(),
            "commitment": commitment.mean().detach(),
            "perplexity": torch.tensor(perplexity, device=x.device),
            "usage": torch.tensor(usage, device=x.device),
        }

    def nll(self, batch: Batch) -> Tensor:
        """Upper bound on ``-log P(x)`` ``(B,)`` nats per clip: reconstruction nats plus code nats."""
        codes = self.encode(batch.x)
        return self.recon_nats(batch.x, codes) + self.code_nats(codes)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        prime: Tensor | str | None = None,
        frames: int | None = None,
        prime_split: str = "test",
        decode: str | None = None,
        temperature: float = 1.0,
    ) -> Tensor:
        """``(n, T, C, H, W)`` int64 clips: code volumes from the prior (uniform before stage 2), decoded.

        ``prime``: clips ``(m >= n, T, C, H, W)`` or a data source (``moving_digits``, ``npz:CLIPS.npz``,
        ``CLIPS.h5``; split ``prime_split``) whose first ``n`` clips are continued after their first
        ``frames`` frames (default ``T // 2``); ``decode``: ``sample`` or ``mode`` (default: the config's);
        ``temperature``: the prior's conditionals are drawn with their logits divided by it (1: the prior).
        """
        if condition is not None:
            raise ConfigError("videogpt is unconditional; prime it with clips instead (--option prime=SOURCE)")
        mode = (decode or self.config.decode) == "mode"
        if decode not in (None, "sample", "mode"):
            raise ConfigError(f"videogpt sample option decode='{decode}': use sample or mode")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            temperature = math.nan
        if not 0 < temperature < math.inf:
            raise ConfigError("videogpt sample option temperature: give a finite number > 0 (1: the prior itself)")
        if prime is None:
            if frames is not None:
                raise ConfigError("videogpt sample option frames= needs prime= (the clips to continue)")
            return self.decode(self._draw_codes(n, None, 0, generator, temperature), mode, generator)
        clips = self._prime_clips(prime, n, prime_split)
        T = self.data.shape[0]
        k = T // 2 if frames is None else int(frames)
        if not 1 <= k < T:
            raise ConfigError(f"videogpt sample option frames={frames}: give 1 <= frames < {T} primed frames")
        steps = k // (self.data.shape[0] // self.volume[0])  # code time steps fixed by the first k frames
        out = self.decode(self._draw_codes(n, self.encode(clips), steps, generator, temperature), mode, generator)
        out[:, :k] = clips[:, :k]
        return out

    def _prime_clips(self, prime: Tensor | str, n: int, split: str) -> Tensor:
        clips = load_data(prime, split).x if isinstance(prime, str) else torch.as_tensor(prime)
        if clips.ndim != 5 or tuple(clips.shape[1:]) != tuple(self.data.shape):
            raise DataError(
                f"videogpt prime: clips must be (n, {', '.join(map(str, self.data.shape))}), got {tuple(clips.shape)}"
            )
        if len(clips) < n:
            raise DataError(f"videogpt prime: {len(clips)} clips to continue, asked for n={n}; sample fewer")
        if int(clips.min()) < 0 or int(clips.max()) >= int(self.data.levels or 0):
            raise DataError(f"videogpt prime: levels must lie in [0, {self.data.levels})")
        return clips[:n].to(self._device(), torch.int64)

    def _draw_codes(
        self, n: int, known: Tensor | None, steps: int, generator: torch.Generator | None, temperature: float = 1.0
    ) -> Tensor:
        """``(n, t, h, w)`` code volumes; time steps ``< steps`` copied from ``known``, the rest from the prior.

        The prior's own (cached) sampler serves unprimed draws at temperature 1; every other draw goes
        through :func:`~gmkit_video.prior.sample_after_prefix`.
        """
        t, h, w = self.volume
        device = self._device()
        if not bool(self.prior_fitted):
            codes = torch.randint(self.config.codebook_size, (n, t, h, w), generator=generator, device=device)
        elif self.config.temporal:
            prefix = (
                torch.zeros(n, 0, dtype=torch.long, device=device) if known is None else known[:, :steps].reshape(n, -1)
            )
            if prefix.shape[1] == 0 and temperature == 1.0:
                codes = image_to_volume(self.prior_model.sample(n, generator=generator), h)
            else:
                codes = image_to_volume(sample_after_prefix(self.prior_model, prefix, generator, temperature), h)
        elif temperature == 1.0:  # frames are independent under the per-frame prior
            codes = self.prior_model.sample(n * t, generator=generator).reshape(n, t, h, w)
        else:
            empty = torch.zeros(n * t, 0, dtype=torch.long, device=device)
            codes = sample_after_prefix(self.prior_model, empty, generator, temperature).reshape(n, t, h, w)
        if known is not None and steps:
            codes[:, :steps] = known[:, :steps]
        return codes

    @torch.no_grad()
    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The bound (``nll_nats``, ``bits_per_dim``) with its two terms ``recon_nats`` and ``code_nats`` (nats per
        clip), ``codebook_usage`` (fraction of the K codes used on the split), ``perplexity`` and the ``prior``."""
        out = super().evaluate(data, batch_size)
        counts = torch.zeros(self.config.codebook_size, dtype=torch.float64, device=self._device())
        code = 0.0
        for b in data.batches(batch_size):
            codes = self.encode(b.x.to(self._device()))
            counts += torch.bincount(codes.flatten(), minlength=self.config.codebook_size).double()
            code += float(self.code_nats(codes).double().sum())
        n = max(len(data), 1)
        perplexity, usage = code_statistics(counts)
        out.update(
            recon_nats=out["nll_nats"] - code / n,
            code_nats=code / n,
            codebook_usage=usage,
            perplexity=perplexity,
            code_volume=list(self.volume),
            prior=f"{self.config.prior} (fitted)" if bool(self.prior_fitted) else "uniform (stage two has not run)",
        )
        return out

    # -- stage 2 -----------------------------------------------------------------------
    def finish(self, data: dict[str, Dataset], fit: Callable[..., GenerativeModel]) -> None:
        """Stage 2: fit the prior on the code volumes of ``data["train"]`` (best on ``data["validation"]``)."""
        was_training = self.training
        self.eval()
        codes = {}
        for split in ("train", "validation"):
            if split in data:
                images = torch.cat(
                    [self._prior_images(self.encode(b.x.to(self._device()))).cpu() for b in data[split].batches(256)]
                )
                codes[split] = code_dataset(images, self.config.codebook_size, split)
        self.train(was_training)
        overrides = {k: parse_literal(val) for k, val in parse_assignments(self.config.prior_train).items()}
        self.prior_model = fit(self.prior_model, codes, **overrides)
        self.prior_fitted.fill_(1)

    def describe(self) -> str:
        fitted = "fitted" if bool(self.prior_fitted) else "not fitted"
        kind = "3D codes" if self.config.temporal else "per-frame codes"
        return (
            f"{super().describe()}, K={self.config.codebook_size}, {kind} {self.volume}, "
            f"{self.config.prior} prior ({fitted})"
        )
