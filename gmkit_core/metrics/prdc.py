r"""Precision, recall, density and coverage from k-nearest-neighbour balls.

For real features :math:`X_1..X_N`, generated :math:`Y_1..Y_M` and
:math:`r_k(Z)` the distance from :math:`Z` to its k-th nearest neighbour among
the other points of its own set, with open balls :math:`B(Z, r) = \{u : \lVert u - Z \rVert < r\}`:

- precision :math:`= \frac1M \sum_j 1[\exists i: Y_j \in B(X_i, r_k(X_i))]`
  and recall :math:`= \frac1N \sum_i 1[\exists j: X_i \in B(Y_j, r_k(Y_j))]`
  (Kynkäänniemi et al. 2019, arXiv:1904.06991);
- density :math:`= \frac{1}{kM} \sum_j \sum_i 1[Y_j \in B(X_i, r_k(X_i))]`
  and coverage :math:`= \frac1N \sum_i 1[\min_j \lVert Y_j - X_i \rVert < r_k(X_i)]`
  (Naeem et al. 2020, arXiv:2002.09797).

For two independent samples of one distribution density is 1 in expectation;
for a set against itself (no ties) every value is exactly 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError

__all__ = ["prdc", "knn_radii"]

_BLOCK = 2048


def knn_radii(x: Tensor, k: int) -> Tensor:
    """``(N, d)`` -> ``(N,)`` distance of each point to its k-th nearest other point."""
    radii = []
    for start in range(0, x.shape[0], _BLOCK):
        d = torch.cdist(x[start : start + _BLOCK], x)  # (b, N), includes the 0 to itself
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def prdc(real: Tensor, fake: Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` ``(M, d)`` against ``real`` ``(N, d)`` features."""
    real, fake = real.double(), fake.double()
    if real.shape[1:] != fake.shape[1:]:
        raise DataError(f"feature dimensions differ: {tuple(real.shape[1:])} and {tuple(fake.shape[1:])}")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise DataError(
            f"precision/recall/density/coverage with k={k} need more than {k} examples in each set, "
            f"got {real.shape[0]} reference and {fake.shape[0]} generated"
        )
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    inside_real = torch.zeros(fake.shape[0], dtype=torch.float64)  # per Y_j: real balls that hold it
    covered = torch.zeros(real.shape[0], dtype=torch.bool)  # per X_i: a Y_j in its ball
    recalled = torch.zeros(real.shape[0], dtype=torch.bool)  # per X_i: inside some fake ball
    for start in range(0, real.shape[0], _BLOCK):
        d = torch.cdist(real[start : start + _BLOCK], fake)  # (b, M)
        r = r_real[start : start + _BLOCK, None]
        inside_real += (d < r).sum(0)
        covered[start : start + _BLOCK] = d.min(1).values < r[:, 0]
        recalled[start : start + _BLOCK] = (d < r_fake[None, :]).any(1)
    return {
        "precision": float((inside_real > 0).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(inside_real.sum() / (k * fake.shape[0])),
        "coverage": float(covered.double().mean()),
    }
