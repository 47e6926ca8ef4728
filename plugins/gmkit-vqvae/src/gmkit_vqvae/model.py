r"""The VQ-VAE: a discrete autoencoder and a prior over its code maps.

For an image ``x`` ``(B, C, H, W)`` with ``L`` levels, the encoder gives
:math:`z_e(x)` ``(B, h, w, D)`` (``h = H/s``, ``w = W/s``), the quantiser the code
map :math:`k(x)` ``(B, h, w)`` and :math:`z_q = e_{k}` (:mod:`~gmkit_vqvae.quantizer`),
the decoder :math:`p(x \mid z_q)` (a core observation head, :mod:`~gmkit_vqvae.likelihoods`). Stage 1
minimises, per example,

.. math::
    -\log p(x \mid z_q(x)) + \lVert \mathrm{sg}[z_e] - e_k \rVert^2 + \beta \lVert z_e - \mathrm{sg}[e_k] \rVert^2

(the codebook term is dropped when the codebook is an EMA; the first term is
:math:`\lVert \tilde x - \hat x\rVert^2` for the squared-error decoder). Stage 2
(:meth:`VQVAE.finish`) fits a prior :math:`p(k)` on the training code maps.

**Bound.** For any code map :math:`k^*`,
:math:`p(x) = \sum_k p(k) p(x \mid e_k) \ge p(k^*) p(x \mid e_{k^*})`, so with
:math:`k^* = k(x)`

.. math:: -\log p(x) \le -\log p(x \mid z_q(x)) - \log p(k(x)),

in nats on the stored levels; :math:`-\log p(k) = hw\log K` under the uniform
prior, the learned prior's exact NLL once fitted. This is the deterministic-encoder
ELBO (its KL term is :math:`-\log p(k(x))`). The squared-error decoder is not a
normalised likelihood, so that model reports no bound (:meth:`VQVAE.likelihood_kind` is
``"none"`` for ``decoder=mse``).

Reference: van den Oord, Vinyals & Kavukcuoglu, Neural Discrete Representation
Learning (2017, arXiv:1711.00937).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.codebook import code_statistics, nearest_code
from gmkit_core.config import option, parse_assignments, parse_literal
from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError, DataError, NotRegisteredError
from gmkit_core.heads import make_head
from gmkit_core.interfaces import GenerativeModel, likelihood_of
from gmkit_core.registry import registry

from .code_prior import UniformCodes, code_dataset, code_spec
from .likelihoods import DECODERS, DecodedImage
from .networks import ConvDecoder, ConvEncoder
from .quantizer import Quantized, VectorQuantizer

__all__ = ["VQVAEConfig", "VQVAE"]

NO_BOUND_NOTE = (
    "no likelihood bound: the squared-error decoder is not a distribution on the data's levels; "
    "use decoder=logistic_mixture, logistic or categorical for nll and bits/dim"
)


def _assignments(_: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for item in value:
        if "=" not in item:
            raise ValueError(f"'{attribute.name}' takes key=value items, got '{item}'")


_int, _positive = v.instance_of(int), v.gt(0)


@attrs.frozen
class VQVAEConfig:
    """Options of the ``vqvae`` model (``--set key=value``)."""

    codebook_size: int = option(64, "K, the number of codes", [_int, _positive])
    code_dim: int = option(16, "D, the dimension of each code vector", [_int, _positive])
    downsample: int = option(4, "s: the code map is (H/s, W/s)", v.in_((1, 2, 4, 8)))
    hidden: int = option(32, "channels of the encoder and decoder", [_int, _positive])
    res_blocks: int = option(1, "residual blocks in the encoder and in the decoder", [_int, v.ge(0)])
    decoder: str = option(
        "logistic_mixture",
        "p(x|z_q): a core observation head (logistic_mixture, logistic, "
        "categorical: bounds) or mse (squared error, no bound)",
        v.in_(DECODERS),
    )
    mixtures: int = option(5, "M, components of the logistic_mixture decoder", [_int, _positive])
    beta: float = option(0.25, "beta, weight of the commitment loss", [v.instance_of(float), v.ge(0.0)])
    codebook_update: str = option(
        "ema", "ema (moving averages, no codebook loss) or loss (gradient on the codebook loss)", v.in_(("ema", "loss"))
    )
    ema_decay: float = option(0.99, "gamma of the EMA codebook", [v.instance_of(float), v.ge(0.0), v.lt(1.0)])
    ema_eps: float = option(1e-5, "epsilon, Laplace smoothing of the EMA counts", [v.instance_of(float), _positive])
    dead_code_window: int = option(
        50, "re-seed codes unused for this many training batches from encoder outputs (0: never)", [_int, v.ge(0)]
    )
    prior: str = option(
        "pixelcnn",
        "prior over code maps fitted as stage 2: a registered image model (pixelcnn) or uniform",
        [v.instance_of(str), v.min_len(1)],
    )
    prior_options: tuple[str, ...] = option(
        (),
        "key=value options of the prior model, e.g. prior_options=layers=4,hidden=32",
        [v.instance_of(tuple), _assignments],
    )
    prior_train: tuple[str, ...] = option(
        ("steps=1000", "lr=2e-3", "eval_every=50"),
        "key=value trainer settings for stage 2 over the prior's own defaults, e.g. prior_train=steps=2000,lr=1e-3",
        [v.instance_of(tuple), _assignments],
    )
    decode: str = option(
        "sample", "how samples leave the decoder: sample from p(x|z_q) or take its mode", v.in_(("sample", "mode"))
    )


class VQVAE(GenerativeModel):
    """VQ-VAE over discrete images; ``nll`` is the bound above (``likelihood = "bound"``).

    Submodules: ``encoder`` (:class:`~gmkit_vqvae.networks.ConvEncoder`),
    ``quantizer`` (:class:`~gmkit_vqvae.quantizer.VectorQuantizer`), ``decoder``
    (:class:`~gmkit_vqvae.networks.ConvDecoder`), ``prior_model`` (the stage-2
    prior, a registered GenerativeModel over ``(1, h, w)`` code images, or None
    for ``prior=uniform``). The buffer ``prior_fitted`` says whether stage 2 ran;
    until then code costs and samples use :class:`~gmkit_vqvae.code_prior.UniformCodes`.
    """

    Config = VQVAEConfig
    likelihood: ClassVar[str] = "bound"
    conditional = False
    #: stage 1 trains encoder, codebook and decoder; ``prior_model``'s parameters get no gradient until ``finish``
    ddp_find_unused_parameters: ClassVar[bool] = True
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1000,
        "batch_size": 128,
        "lr": 2e-3,
        "optimizer": "adam",
        "schedule": "cosine",
        "warmup": 100,
        "grad_clip": 1.0,
        "ema": 0.0,
        "eval_every": 250,
    }
    prior_fitted: Tensor  # registered buffer

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16: 256 codes, 64 channels and two residual blocks (the 8 x 8 code map of
        downsample 4 holds more detail than the 2 x 2 map of the digits)."""
        if data.is_large_image:
            return {"codebook_size": 256, "hidden": 64, "res_blocks": 2}
        return {}

    def __init__(self, config: VQVAEConfig, data: DataSpec):
        super().__init__(config, data)
        if not data.is_image or not data.levels:
            raise DataError(f"vqvae models images with integer levels; '{data.name}' is {data.kind} data")
        self.levels: int = data.levels
        C, H, W = data.shape
        s = config.downsample
        if H % s or W % s:
            raise ConfigError(f"model 'vqvae': downsample={s} does not divide the image size {H}x{W}")
        self.latent_shape = (H // s, W // s)
        head = (
            None
            if config.decoder == "mse"
            else make_head(config.decoder, data.levels, config.mixtures, owner="decoder")
        )
        K, D = config.codebook_size, config.code_dim
        self.encoder = ConvEncoder(C, config.hidden, D, s, config.res_blocks)
        self.quantizer = VectorQuantizer(
            K, D, config.codebook_update, config.ema_decay, config.ema_eps, config.dead_code_window
        )
        self.decoder = ConvDecoder(D, config.hidden, head, C, data.levels, s, config.res_blocks)
        self.uniform_prior = UniformCodes(self.latent_shape, K)
        self.prior_model = None if config.prior == "uniform" else self._build_prior()
        self.register_buffer("prior_fitted", torch.zeros((), dtype=torch.int64))

    @classmethod
    def likelihood_kind(cls, data: DataSpec | None = None, config: Any = None) -> str:
        """``"bound"``, or ``"none"`` with the squared-error decoder (``decoder=mse``), which is no distribution."""
        if config is not None and config.decoder == "mse":
            return "none"
        return super().likelihood_kind(data, config)

    @property
    def bounded(self) -> bool:
        """Whether this model reports a likelihood bound (every decoder but ``mse``)."""
        return likelihood_of(self) != "none"

    def _build_prior(self) -> GenerativeModel:
        name = self.config.prior
        try:
            registry.entry("model", name)
        except NotRegisteredError as exc:
            hint = "install the plugin gmkit-pixelcnn (pip install gmkit-pixelcnn), " if name == "pixelcnn" else ""
            raise NotRegisteredError(f"vqvae prior: {exc}; {hint}or set prior=uniform") from None
        spec = code_spec(self.latent_shape, self.config.codebook_size)
        prior = registry.get("model", name, data=spec, **parse_assignments(self.config.prior_options))
        if likelihood_of(prior) == "none" or prior.conditional:
            raise ConfigError(
                f"model 'vqvae': prior '{name}' must be an unconditional model with a likelihood "
                "(e.g. pixelcnn), or uniform"
            )
        return prior

    # -- the autoencoder -------------------------------------------------------
    def _device(self) -> torch.device:
        return self.prior_fitted.device

    def _unit(self, x: Tensor) -> Tensor:
        """Levels ``(B, C, H, W)`` -> bin centres in ``[-1, 1]`` in the weights' dtype."""
        return to_unit_interval(x, self.levels).to(self.quantizer.codebook.dtype)

    def quantize(self, x: Tensor) -> Quantized:
        """Images ``(B, C, H, W)`` -> :class:`~gmkit_vqvae.quantizer.Quantized` with ``z_q`` ``(B, h, w, D)``."""
        z_e = self.encoder(self._unit(x))  # (B, D, h, w)
        return self.quantizer(z_e.permute(0, 2, 3, 1))  # (B, h, w, D)

    def decode(self, codes: Tensor) -> DecodedImage:
        r"""Code maps ``(B, h, w)`` -> :math:`p(x \mid e_k)` over ``(B, C, H, W)``."""
        return self.decoder(self.quantizer.lookup(codes).permute(0, 3, 1, 2))

    @torch.no_grad()
    def encode_codes(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> code maps ``(B, h, w)`` int64 (no codebook update)."""
        z_e = self.encoder(self._unit(x)).permute(0, 2, 3, 1)  # (B, h, w, D)
        return nearest_code(z_e, self.quantizer.codebook)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The decoder's mode at the quantised code map of ``x``: ``(B, C, H, W)`` int64."""
        return self.decode(self.encode_codes(x)).mode()

    # -- the contract ------------------------------------------------------------
    def prepare(self, train: Dataset) -> None:
        """Seed the codebook with encoder outputs of up to 2048 training images (k-means style start)."""
        x = train.x[:2048].to(self._device())
        with torch.no_grad():
            z_e = self.encoder(self._unit(x)).permute(0, 2, 3, 1)
        self.quantizer.init_from(z_e.reshape(-1, self.config.code_dim))

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        x = batch.x
        q = self.quantize(x)
        decoded = self.decoder(q.z_q.permute(0, 3, 1, 2))
        recon = -decoded.log_prob(x) if self.bounded else decoded.squared_error(x)  # (B,)
        loss = recon + self.config.beta * q.commitment_loss
        out: dict[str, Tensor] = {}
        if self.config.codebook_update == "loss":
            loss = loss + q.codebook_loss
            out["codebook"] = q.codebook_loss.mean().detach()
        perplexity, usage = code_statistics(torch.bincount(q.codes.flatten(), minlength=self.config.codebook_size))
        out.update(
            recon=recon.mean().detach(),
            commitment=q.commitment_loss.mean().detach(),
            perplexity=torch.tensor(perplexity, device=x.device),
            usage=torch.tensor(usage, device=x.device),
        )
        return {"loss": loss.mean(), **out}

    def code_nats(self, codes: Tensor) -> Tensor:
        """:math:`-\\log p(k)` ``(B,)`` for code maps ``(B, h, w)``: the fitted prior's NLL, else uniform."""
        if self.prior_model is not None and bool(self.prior_fitted):
            return self.prior_model.nll(Batch(codes.unsqueeze(1)))
        return -self.uniform_prior.log_prob(codes)

    def nll(self, batch: Batch) -> Tensor:
        """Upper bound on ``-log P(x)`` ``(B,)`` nats: reconstruction nats plus code nats."""
        if not self.bounded:
            raise NotImplementedError(NO_BOUND_NOTE)
        codes = self.encode_codes(batch.x)
        return -self.decode(codes).log_prob(batch.x) + self.code_nats(codes)

    @torch.no_grad()
    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Codes from the prior (the fitted one, else uniform), decoded: ``(n, C, H, W)`` int64."""
        if self.prior_model is not None and bool(self.prior_fitted):
            codes = self.prior_model.sample(n, generator=generator).squeeze(1)  # (n, h, w)
        else:
            codes = self.uniform_prior.sample(n, generator=generator)
        decoded = self.decode(codes)
        return decoded.sample(generator) if self.config.decode == "sample" else decoded.mode()

    @torch.no_grad()
    def evaluate(self, data: Dataset, batch_size: int = 256) -> dict[str, Any]:
        """The core's bound (``nll_nats``, ``bits_per_dim``) plus its two terms ``recon_nats`` and ``code_nats``,
        ``perplexity`` and ``codebook_usage`` over the whole split, the ``prior`` in use and ``squared_error``.

        ``squared_error`` is the mean per-example squared error of the decoder's
        mode (its mean for ``mse``) in ``[-1, 1]`` units. With the squared-error
        decoder there are no likelihood keys and ``note`` says why.
        """
        out = super().evaluate(data, batch_size)
        device = self._device()
        counts = torch.zeros(self.config.codebook_size, dtype=torch.float64, device=device)
        code = squared = 0.0
        for b in data.batches(batch_size):
            x = b.x.to(device)
            codes = self.encode_codes(x)
            counts += torch.bincount(codes.flatten(), minlength=self.config.codebook_size).double()
            squared += float(self.decode(codes).squared_error(x).double().sum())
            if self.bounded:
                code += float(self.code_nats(codes).double().sum())
        n = max(len(data), 1)
        perplexity, usage = code_statistics(counts)
        fitted = self.prior_model is not None and bool(self.prior_fitted)
        out.update(
            perplexity=perplexity,
            codebook_usage=usage,
            squared_error=squared / n,
            prior=f"{self.config.prior} (fitted)" if fitted else "uniform",
        )
        if self.bounded:
            out.update(recon_nats=out["nll_nats"] - code / n, code_nats=code / n)
        else:
            out["note"] = NO_BOUND_NOTE
        return out

    # -- stage 2 -----------------------------------------------------------------
    def finish(self, data: dict[str, Dataset], fit: Callable[..., GenerativeModel]) -> None:
        """Stage 2: fit ``prior_model`` on the code maps of ``data["train"]`` (best on ``data["validation"]``).

        ``fit(model, data, **train_overrides) -> model`` is the trainer's
        in-memory fit; ``prior_train`` supplies the overrides. A no-op for
        ``prior=uniform``.
        """
        if self.prior_model is None:
            return
        was_training = self.training
        self.eval()
        codes = {
            split: code_dataset(self._codes_of(ds), self.config.codebook_size, split)
            for split, ds in data.items()
            if split in ("train", "validation")
        }
        self.train(was_training)
        overrides = {k: parse_literal(val) for k, val in parse_assignments(self.config.prior_train).items()}
        self.prior_model = fit(self.prior_model, codes, **overrides)
        self.prior_fitted.fill_(1)

    def _codes_of(self, data: Dataset, batch_size: int = 512) -> Tensor:
        device = self._device()
        return torch.cat([self.encode_codes(b.x.to(device)).cpu() for b in data.batches(batch_size)])

    def describe(self) -> str:
        prior = f"{self.config.prior} prior" + (
            "" if bool(self.prior_fitted) or self.prior_model is None else " (not fitted)"
        )
        return f"{super().describe()}, K={self.config.codebook_size}, codes {self.latent_shape}, {prior}"
