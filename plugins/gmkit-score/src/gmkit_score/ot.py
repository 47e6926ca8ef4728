r"""Exact minibatch assignment for optimal-transport couplings, in torch (no SciPy at run time).

Given costs :math:`C \in \mathbb R^{n \times n}` (e.g. :math:`C_{ij} = \|x_i - \epsilon_j\|^2`),
:func:`assignment` returns the permutation :math:`\pi` minimising :math:`\sum_i C_{i\pi(i)}` by
Bertsekas' auction algorithm (Bertsekas, 1988, "The auction algorithm: a distributed relaxation
method for the assignment problem") with :math:`\varepsilon`-scaling: unassigned rows bid for their
best column at once (the Jacobi variant, vectorised), raising its price by the gap to their
second-best value plus :math:`\varepsilon`. Each phase ends with every row assigned and the
assignment within :math:`n\varepsilon` of the optimum; :math:`\varepsilon` shrinks by ``factor``
per phase down to :math:`\varepsilon_{\text{final}} = \text{tol}\cdot\mathrm{range}(C)/n`, so the result is
optimal up to ``tol`` times the cost range (``tol = 1e-9``: exact for any cost matrix whose best
and second-best assignments differ by more than that). Minibatch OT coupling for flow matching:
Tong et al. (2023, arXiv:2302.00482), Pooladian et al. (2023, arXiv:2304.14772).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["assignment", "ot_pairing"]


def assignment(cost: Tensor, tol: float = 1e-9, factor: float = 5.0) -> Tensor:
    """``perm`` (int64 ``(n,)``) minimising ``sum_i cost[i, perm[i]]`` for a square ``cost`` ``(n, n)``."""
    n = cost.shape[0]
    if cost.ndim != 2 or cost.shape[1] != n:
        raise ValueError(f"assignment needs a square cost matrix, got shape {tuple(cost.shape)}")
    if n <= 1:
        return torch.zeros(n, dtype=torch.long, device=cost.device)
    benefit = -cost.detach().double()
    spread = float(benefit.max() - benefit.min())
    if spread == 0.0:
        return torch.arange(n, device=cost.device)
    eps_final = tol * spread / n
    eps = spread / 4
    prices = torch.zeros(n, dtype=torch.float64, device=cost.device)
    rows = torch.arange(n, device=cost.device)
    while True:
        row_of = torch.full((n,), -1, dtype=torch.long, device=cost.device)  # column -> row
        col_of = torch.full((n,), -1, dtype=torch.long, device=cost.device)  # row -> column
        while True:
            free = (col_of < 0).nonzero().squeeze(1)
            if free.numel() == 0:
                break
            values = benefit[free] - prices  # (u, n)
            top = values.topk(2, dim=1)
            best = top.indices[:, 0]
            bids = prices[best] + (top.values[:, 0] - top.values[:, 1]) + eps
            high = torch.full((n,), -float("inf"), dtype=torch.float64, device=cost.device)
            high = high.scatter_reduce(0, best, bids, reduce="amax")
            wins = bids >= high[best]
            winner = torch.full((n,), n, dtype=torch.long, device=cost.device)
            winner = winner.scatter_reduce(0, best[wins], free[wins], reduce="amin")  # ties: lowest row
            cols = (winner < n).nonzero().squeeze(1)
            losers = row_of[cols]
            col_of[losers[losers >= 0]] = -1
            row_of[cols] = winner[cols]
            col_of[winner[cols]] = cols
            prices[cols] = high[cols]
        if eps <= eps_final:
            return col_of
        eps = max(eps / factor, eps_final)
    del rows


def ot_pairing(x: Tensor, noise: Tensor) -> Tensor:
    r"""``noise`` reordered so that row ``i`` pairs with ``x[i]`` under the squared-distance OT plan."""
    cost = torch.cdist(x.flatten(1).double(), noise.flatten(1).double()).square()
    return noise[assignment(cost)]
