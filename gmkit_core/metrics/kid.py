r"""Kernel Inception distance: an unbiased estimate of the squared MMD with a cubic polynomial kernel.

With :math:`k(x, y) = (x^\top y / d + 1)^3` and subsets :math:`X` of ``m`` real
and :math:`Y` of ``m`` generated feature vectors,

.. math::
    \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)} \sum_{i \ne j} \bigl(k(x_i, x_j) + k(y_i, y_j)\bigr)
                                - \frac{2}{m^2} \sum_{i, j} k(x_i, y_j)

whose expectation is the population MMD² (zero when both sets come from one
distribution; it can be negative). KID is its mean over ``subsets`` random
subsets of size ``m = min(1000, N1, N2)``, reported with the standard deviation
over subsets (Bińkowski et al. 2018, arXiv:1801.01401).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError

__all__ = ["kernel_distance", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """``(n, d)``, ``(m, d)`` -> ``(n, m)`` Gram matrix of ``(x.y / d + 1)^3``."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD² of equal-size samples ``x``, ``y`` ``(m, d)`` under the cubic polynomial kernel."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def kernel_distance(
    real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID of ``(N1, d)`` and ``(N2, d)`` features: (mean, standard deviation) of the unbiased MMD² over subsets.

    Subsets of size ``min(subset_size, N1, N2)`` are drawn without replacement
    from each set by a generator seeded with ``seed``.
    """
    real, fake = real.double(), fake.double()
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"feature dimensions differ: {tuple(real.shape[1:])} and {tuple(fake.shape[1:])}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise DataError(f"KID needs at least 2 examples in each set, got {real.shape[0]} and {fake.shape[0]}")
    if subsets < 1:
        raise DataError(f"KID needs at least one subset, got {subsets}")
    generator = torch.Generator().manual_seed(seed)
    values = torch.tensor(
        [
            mmd2_unbiased(
                real[torch.randperm(real.shape[0], generator=generator)[:m]],
                fake[torch.randperm(fake.shape[0], generator=generator)[:m]],
            )
            for _ in range(subsets)
        ],
        dtype=torch.float64,
    )
    return float(values.mean()), (float(values.std(unbiased=True)) if subsets > 1 else 0.0)
