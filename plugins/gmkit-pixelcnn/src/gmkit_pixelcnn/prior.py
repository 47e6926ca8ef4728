r"""The ``pixelcnn`` prior: an autoregressive law over discrete code maps.

.. math:: p(z \mid y) = \prod_{i} p(z_i \mid z_{<i}, y), \qquad z \in \{0, \dots, K-1\}^{H \times W}

in raster order, exact, with the same network as the ``pixelcnn`` model
(a VQ-VAE's second stage: van den Oord et al., Neural Discrete Representation
Learning, 2017, arXiv:1711.00937). Built through the registry::

    prior = registry.get("prior", "pixelcnn", shape=(H, W), levels=K, hidden=64)
    prior.log_prob(codes)          # (B, H, W) int64 -> (B,) nats
    prior.sample(16, generator=g)  # (16, H, W) int64

``shape`` may also be ``(C, H, W)`` (several code channels, ordered within a
position) or an int ``D`` (a sequence ``(B, D)``, modelled as one row). An
optional condition ``y`` is a class label (``num_classes``), a vector
(``condition_dim``) or a spatial map ``(B, condition_channels, H, W)``; pass
it as ``condition=`` to both methods.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gmkit_core.config import make_config
from gmkit_core.errors import ConfigError
from gmkit_core.heads import make_head
from gmkit_core.interfaces import Prior

from .config import PixelCNNConfig
from .network import PixelCNNNet
from .sampling import draw

__all__ = ["PixelCNNPrior"]


def _image_shape(shape: int | tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, int, int]]:
    """The event shape as given and as ``(C, H, W)``."""
    event = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if len(event) not in (1, 2, 3) or min(event) < 1:
        raise ConfigError(f"prior 'pixelcnn': shape must be D, (H, W) or (C, H, W) positive sizes, got {shape}")
    image = {1: (1, 1, *event), 2: (1, *event), 3: event}[len(event)]
    return event, image  # type: ignore[return-value]


class PixelCNNPrior(Prior):
    """Exact autoregressive prior over ``(B, *shape)`` int64 codes in ``[0, levels)``.

    ``options`` are the fields of :class:`~gmkit_pixelcnn.config.PixelCNNConfig`
    (``arch``, ``hidden``, ``layers``, ``kernel_size``, ``first_kernel_size``,
    ``embed_dim``, ``output``, ``mixtures``, ``dropout``, ``sampler``).
    At most one of ``num_classes``, ``condition_dim``, ``condition_channels`` is set.
    """

    def __init__(
        self,
        shape: int | tuple[int, ...],
        levels: int,
        num_classes: int = 0,
        condition_dim: int = 0,
        condition_channels: int = 0,
        **options: Any,
    ):
        super().__init__()
        self.shape, self.image_shape = _image_shape(shape)
        if levels < 2:
            raise ConfigError(f"prior 'pixelcnn': levels must be >= 2, got {levels}")
        self.levels = int(levels)
        self.config = make_config(PixelCNNConfig, options, owner="prior 'pixelcnn'")
        kinds = [
            (k, s) for k, s in (("label", num_classes), ("vector", condition_dim), ("spatial", condition_channels)) if s
        ]
        if len(kinds) > 1:
            raise ConfigError("prior 'pixelcnn': set at most one of num_classes, condition_dim, condition_channels")
        kind, size = kinds[0] if kinds else (None, 0)
        if self.config.hidden < self.image_shape[0]:
            raise ConfigError(f"prior 'pixelcnn': hidden must be at least the channel count {self.image_shape[0]}")
        self.head = make_head(self.config.output, self.levels, self.config.mixtures)
        self.net = PixelCNNNet(
            self.config, self.image_shape[0], self.levels, self.head.params, kind, size, size=self.image_shape[1:]
        )

    def _as_image(self, z: Tensor) -> Tensor:
        if tuple(z.shape[1:]) != self.shape:
            raise ConfigError(
                f"prior 'pixelcnn': codes must have shape (B, {', '.join(map(str, self.shape))}), got {tuple(z.shape)}"
            )
        if z.is_floating_point():
            raise ConfigError("prior 'pixelcnn': codes must be integers")
        return z.long().reshape(z.shape[0], *self.image_shape)

    def log_prob(self, z: Tensor, condition: Tensor | None = None) -> Tensor:
        """``(B, *shape)`` int64 codes -> ``(B,)`` exact :math:`\\log p(z \\mid y)` in nats."""
        x = self._as_image(z)
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.levels):
            raise ConfigError(f"prior 'pixelcnn': codes must lie in [0, {self.levels})")
        return self.head(self.net(x, condition)).log_prob(x)

    def sample(
        self,
        n: int,
        *,
        condition: Tensor | None = None,
        generator: torch.Generator | None = None,
        method: str | None = None,
    ) -> Tensor:
        """``(n, *shape)`` int64 codes; ``method`` ``fast`` (default from ``sampler``) or ``naive``."""
        x = draw(self.net, self.head, n, self.image_shape, condition, generator, method or self.config.sampler)
        return x.reshape(n, *self.shape)
