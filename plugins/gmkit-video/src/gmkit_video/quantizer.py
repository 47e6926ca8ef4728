r"""Vector quantisation of a code volume, with an EMA codebook, dead-code restarts and a straight-through gradient.

The 3D encoder gives one vector :math:`z_e[t, i, j] \in \mathbb R^D` per cell of the code volume,
laid out as ``(B, t, h, w, D)``. Each is replaced by its nearest row of the codebook
:math:`e \in \mathbb R^{K \times D}`:

.. math:: k[t, i, j] = \arg\min_c \lVert z_e[t, i, j] - e_c \rVert_2, \qquad z_q[t, i, j] = e_{k[t, i, j]} .

This mirrors the 2D quantiser of gmkit-vqvae (same return contract: :class:`Quantized` with
``z_q``, ``codes``, ``codebook_loss``, ``commitment_loss``), over one more axis; it works on any
``(B, *, D)``.

**Straight-through.** :math:`\tilde z_q = \mathrm{sg}[e_k] + z_e - \mathrm{sg}[z_e]` has the value of
:math:`e_k` and :math:`\partial \tilde z_q / \partial z_e = I`: the decoder's gradient reaches the
encoder unchanged.

**Losses** per clip, summed over the cells: codebook :math:`\sum \lVert \mathrm{sg}[z_e] - e_k\rVert^2`,
commitment :math:`\sum \lVert z_e - \mathrm{sg}[e_k]\rVert^2`.

**EMA codebook.** With :math:`n_c` the number of vectors of the batch assigned to code :math:`c` and
:math:`s_c` their sum, :math:`N_c \leftarrow \gamma N_c + (1-\gamma) n_c`,
:math:`m_c \leftarrow \gamma m_c + (1-\gamma) s_c`, and :math:`e_c = m_c / \tilde N_c` with Laplace-smoothed
counts :math:`\tilde N_c = n (N_c + \epsilon) / (n + K\epsilon)`, :math:`n = \sum_c N_c`
(:func:`ema_step`). Statistics are summed over processes under data parallelism.

**Dead codes.** A code chosen by no vector during ``dead_code_window`` training batches is
restarted at an encoder output of the current batch, drawn far from the live codes (k-means++
weights, :func:`spread_rows`; :meth:`VolumeQuantizer.restart_dead`).

References: van den Oord, Vinyals & Kavukcuoglu, Neural Discrete Representation Learning
(2017, arXiv:1711.00937), appendix A.1; Yan, Zhang, Abbeel & Srinivas, VideoGPT (2021,
arXiv:2104.10157); Dhariwal et al., Jukebox (2020, arXiv:2005.00341) for restarting dead codes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Quantized",
    "VolumeQuantizer",
    "assign",
    "assignment_statistics",
    "ema_step",
    "spread_rows",
    "usage_statistics",
]


class Quantized(NamedTuple):
    """Result for ``z_e`` ``(B, *, D)``: ``z_q`` ``(B, *, D)`` (straight-through), ``codes`` ``(B, *)`` int64,
    ``codebook_loss`` and ``commitment_loss`` ``(B,)`` (squared distances summed over ``*``)."""

    z_q: Tensor
    codes: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


def assign(z: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest code (squared Euclidean distance) for ``z`` ``(*, D)``, codebook ``(K, D)`` -> ``(*)``.

    Expands :math:`\\lVert z - e\\rVert^2 = \\lVert z\\rVert^2 - 2 z^\\top e + \\lVert e\\rVert^2` (memory ``O(NK)``).
    """
    flat = z.reshape(-1, z.shape[-1])
    distance = flat.square().sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.square().sum(1)
    return distance.argmin(1).reshape(z.shape[:-1])


