"""Noise seeded by a number and the data it is drawn for."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["batch_generator"]


def batch_generator(seed: int, x: torch.Tensor, device: torch.device | str | None = None) -> torch.Generator:
    """A generator seeded by ``seed`` and a digest of ``x``'s values (BLAKE2b, 63 bits).

    The same batch always draws the same noise, so a model's Monte Carlo ``nll(batch)`` is a
    function of the batch; two batches of an evaluation draw different noise, so the estimates of
    their examples are independent (a generator reseeded with ``seed`` alone would repeat the
    draws at each position of every batch, and a standard error over examples would miss that).
    """
    h = hashlib.blake2b(str(seed).encode(), digest_size=8)
    h.update(str((tuple(x.shape), x.dtype)).encode())
    h.update(x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bf16 too
    return torch.Generator(device=device or x.device).manual_seed(int.from_bytes(h.digest(), "little") >> 1)
