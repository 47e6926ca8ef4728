r"""A flow as a distribution, and the flow priors ``maf``, ``nsf``, ``realnvp``.

:class:`Flow` turns a transform ``f`` (data -> noise) and a base prior
:math:`p_Z` into the density

.. math:: \log p(x) = \log p_Z(f(x)) + \log|\det J_f(x)|,

sampled by :math:`x = f^{-1}(z)`, :math:`z \sim p_Z`. As a
:class:`~gmkit_core.interfaces.Prior` it serves as a learned prior over
latents: ``registry.get("prior", "maf", shape=16)``. The base is any
registered prior, by name (default ``standard_normal``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gmkit_core.interfaces import Prior, Transform
from gmkit_core.transforms import Compose

from .architectures import autoregressive_stack, coupling_stack
from .reshape import Reshape

__all__ = ["Flow", "maf_prior", "nsf_prior", "realnvp_prior"]


class Flow(Prior):
    """``log p(x) = log p_Z(f(x)) + log|det J_f(x)|`` over events of shape ``shape``."""

    def __init__(self, transform: Transform, base: Prior, shape: tuple[int, ...]):
        super().__init__()
        self.transform, self.base, self.shape = transform, base, tuple(shape)

    def log_prob(self, x: Tensor) -> Tensor:
        z, ladj = self.transform(x)
        return self.base.log_prob(z) + ladj

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``x = f^{-1}(z)``, differentiable in the flow's parameters."""
        x, _ = self.transform.inverse(self.base.sample(n, generator=generator))
        return x

    def sample(self, n: int, *, condition: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if condition is not None:
            raise ValueError("flow priors are unconditional")
        with torch.no_grad():
            return self.rsample(n, generator)


def _base(name: str, features: int) -> Prior:
    from gmkit_core.registry import registry

    return registry.get("prior", name, shape=features)


def _prior(shape: int | tuple[int, ...], base: str, build) -> Flow:  # noqa: ANN001 - a stack builder
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    features = math.prod(shape)
    stack = build(features)
    transform = stack if len(shape) == 1 else Compose(Reshape(shape, (features,)), stack)
    return Flow(transform, _base(base, features), shape)


def maf_prior(
    shape: int | tuple[int, ...],
    layers: int = 5,
    hidden: int = 64,
    depth: int = 2,
    dropout: float = 0.0,
    base: str = "standard_normal",
) -> Flow:
    """MAF prior: ``layers`` affine MADE layers with reversed orders between them, ActNorm before each."""
    return _prior(shape, base, lambda d: autoregressive_stack(d, layers, "affine", hidden, depth, dropout))


def nsf_prior(
    shape: int | tuple[int, ...],
    layers: int = 4,
    hidden: int = 64,
    depth: int = 2,
    bins: int = 8,
    bound: float = 5.0,
    dropout: float = 0.0,
    base: str = "standard_normal",
) -> Flow:
    """Autoregressive rational-quadratic spline prior with LU-linear mixing (NSF)."""
    return _prior(
        shape,
        base,
        lambda d: autoregressive_stack(d, layers, "spline", hidden, depth, dropout, "lu", True, bins, bound),
    )


def realnvp_prior(
    shape: int | tuple[int, ...],
    layers: int = 6,
    hidden: int = 64,
    depth: int = 2,
    dropout: float = 0.0,
    base: str = "standard_normal",
) -> Flow:
    """RealNVP prior: affine couplings on alternating halves, ActNorm before each."""
    return _prior(shape, base, lambda d: coupling_stack(d, layers, "affine", hidden, depth, dropout))
