r"""Stacks of flow layers: the architectures behind the registered models and priors.

Every builder returns one :class:`~gmkit_core.transforms.Compose` mapping data
(shape ``(B, *shape)``) to noise of the same shape, so the log-density is
:math:`\log p(x) = \log p_Z(f(x)) + \log|\det J_f(x)|`.

- :func:`autoregressive_stack`: MAF / autoregressive NSF on vectors (Papamakarios
  et al., 2017, arXiv:1705.07057; Durkan et al., 2019, arXiv:1906.04032).
- :func:`coupling_stack`: RealNVP / NICE / coupling NSF on vectors.
- :func:`multiscale`: RealNVP's image architecture (checkerboard then channel
  couplings, squeeze, factor out half; Dinh et al., 2016, arXiv:1605.08803).
- :func:`glow`: Glow's levels of ActNorm, invertible 1x1 convolution and coupling
  (Kingma & Dhariwal, 2018, arXiv:1807.03039).
"""

from __future__ import annotations

from gmkit_core.errors import ConfigError
from gmkit_core.interfaces import Transform
from gmkit_core.transforms import Compose, Inverse

from .autoregressive import maf_layer
from .coupling import coupling
from .linear import ActNorm, InvertibleLinear, permutation
from .reshape import Split, Squeeze

__all__ = ["autoregressive_stack", "coupling_stack", "multiscale", "glow", "MIXERS"]

MIXERS = ("none", "reverse", "lu")


def _mixer(kind: str, features: int, seed: int) -> list[Transform]:
    if kind == "none":
        return []
    if kind == "reverse":
        return [permutation(features, "reverse")]
    if kind == "lu":
        return [InvertibleLinear(features, seed=seed)]
    raise ConfigError(f"mixing layer must be one of {', '.join(MIXERS)}, got '{kind}'")


def autoregressive_stack(
    features: int,
    layers: int = 5,
    kind: str = "affine",
    hidden: int = 64,
    depth: int = 2,
    dropout: float = 0.0,
    mixer: str = "reverse",
    actnorm: bool = True,
    bins: int = 8,
    bound: float = 5.0,
    seed: int = 0,
) -> Compose:
    """``layers`` x [ActNorm?, masked autoregressive layer, mixer], the last mixer dropped."""
    parts: list[Transform] = []
    for i in range(layers):
        if actnorm:
            parts.append(ActNorm(features))
        parts.append(maf_layer(features, kind, hidden, depth, "forward", dropout, bins, bound))
        if i < layers - 1:
            parts += _mixer(mixer, features, seed + i)
    return Compose(*parts)


def coupling_stack(
    features: int,
    layers: int = 6,
    kind: str = "affine",
    hidden: int = 64,
    depth: int = 2,
    dropout: float = 0.0,
    mixer: str = "none",
    actnorm: bool = True,
    bins: int = 8,
    bound: float = 5.0,
    seed: int = 0,
) -> Compose:
    """``layers`` x [ActNorm?, mixer, coupling on alternating halves]."""
    parts: list[Transform] = []
    for i in range(layers):
        if actnorm:
            parts.append(ActNorm(features))
        if i > 0:
            parts += _mixer(mixer, features, seed + i)
        parts.append(coupling(features, kind, "half", i % 2, hidden, depth, dropout, bins, bound))
    return Compose(*parts)


def _couplings(
    shape: tuple[int, int, int],
    mask: str,
    steps: int,
    kind: str,
    hidden: int,
    blocks: int,
    dropout: float,
    actnorm: bool,
) -> list[Transform]:
    parts: list[Transform] = []
    for i in range(steps):
        if actnorm:
            parts.append(ActNorm(shape[0]))
        parts.append(coupling(shape, kind, mask, i % 2, hidden, blocks, dropout))
    return parts


def multiscale(
    shape: tuple[int, int, int],
    scales: int = 2,
    steps: int = 3,
    kind: str = "affine",
    hidden: int = 64,
    blocks: int = 2,
    dropout: float = 0.0,
    actnorm: bool = True,
) -> Compose:
    r"""RealNVP's multi-scale flow on ``(C, H, W)``, output of the same shape.

    Each scale: ``steps`` checkerboard couplings, squeeze, ``steps`` channel
    couplings, then half the channels are factored out and the next scale acts
    on the rest; the last scale is ``steps + 1`` checkerboard couplings.
    """
    c, h, w = shape
    if scales <= 1 or h < 2 or w < 2 or h % 2 or w % 2:
        return Compose(*_couplings(shape, "checkerboard", steps + 1, kind, hidden, blocks, dropout, actnorm))
    squeezed = (4 * c, h // 2, w // 2)
    kept = (2 * c, h // 2, w // 2)
    inner = multiscale(kept, scales - 1, steps, kind, hidden, blocks, dropout, actnorm)
    return Compose(
        *_couplings(shape, "checkerboard", steps, kind, hidden, blocks, dropout, actnorm),
        Squeeze(),
        *_couplings(squeezed, "channel", steps, kind, hidden, blocks, dropout, actnorm),
        Split(2 * c, inner),
        Inverse(Squeeze()),
    )


def glow(
    shape: tuple[int, int, int],
    levels: int = 2,
    steps: int = 8,
    kind: str = "affine",
    hidden: int = 64,
    blocks: int = 2,
    dropout: float = 0.0,
    seed: int = 0,
) -> Compose:
    r"""Glow on ``(C, H, W)``: per level squeeze, ``steps`` x [ActNorm, 1x1 conv, coupling], split half."""
    c, h, w = shape
    if h % 2 or w % 2:
        raise ConfigError(f"glow squeezes each level: needs even height and width, got {h}x{w}")
    squeezed = (4 * c, h // 2, w // 2)
    parts: list[Transform] = [Squeeze()]
    for i in range(steps):
        parts += [
            ActNorm(squeezed[0]),
            InvertibleLinear(squeezed[0], seed=seed + i),
            coupling(squeezed, kind, "channel", 0, hidden, blocks, dropout),
        ]
    if levels > 1:
        if h // 2 % 2 or w // 2 % 2:
            raise ConfigError(f"glow with {levels} levels needs sizes divisible by {2**levels}, got {h}x{w}")
        kept = (2 * c, h // 2, w // 2)
        parts.append(Split(2 * c, glow(kept, levels - 1, steps, kind, hidden, blocks, dropout, seed + steps)))
    parts.append(Inverse(Squeeze()))
    return Compose(*parts)
