"""The PixelCNN options, shared by the models and the prior."""

from __future__ import annotations

import attrs
from attrs import validators as v

from gmkit_core.config import option

__all__ = ["PixelCNNConfig"]


def _odd_kernel(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 3 or value % 2 == 0:
        raise ValueError(f"{attribute.name} must be an odd integer >= 3, got {value}")


@attrs.frozen
class PixelCNNConfig:
    """Architecture, output law and sampler of a PixelCNN (see docs/models/pixelcnn.md)."""

    arch: str = option(
        "gated",
        "gated: vertical + horizontal stacks, no blind spot; plain: masked k x k stack (has a blind spot)",
        v.in_(("gated", "plain")),
    )
    hidden: int = option(32, "features per layer F (split into one group per image channel)", v.ge(1))
    layers: int = option(5, "number of masked layers, the first included", v.ge(1))
    kernel_size: int = option(
        3, "kernel k of the layers after the first (gated: (k//2+1) x k vertical, 1 x (k//2+1) horizontal)", _odd_kernel
    )
    first_kernel_size: int = option(5, "kernel of the first (type A) layer", _odd_kernel)
    embed_dim: int = option(8, "size of the learned embedding of each level, per channel", v.ge(1))
    embed_init: str = option(
        "random",
        "initial embedding: random (normal), or ordinal (cos(pi k u) at the level's intensity u in [0, 1], "
        "k = 1..embed_dim, so neighbouring levels start close)",
        v.in_(("random", "ordinal")),
    )
    output: str = option(
        "categorical",
        "categorical over all levels, or a discretised logistic mixture (PixelCNN++)",
        v.in_(("categorical", "logistic_mixture")),
    )
    mixtures: int = option(5, "components M of the logistic mixture (output=logistic_mixture)", v.ge(1))
    position_bias: bool = option(
        True,
        "learn a bias of the output parameters at every sub-pixel (ties the network to one image size)",
        v.instance_of(bool),
    )
    dropout: float = option(
        0.3, "dropout rate on every layer's gated (plain: convolved) features during training", [v.ge(0.0), v.lt(1.0)]
    )
    sampler: str = option(
        "fast",
        "fast: cached, one pixel of work per step; naive: full forward pass per sub-pixel",
        v.in_(("fast", "naive")),
    )
