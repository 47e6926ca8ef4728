r"""The registered models ``transformer`` and ``ctransformer``.

An image :math:`x` ``(C, H, W)`` with ``L`` levels is the sequence :math:`x_0 .. x_{N-1}`,
:math:`N = CHW`, of its sub-pixels in raster order with channels as sub-steps (sub-pixel
:math:`(i, j, c)` is :math:`p = (iW + j)C + c`), and

.. math::
    \log p(x \mid y) = \sum_{p=0}^{N-1} \log \mathrm{Cat}\big(x_p;\ \mathrm{softmax}(\ell_p(x_{<p}, y))\big)

in nats, exact, on the stored levels (no dequantisation); :math:`\ell_p` are the logits of the
causal transformer (:mod:`~gmkit_transformer.network`). ``y`` is absent for ``transformer``
and the class label for ``ctransformer``. The loss is the mean NLL; bits/dim are
:math:`-\log p(x) / (N \ln 2)`.

Reference: Chen et al., Generative Pretraining from Pixels (ICML 2020); Parmar et al., Image
Transformer (2018, arXiv:1802.05751).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from attrs import validators as v
from torch import Tensor

from gmkit_core.config import option
from gmkit_core.data import Batch, DataSpec
from gmkit_core.distributions import Categorical
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import GenerativeModel, bits_per_dim

from .network import CausalTransformer
from .sampling import SAMPLERS

__all__ = ["TransformerConfig", "Transformer", "ConditionalTransformer"]


@attrs.frozen
class TransformerConfig:
    """Options of ``transformer`` and ``ctransformer`` (``--set key=value``)."""

    dim: int = option(64, "width d of the token features (a multiple of heads; of 4 for sinusoidal positions)", v.ge(1))
    layers: int = option(4, "transformer blocks", v.ge(1))
    heads: int = option(4, "attention heads per block", v.ge(1))
    mlp_ratio: int = option(4, "hidden width of each block's MLP, in units of dim", v.ge(1))
    dropout: float = option(
        0.2, "dropout on embeddings, attention weights and residual branches in training", [v.ge(0.0), v.lt(1.0)]
    )
    positions: str = option(
        "learned",
        "learned (row + column + channel tables) or sinusoidal (fixed 2D code + learned channel table)",
        v.in_(("learned", "sinusoidal")),
    )
    cache: bool = option(
        True,
        "sample with the key/value cache (true) or recompute the prefix per sub-pixel (false)",
        v.instance_of(bool),
    )


class Transformer(GenerativeModel):
    """Unconditional autoregressive transformer over discrete images ``(C, H, W)``; see the module docstring."""

    Config = TransformerConfig
    likelihood: ClassVar[str] = "exact"
    conditional = False
    # Measured on digits (1000 training images), see docs/models/transformer.md.
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 4500,
        "batch_size": 32,
        "lr": 2e-3,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "schedule": "cosine",
        "warmup": 100,
        "grad_clip": 1.0,
        "ema": 0.995,
        "eval_every": 100,
        "patience": 8,
    }

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16 (3072 sub-pixels at 3 x 32 x 32, several CPU seconds a step): batches
        of 8 and 100 steps, validation every 50; a short run that shows the cost, not a tuned one."""
        if data.is_large_image:
            return {**cls.train_defaults, "steps": 100, "batch_size": 8, "warmup": 10, "eval_every": 50, "patience": 0}
        return dict(cls.train_defaults)

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16: no dropout. Without attention dropout PyTorch's fused attention
        kernel runs in memory linear in the sequence; with it, the weights ``(B, heads, N, N)`` are
        materialised (about 20 GB at 3 x 32 x 32, batch 32, 4 layers: out of memory)."""
        return {"dropout": 0.0} if data.is_large_image else {}

    def __init__(self, config: TransformerConfig, data: DataSpec):
        super().__init__(config, data)
        name = "ctransformer" if self.conditional else "transformer"
        if not data.is_image or not data.levels or len(data.shape) != 3:
            raise DataError(
                f"{name} models discrete (C, H, W) images; '{data.name}' is {data.kind} data of shape {data.shape}"
            )
        if data.levels < 2:
            raise DataError(f"{name} needs at least 2 levels, '{data.name}' has {data.levels}")
        if self.conditional and not data.num_classes:
            raise DataError(f"ctransformer needs labelled data; '{data.name}' has no classes (use transformer)")
        if config.dim % config.heads:
            raise ConfigError(f"{name}: dim={config.dim} must be a multiple of heads={config.heads}")
        if config.positions == "sinusoidal" and config.dim % 4:
            raise ConfigError(f"{name}: positions=sinusoidal needs dim a multiple of 4, got dim={config.dim}")
        c, h, w = data.shape
        self.net = CausalTransformer(
            (c, h, w),
            data.levels,
            config.dim,
            config.layers,
            config.heads,
            config.mlp_ratio,
            config.dropout,
            config.positions,
            int(data.num_classes or 0) if self.conditional else 0,
        )

    # -- sequences <-> images ------------------------------------------------------
    def to_sequence(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, N)``: raster order, channels inner."""
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    def to_image(self, s: Tensor) -> Tensor:
        """``(B, N)`` -> ``(B, C, H, W)``, the inverse of :meth:`to_sequence`."""
        c, h, w = self.data.shape
        return s.reshape(s.shape[0], h, w, c).permute(0, 3, 1, 2)

    def logits(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """``(B, N, L)`` logits of every sub-pixel given the earlier ones (teacher forcing)."""
        s = self.to_sequence(x.long())  # (B, N)
        start = s.new_full((s.shape[0], 1), self.net.start)
        return self.net(torch.cat([start, s[:, :-1]], dim=1), 0, None, condition)

    def log_prob(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """``(B, C, H, W)`` int64 -> ``(B,)`` exact :math:`\\log p(x \\mid y)` in nats."""
        return Categorical(self.logits(x, condition), event_dims=1).log_prob(self.to_sequence(x.long()))

    def _labels(self, batch: Batch) -> Tensor | None:
        if not self.conditional:
            return None
        if batch.y is None:
            raise DataError("ctransformer needs labels in every batch")
        return batch.y

    # -- the contract -------------------------------------------------------------------
    def nll(self, batch: Batch) -> Tensor:
        """``(B,)`` exact :math:`-\\log p(x \\mid y)` nats of the stored levels (of the batch's labels for ctransformer)."""
        return -self.log_prob(batch.x, self._labels(batch))

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        nll = self.nll(batch).mean()
        return {"loss": nll, "bits_per_dim": bits_per_dim(nll.detach(), self.data.dims)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        cache: bool | None = None,
    ) -> Tensor:
        """``(n, C, H, W)`` int64 levels; ``cache`` (default: the config's) picks the cached or the naive path.

        For ``ctransformer``, ``condition`` holds ``(n,)`` labels (or one label); when omitted,
        labels are drawn uniformly with ``generator``.
        """
        device = self.net.token.weight.device
        if self.conditional:
            if condition is None:
                condition = torch.randint(
                    int(self.data.num_classes or 1),
                    (n,),
                    generator=generator,
                    device=generator.device if generator is not None else device,
                )
            condition = torch.as_tensor(condition, device=device).long()
            if condition.ndim == 0:
                condition = condition.expand(n)
        elif condition is not None:
            raise ConfigError("transformer is unconditional; use ctransformer to sample with a label")
        was_training = self.training
        self.eval()
        try:
            s = SAMPLERS[self.config.cache if cache is None else bool(cache)](self.net, n, condition, generator)
        finally:
            self.train(was_training)
        return self.to_image(s)

    def describe(self) -> str:
        c = self.config
        return f"{super().describe()}, {c.layers} blocks x {c.heads} heads, d={c.dim}, {c.positions} positions"


class ConditionalTransformer(Transformer):
    """Class-conditional transformer :math:`p(x \\mid y)`: a learned class embedding added at every position."""

    conditional = True