def assignment_statistics(z: Tensor, codes: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    """Counts :math:`n_c` ``(K,)`` and sums :math:`s_c` ``(K, D)`` of the vectors ``z`` ``(N, D)`` assigned to each code."""
    onehot = F.one_hot(codes, codebook_size).to(z.dtype)  # (N, K)
    return onehot.sum(0), onehot.t() @ z


def ema_step(
    counts: Tensor, sums: Tensor, batch_counts: Tensor, batch_sums: Tensor, decay: float, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One EMA step (module docstring): new counts ``(K,)``, sums ``(K, D)`` and codebook ``(K, D)``."""
    K = counts.shape[0]
    counts = decay * counts + (1 - decay) * batch_counts
    sums = decay * sums + (1 - decay) * batch_sums
    total = counts.sum()
    smoothed = total * (counts + eps) / (total + K * eps)
    return counts, sums, sums / smoothed[:, None]


def usage_statistics(counts: Tensor) -> tuple[float, float]:
    r"""``(perplexity, used fraction)`` of code counts ``(K,)``: :math:`\exp H(p)`, :math:`p = c / \sum c`, and
    the fraction of codes chosen at least once."""
    total = float(counts.sum())
    if total <= 0:
        return 0.0, 0.0
    p = counts.double() / total
    entropy = -float((p * p.clamp_min(1e-300).log()).sum())
    return math.exp(entropy), float((counts > 0).double().mean())


def spread_rows(z: Tensor, m: int, centres: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """``m`` rows of ``z`` ``(N, D)`` drawn one at a time with probability proportional to the squared distance to
    the nearest of ``centres`` ``(M, D)`` and the rows already drawn (k-means++ seeding; Arthur & Vassilvitskii,
    2007). Rows equal to a centre are never drawn while another row is farther, so a mostly uniform batch (a
    black background) does not fill the codebook with copies of one vector. Uniform when all distances are 0.
    """
    z = z.double()
    nearest = torch.full((z.shape[0],), float("inf"), dtype=z.dtype, device=z.device)
    if centres is not None:
        nearest = torch.cdist(z, centres.double()).square().min(1).values
    picks = []
    for _ in range(m):
        weights = (
            nearest if bool(torch.isfinite(nearest).all()) and float(nearest.sum()) > 0 else torch.ones_like(nearest)
        )
        i = torch.multinomial(weights, 1, generator=generator)
        picks.append(i)
        nearest = torch.minimum(nearest, (z - z[i]).square().sum(1))
    return z[torch.cat(picks)]


class VolumeQuantizer(nn.Module):
    """Nearest-code quantiser over the last axis of ``z_e`` ``(B, t, h, w, D)`` with an EMA codebook.

    Args:
        codebook_size: ``K``. code_dim: ``D``. decay: the EMA's :math:`\\gamma`. eps: its :math:`\\epsilon`.
        dead_code_window: restart codes unused for this many training batches (0: never).

    Buffers: ``codebook`` ``(K, D)``, the EMA ``counts`` ``(K,)`` and ``sums`` ``(K, D)``, ``hits`` (assignments
    since the last dead-code check) and ``batches`` (training batches since then).
    """

    codebook: Tensor
    counts: Tensor
    sums: Tensor
    hits: Tensor
    batches: Tensor

    def __init__(
        self, codebook_size: int, code_dim: int, decay: float = 0.99, eps: float = 1e-5, dead_code_window: int = 0
    ):
        super().__init__()
        self.K, self.D = codebook_size, code_dim
        self.decay, self.eps, self.dead_code_window = decay, eps, dead_code_window
        start = torch.randn(codebook_size, code_dim) / math.sqrt(code_dim)
        self.register_buffer("codebook", start)
        self.register_buffer("counts", torch.ones(codebook_size))
        self.register_buffer("sums", start.clone())
        self.register_buffer("hits", torch.zeros(codebook_size))
        self.register_buffer("batches", torch.zeros((), dtype=torch.int64))

    def forward(self, z_e: Tensor) -> Quantized:
        """Quantise ``z_e`` ``(B, *, D)``; a training-mode call with gradients enabled also moves the codebook."""
        codes = assign(z_e.detach(), self.codebook)
        e = self.codebook[codes]
        cells = tuple(range(1, z_e.ndim))
        codebook_loss = (z_e.detach() - e).square().sum(cells)
        commitment_loss = (z_e - e).square().sum(cells)  # the codebook is a buffer: no gradient reaches it
        z_q = e + (z_e - z_e.detach())
        if self.training and torch.is_grad_enabled():
            self.observe(z_e.detach().reshape(-1, self.D), codes.reshape(-1))
        return Quantized(z_q, codes, codebook_loss, commitment_loss)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes ``(*)`` -> vectors ``(*, D)``."""
        return self.codebook[codes]

    @torch.no_grad()
    def observe(self, z: Tensor, codes: Tensor) -> None:
        """EMA update from ``z`` ``(N, D)`` and their ``codes`` ``(N,)``; then the dead-code check when it is due."""
        batch_counts, batch_sums = assignment_statistics(z, codes, self.K)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(batch_counts)
            dist.all_reduce(batch_sums)
        counts, sums, codebook = ema_step(self.counts, self.sums, batch_counts, batch_sums, self.decay, self.eps)
        self.counts.copy_(counts)
        self.sums.copy_(sums)
        self.codebook.copy_(codebook)
        self.hits += batch_counts
        self.batches += 1
        if self.dead_code_window and int(self.batches) >= self.dead_code_window:
            self.restart_dead(z)

    @torch.no_grad()
    def restart_dead(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Set every code without hits since the last check to a row of ``z`` ``(N, D)`` drawn by :func:`spread_rows`
        away from the live codes (its EMA count to 1, its sum to that row); reset the hit counters; return the
        restarted indices."""
        dead = (self.hits == 0).nonzero().flatten()
        if dead.numel():
            live = self.codebook[self.hits > 0]
            rows = spread_rows(z, dead.numel(), live if len(live) else None, generator)
            self.codebook[dead] = rows.to(self.codebook.dtype)
            self.sums[dead] = rows.to(self.sums.dtype)
            self.counts[dead] = 1.0
        self.hits.zero_()
        self.batches.zero_()
        return dead

    @torch.no_grad()
    def seed_from(self, z: Tensor, generator: torch.Generator | None = None) -> None:
        """Start the codebook at ``K`` rows of ``z`` ``(N, D)`` spread by :func:`spread_rows`."""
        rows = spread_rows(z, self.K, None, generator).to(self.codebook.dtype)
        self.codebook.copy_(rows)
        self.sums.copy_(rows)
        self.counts.fill_(1.0)
        self.hits.zero_()
        self.batches.zero_()
