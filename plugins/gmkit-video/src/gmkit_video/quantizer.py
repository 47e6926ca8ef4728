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
(:func:`gmkit_core.codebook.ema_update`). Statistics are summed over processes under data parallelism.

**Dead codes.** A code chosen by no vector during ``dead_code_window`` training batches is
restarted at an encoder output of the current batch, drawn far from the live codes (k-means++
weights, :func:`gmkit_core.codebook.spread_rows`; :meth:`VolumeQuantizer.restart_dead`).

References: van den Oord, Vinyals & Kavukcuoglu, Neural Discrete Representation Learning
(2017, arXiv:1711.00937), appendix A.1; Yan, Zhang, Abbeel & Srinivas, VideoGPT (2021,
arXiv:2104.10157); Dhariwal et al., Jukebox (2020, arXiv:2005.00341) for restarting dead codes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gmkit_core.codebook import (
    batch_statistics,
    ema_update,
    nearest_code,
    spread_rows,
    straight_through,
    sum_over_processes,
)

__all__ = ["Quantized", "VolumeQuantizer"]


class Quantized(NamedTuple):
    """Result for ``z_e`` ``(B, *, D)``: ``z_q`` ``(B, *, D)`` (straight-through), ``codes`` ``(B, *)`` int64,
    ``codebook_loss`` and ``commitment_loss`` ``(B,)`` (squared distances summed over ``*``)."""

    z_q: Tensor
    codes: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


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
        codes = nearest_code(z_e.detach(), self.codebook)
        z_q, codebook_loss, commitment_loss = straight_through(z_e, self.codebook[codes])
        if self.training and torch.is_grad_enabled():
            self.observe(z_e.detach().reshape(-1, self.D), codes.reshape(-1))
        return Quantized(z_q, codes, codebook_loss, commitment_loss)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes ``(*)`` -> vectors ``(*, D)``."""
        return self.codebook[codes]

    @torch.no_grad()
    def observe(self, z: Tensor, codes: Tensor) -> None:
        """EMA update from ``z`` ``(N, D)`` and their ``codes`` ``(N,)``; then the dead-code check when it is due."""
        batch_counts, batch_sums = batch_statistics(z, codes, self.K)
        sum_over_processes(batch_counts, batch_sums)
        counts, sums, codebook = ema_update(self.counts, self.sums, batch_counts, batch_sums, self.decay, self.eps)
        self.counts.copy_(counts)
        self.sums.copy_(sums)
        self.codebook.copy_(codebook)
        self.hits += batch_counts
        self.batches += 1
        if self.dead_code_window and int(self.batches) >= self.dead_code_window:
            self.restart_dead(z)

    @torch.no_grad()
    def restart_dead(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Set every code without hits since the last check to a row of ``z`` ``(N, D)`` drawn by :func:`gmkit_core.codebook.spread_rows`
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
        """Start the codebook at ``K`` rows of ``z`` ``(N, D)`` spread by :func:`gmkit_core.codebook.spread_rows`."""
        rows = spread_rows(z, self.K, None, generator).to(self.codebook.dtype)
        self.codebook.copy_(rows)
        self.sums.copy_(rows)
        self.counts.fill_(1.0)
        self.hits.zero_()
        self.batches.zero_()
