r"""The registered models ``pixelcnn`` and ``cpixelcnn``.

.. math::
    \log p(x \mid y) = \sum_{i=1}^{HW} \sum_{c=1}^{C} \log p(x_{i,c} \mid x_{<i}, x_{i,<c}, y),
    \qquad \mathcal L = -\frac{1}{B}\sum_b \log p(x^{(b)} \mid y^{(b)})

in nats, exact, on the stored integer levels (no dequantisation); ``y`` is
absent for ``pixelcnn`` and the class label for ``cpixelcnn``, whose ``nll`` is the exact
:math:`-\log p(x \mid y)`; ``evaluate`` then reports the exact marginal
:math:`-\log \frac1K \sum_y p(x \mid y)` as the headline (the core's ``marginal_nll``).
The output law per sub-pixel is a core observation head (:mod:`gmkit_core.heads`).
Bits per dimension are :math:`-\log p(x) / (CHW \ln 2)`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from gmkit_core.data import Batch, DataSpec
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.heads import make_head
from gmkit_core.interfaces import GenerativeModel, bits_per_dim

from .config import PixelCNNConfig
from .network import PixelCNNNet
from .sampling import draw

__all__ = ["PixelCNN", "ConditionalPixelCNN"]


class PixelCNN(GenerativeModel):
    """Unconditional PixelCNN over discrete images ``(C, H, W)`` with any number of levels."""

    Config = PixelCNNConfig
    likelihood: ClassVar[str] = "exact"
    conditional = False
    # Tuned on digits (1000 training images): dropout + EMA + best-on-validation; see docs/models/pixelcnn.md.
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500,
        "batch_size": 32,
        "lr": 3e-3,
        "optimizer": "adam",
        "schedule": "cosine",
        "warmup": 100,
        "grad_clip": 1.0,
        "ema": 0.995,
        "eval_every": 100,
        "patience": 5,
    }

    @classmethod
    def defaults_for(cls, data: DataSpec) -> dict[str, Any]:
        """Images larger than 16 x 16: batches of 16 and 1200 steps, about 10 CPU-minutes on ``patches32``."""
        if data.is_large_image:
            return {**cls.train_defaults, "steps": 1200, "batch_size": 16}
        return dict(cls.train_defaults)

    @classmethod
    def config_for(cls, data: DataSpec) -> dict[str, Any]:
        """More than 32 levels (8-bit images): a discretised logistic mixture output (PixelCNN++), whose
        neighbouring levels share probability, instead of a free categorical over all 256, and ordinal
        level embeddings, so that neighbouring intensities start close."""
        if data.levels and data.levels > 32:
            return {"output": "logistic_mixture", "embed_init": "ordinal"}
        return {}

    def __init__(self, config: PixelCNNConfig, data: DataSpec):
        super().__init__(config, data)
        name = "cpixelcnn" if self.conditional else "pixelcnn"
        if not data.is_image or data.levels is None:
            raise DataError(f"{name} models discrete images; '{data.name}' is {data.kind} data")
        if data.levels < 2:
            raise DataError(f"{name} needs at least 2 levels, '{data.name}' has {data.levels}")
        if len(data.shape) != 3:
            raise DataError(f"{name} needs (C, H, W) images, '{data.name}' has shape {data.shape}")
        if self.conditional and not data.num_classes:
            raise DataError(f"cpixelcnn needs labelled data; '{data.name}' has no classes (use pixelcnn)")
        if config.hidden < data.shape[0]:
            raise ConfigError(f"{name}: hidden={config.hidden} must be at least the channel count {data.shape[0]}")
        levels: int = data.levels  # not None: checked above
        #: the number of labels a sample may be drawn for (checked above for cpixelcnn; 0 for pixelcnn)
        self.classes: int = (data.num_classes or 0) if self.conditional else 0
        self.head = make_head(config.output, levels, config.mixtures)
        kind, size = ("label", self.classes) if self.conditional else (None, 0)
        self.net = PixelCNNNet(
            config, data.shape[0], levels, self.head.params, kind, size, size=(data.shape[1], data.shape[2])
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.data.shape
        return c, h, w

    def _labels(self, batch: Batch) -> Tensor | None:
        if not self.conditional:
            return None
        if batch.y is None:
            raise DataError("cpixelcnn needs labels in every batch")
        return batch.y

    def log_prob(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """``(B, C, H, W)`` int64 -> ``(B,)`` exact :math:`\\log p(x \\mid y)` in nats."""
        return self.head(self.net(x, condition)).log_prob(x)

    def nll(self, batch: Batch) -> Tensor:
        r"""Exact :math:`-\log p(x)` (``pixelcnn``) or :math:`-\log p(x \mid y)` (``cpixelcnn``), ``(B,)`` nats."""
        return -self.log_prob(batch.x, self._labels(batch))

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        nll = self.nll(batch).mean()
        return {"loss": nll, "bits_per_dim": bits_per_dim(nll.detach(), self.data.dims)}

    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        method: str | None = None,
    ) -> Tensor:
        """``(n, C, H, W)`` int64 levels; ``method`` ``fast`` (default from the config) or ``naive``.

        For ``cpixelcnn``, ``condition`` is ``(n,)`` labels; when omitted, labels
        are drawn uniformly with ``generator``.
        """
        device = self.net.embedding.weight.device
        if self.conditional:
            if condition is None:
                condition = torch.randint(self.classes, (n,), generator=generator, device=device)
            condition = torch.as_tensor(condition, device=device)
            if condition.ndim == 0:
                condition = condition.expand(n)
        elif condition is not None:
            raise ConfigError("pixelcnn is unconditional; use cpixelcnn to sample with a label")
        return draw(self.net, self.head, n, self.shape, condition, generator, method or self.config.sampler)


class ConditionalPixelCNN(PixelCNN):
    """Class-conditional PixelCNN :math:`p(x \\mid y)`: a learned per-class bias in every layer."""

    conditional = True
    #: the last gated layer's vertical output feeds nothing, so its class bias gets no gradient (DDP must allow that)
    ddp_find_unused_parameters: ClassVar[bool] = True
