r"""Vector quantisation with a straight-through gradient.

A codebook :math:`e \in \mathbb R^{K \times D}` maps each encoder output
:math:`z_e \in \mathbb R^D` to its nearest row

.. math:: k(z_e) = \arg\min_j \lVert z_e - e_j \rVert_2, \qquad z_q = e_{k(z_e)}.

The argmin has no gradient, so the decoder's gradient with respect to
:math:`z_q` is copied to :math:`z_e` unchanged (straight-through):
:math:`\tilde z_q = \mathrm{sg}[z_q] + (z_e - \mathrm{sg}[z_e])` equals :math:`z_q` exactly in
value and has :math:`\partial \tilde z_q / \partial z_e = I` (the decoder's gradient
does not reach the codebook; only the codebook loss or the EMA moves it).

Per example, summed over the latent positions :math:`p`,

.. math::
    L_\text{codebook} = \sum_p \lVert \mathrm{sg}[z_{e,p}] - e_{k_p} \rVert^2, \qquad
    L_\text{commit} = \sum_p \lVert z_{e,p} - \mathrm{sg}[e_{k_p}] \rVert^2 .

With ``update="ema"`` the codebook is not trained by gradient (no codebook
loss); after each training batch with :math:`n_i` vectors assigned to code
:math:`i`, :math:`N_i \leftarrow \gamma N_i + (1-\gamma) n_i`,
:math:`m_i \leftarrow \gamma m_i + (1-\gamma) \sum_{j: k_j = i} z_{e,j}`, and
:math:`e_i = m_i / \tilde N_i` with the Laplace-smoothed counts
:math:`\tilde N_i = (N_i + \epsilon) / (n + K\epsilon) \cdot n`, :math:`n = \sum_i N_i`
(:func:`ema_update`). Under data-parallel training each process sees a slice of
the global batch: the batch statistics :math:`n_i` and :math:`\sum_{j: k_j=i} z_{e,j}`
(:func:`batch_statistics`) and the hit counts are summed over processes
(all-reduce) before the update, so every process applies the update of the whole
global batch, exactly as one process would. Codes no vector chose during ``dead_code_window``
training batches are re-initialised from encoder outputs of the current batch
(:meth:`VectorQuantizer.revive`; under data parallelism the processes' buffers are
then made equal again by DDP's buffer broadcast from rank 0).

References: van den Oord, Vinyals & Kavukcuoglu, Neural Discrete Representation
Learning (2017, arXiv:1711.00937), eqs. 3 and appendix A.1 (EMA); Razavi et al.,
VQ-VAE-2 (2019, arXiv:1906.00446); Dhariwal et al., Jukebox (2020, arXiv:2005.00341)
for replacing dead codes with encoder outputs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gmkit_core.codebook import batch_statistics, ema_update, nearest_code, straight_through, sum_over_processes

__all__ = ["Quantized", "VectorQuantizer"]


class Quantized(NamedTuple):
    """What :meth:`VectorQuantizer.forward` returns for ``z_e`` of shape ``(B, *, D)``.

    ``z_q``: ``(B, *, D)`` quantised vectors with the straight-through gradient;
    ``codes``: ``(B, *)`` int64 indices; ``codebook_loss`` and ``commitment_loss``:
    ``(B,)`` squared distances summed over the positions ``*``.
    """

    z_q: Tensor
    codes: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


class VectorQuantizer(nn.Module):
    r"""Nearest-code quantiser over the last axis of ``z_e`` ``(B, *, D)``.

    Args:
        codebook_size: :math:`K`, the number of codes.
        code_dim: :math:`D`, the dimension of each code.
        update: ``"ema"`` (codebook by exponential moving averages, no codebook
            loss) or ``"loss"`` (codebook is a parameter trained by :math:`L_\text{codebook}`).
        decay: :math:`\gamma` of the EMA update.
        eps: :math:`\epsilon`, Laplace smoothing of the EMA counts.
        dead_code_window: re-initialise codes unused for this many training
            batches from encoder outputs (0: never).

    Buffers ``counts`` :math:`N` and ``sums`` :math:`m` hold the EMA state (in both
    modes ``counts`` tracks usage); ``hits`` counts assignments since the last
    dead-code check, ``batches`` the batches since then.
    """

    codebook: Tensor
    counts: Tensor
    sums: Tensor
    hits: Tensor
    batches: Tensor

    def __init__(
        self,
        codebook_size: int,
        code_dim: int,
        update: str = "ema",
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_window: int = 0,
    ):
        super().__init__()
        if update not in ("ema", "loss"):
            raise ValueError(f"update must be 'ema' or 'loss', got {update!r}")
        self.K, self.D = codebook_size, code_dim
        self.update, self.decay, self.eps, self.dead_code_window = update, decay, eps, dead_code_window
        init = torch.randn(codebook_size, code_dim) / math.sqrt(code_dim)
        if update == "loss":
            self.codebook = nn.Parameter(init)
        else:
            self.register_buffer("codebook", init)
        self.register_buffer("counts", torch.ones(codebook_size))
        self.register_buffer("sums", init.clone())
        self.register_buffer("hits", torch.zeros(codebook_size))
        self.register_buffer("batches", torch.zeros((), dtype=torch.int64))

    def forward(self, z_e: Tensor) -> Quantized:
        """Quantise ``z_e`` ``(B, *, D)``; in training mode with gradients on, also update the codebook state."""
        codes = nearest_code(z_e.detach(), self.codebook.detach())  # (B, *)
        z_q, codebook_loss, commitment_loss = straight_through(z_e, self.codebook[codes])  # (B, *, D), (B,), (B,)
        if self.training and torch.is_grad_enabled():
            self._track(z_e.detach().reshape(-1, self.D), codes.reshape(-1))
        return Quantized(z_q, codes, codebook_loss, commitment_loss)

    def lookup(self, codes: Tensor) -> Tensor:
        """Codes ``(*)`` -> code vectors ``(*, D)``."""
        return self.codebook[codes]

    @torch.no_grad()
    def _track(self, z: Tensor, codes: Tensor) -> None:
        """Update the EMA state from this process's ``z`` ``(N_z, D)`` and ``codes``, summed over processes."""
        batch_counts, batch_sums = batch_statistics(z, codes, self.K)
        sum_over_processes(batch_counts, batch_sums)
        if self.update == "ema":
            counts, sums, codebook = ema_update(self.counts, self.sums, batch_counts, batch_sums, self.decay, self.eps)
            self.sums.copy_(sums)
            self.codebook.copy_(codebook)
        else:
            counts = self.decay * self.counts + (1 - self.decay) * batch_counts
        self.counts.copy_(counts)
        self.hits += batch_counts.to(self.hits.dtype)
        self.batches += 1
        if self.dead_code_window and int(self.batches) >= self.dead_code_window:
            self.revive(z)

    @torch.no_grad()
    def revive(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Re-initialise every code with no hits since the last check from rows of ``z`` ``(N, D)``.

        A dead code :math:`i` gets :math:`e_i = m_i = z_r` for a random encoder
        output :math:`z_r` and :math:`N_i = 1`; hit counts restart. Returns the
        revived indices.
        """
        dead = (self.hits == 0).nonzero().flatten()
        if dead.numel():
            pick = torch.randint(z.shape[0], (dead.numel(),), generator=generator, device=z.device)
            chosen = z[pick].to(self.codebook.dtype)
            self.codebook.data[dead] = chosen
            self.sums[dead] = chosen
            self.counts[dead] = 1.0
        self.hits.zero_()
        self.batches.zero_()
        return dead

    @torch.no_grad()
    def init_from(self, z: Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent start: codes drawn without replacement from encoder outputs ``z`` ``(N, D)``."""
        pick = torch.randperm(z.shape[0], generator=generator, device=z.device)[: self.K]
        if pick.numel() < self.K:  # fewer vectors than codes: reuse some
            pick = pick[torch.arange(self.K, device=z.device) % pick.numel()]
        chosen = z[pick].to(self.codebook.dtype)
        self.codebook.data.copy_(chosen)
        self.sums.copy_(chosen)
        self.counts.fill_(1.0)
        self.hits.zero_()
        self.batches.zero_()
