r"""Codebook math shared by every vector quantiser (images, code volumes, any ``(*, D)``).

- :func:`nearest_code`: :math:`k = \arg\min_j \lVert z - e_j \rVert^2`.
- :func:`straight_through`: :math:`\tilde z_q = \mathrm{sg}[e_k] + z_e - \mathrm{sg}[z_e]` and the codebook and
  commitment losses.
- :func:`batch_statistics`: per-code counts :math:`n_j` and sums :math:`s_j` of a batch's assignments,
  :func:`sum_over_processes` to add them up across data-parallel processes.
- :func:`ema_update`: the EMA codebook step with Laplace-smoothed counts (van den Oord et al. 2017,
  arXiv:1711.00937, appendix A.1).
- :func:`code_statistics`: perplexity and used fraction of the codes.
- :func:`spread_rows`: k-means++ seeding (Arthur & Vassilvitskii 2007) for initial and restarted codes.

The quantiser modules themselves (straight-through gradient, losses, dead-code
bookkeeping) live with their families and share this return contract.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "nearest_code",
    "straight_through",
    "batch_statistics",
    "sum_over_processes",
    "ema_update",
    "code_statistics",
    "spread_rows",
]


def nearest_code(z: Tensor, codebook: Tensor) -> Tensor:
    r""":math:`\arg\min_j \lVert z - e_j \rVert^2` for ``z`` ``(*, D)`` and ``codebook`` ``(K, D)`` -> ``(*)`` int64.

    Uses :math:`\lVert z\rVert^2 - 2 z^\top e_j + \lVert e_j \rVert^2`, so memory is
    ``O(N K)`` rather than ``O(N K D)``.
    """
    flat = z.reshape(-1, z.shape[-1])
    d2 = flat.square().sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.square().sum(1)  # (N, K)
    return d2.argmin(1).reshape(z.shape[:-1])


def straight_through(z_e: Tensor, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""``z_e`` ``(B, *, D)`` and its nearest codes ``e`` (same shape) -> ``(z_q, codebook_loss, commitment_loss)``.

    :math:`\tilde z_q = \mathrm{sg}[e] + z_e - \mathrm{sg}[z_e]` has the value of :math:`e` and the identity as
    its gradient with respect to :math:`z_e`; codebook loss :math:`\sum \lVert \mathrm{sg}[z_e] - e\rVert^2` and
    commitment loss :math:`\sum \lVert z_e - \mathrm{sg}[e]\rVert^2`, each summed over all but the batch, ``(B,)``.
    """
    cells = tuple(range(1, z_e.ndim))
    codebook_loss = (z_e.detach() - e).square().sum(cells)
    commitment_loss = (z_e - e.detach()).square().sum(cells)
    return e.detach() + (z_e - z_e.detach()), codebook_loss, commitment_loss


def batch_statistics(z: Tensor, codes: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    r"""Per-code counts :math:`n_i` ``(K,)`` and sums :math:`\sum_{j: k_j=i} z_j` ``(K, D)`` of ``z`` ``(N_z, D)``."""
    onehot = torch.nn.functional.one_hot(codes, codebook_size).to(z.dtype)  # (N_z, K)
    return onehot.sum(0), onehot.t() @ z


def sum_over_processes(*tensors: Tensor) -> None:
    """All-reduce (sum) in place across the default process group, when one with several processes exists."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in tensors:
            dist.all_reduce(t)


def ema_update(
    counts: Tensor, sums: Tensor, batch_counts: Tensor, batch_sums: Tensor, decay: float, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One EMA codebook step from a batch's :func:`batch_statistics`; returns the new ``(N, m, e)``.

    ``counts`` :math:`N` ``(K,)``, ``sums`` :math:`m` ``(K, D)``; ``batch_counts`` :math:`n` ``(K,)``
    and ``batch_sums`` :math:`s` ``(K, D)``; ``decay`` :math:`\gamma`, ``eps`` :math:`\epsilon`
    (Laplace smoothing):

    .. math::
        N_i' = \gamma N_i + (1-\gamma) n_i, \quad
        m_i' = \gamma m_i + (1-\gamma) s_i, \quad
        e_i = m_i' \big/ \Big(\frac{N_i' + \epsilon}{n + K\epsilon}\, n\Big),\ n = \textstyle\sum_i N_i'.
    """
    K = counts.shape[0]
    counts = decay * counts + (1 - decay) * batch_counts
    sums = decay * sums + (1 - decay) * batch_sums
    n = counts.sum()
    smoothed = (counts + eps) / (n + K * eps) * n
    return counts, sums, sums / smoothed.unsqueeze(1)


def code_statistics(counts: Tensor) -> tuple[float, float]:
    r"""Perplexity :math:`\exp(-\sum_i p_i \log p_i)` with :math:`p_i = c_i / \sum c` and the used fraction.

    ``counts``: ``(K,)`` how often each code was chosen. The perplexity is the
    effective number of codes in use (``K`` when all are used equally).
    """
    total = float(counts.sum())
    if total <= 0:
        return 0.0, 0.0
    p = counts.double() / total
    entropy = -float(torch.where(p > 0, p * p.log(), torch.zeros_like(p)).sum())
    return math.exp(entropy), float((counts > 0).double().mean())


def spread_rows(z: Tensor, m: int, centres: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """``m`` rows of ``z`` ``(N, D)`` drawn one at a time with probability proportional to the squared distance to
    the nearest of ``centres`` ``(M, D)`` and the rows already drawn (k-means++ seeding). Rows equal to a centre
    are never drawn while another row is farther, so a mostly uniform batch (a black background) does not fill
    the codebook with copies of one vector. Uniform when all distances are 0. Returns ``(m, D)`` float64.
    """
    z = z.double()
    nearest = torch.full((z.shape[0],), float("inf"), dtype=z.dtype, device=z.device)
    if centres is not None:
        nearest = torch.cdist(z, centres.double()).square().min(1).values
    picks = []
    for _ in range(m):
        usable = bool(torch.isfinite(nearest).all()) and float(nearest.sum()) > 0
        i = torch.multinomial(nearest if usable else torch.ones_like(nearest), 1, generator=generator)
        picks.append(i)
        nearest = torch.minimum(nearest, (z - z[i]).square().sum(1))
    return z[torch.cat(picks)]
