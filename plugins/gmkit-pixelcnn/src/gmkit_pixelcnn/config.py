"""The PixelCNN options, shared by the models and the prior."""

from __future__ import annotations

import attrs
from attrs import validators as v

__all__ = ["PixelCNNConfig"]


def _odd_kernel(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 3 or value % 2 == 0:
        raise ValueError(f"{attribute.name} must be an odd integer >= 3, got {value}")


@attrs.frozen
class PixelCNNConfig:
    """Architecture, output law and sampler of a PixelCNN (see docs/models/pixelcnn.md)."""

    arch: str = attrs.field(default="gated", validator=v.in_(("gated", "plain")), metadata={
        "help": "gated: vertical + horizontal stacks, no blind spot; plain: masked k x k stack (has a blind spot)"})
    hidden: int = attrs.field(default=32, validator=v.ge(1), metadata={
        "help": "features per layer F (split into one group per image channel)"})
    layers: int = attrs.field(default=5, validator=v.ge(1), metadata={
        "help": "number of masked layers, the first included"})
    kernel_size: int = attrs.field(default=3, validator=_odd_kernel, metadata={
        "help": "kernel k of the layers after the first (gated: (k//2+1) x k vertical, 1 x (k//2+1) horizontal)"})
    first_kernel_size: int = attrs.field(default=5, validator=_odd_kernel, metadata={
        "help": "kernel of the first (type A) layer"})
    embed_dim: int = attrs.field(default=8, validator=v.ge(1), metadata={
        "help": "size of the learned embedding of each level, per channel"})
    output: str = attrs.field(default="categorical", validator=v.in_(("categorical", "logistic_mixture")), metadata={
        "help": "categorical over all levels, or a discretised logistic mixture (PixelCNN++)"})
    mixtures: int = attrs.field(default=5, validator=v.ge(1), metadata={
        "help": "components M of the logistic mixture (output=logistic_mixture)"})
    position_bias: bool = attrs.field(default=True, validator=v.instance_of(bool), metadata={
        "help": "learn a bias of the output parameters at every sub-pixel (ties the network to one image size)"})
    dropout: float = attrs.field(default=0.3, validator=[v.ge(0.0), v.lt(1.0)], metadata={
        "help": "dropout rate on every layer's gated (plain: convolved) features during training"})
    sampler: str = attrs.field(default="fast", validator=v.in_(("fast", "naive")), metadata={
        "help": "fast: cached, one pixel of work per step; naive: full forward pass per sub-pixel"})
