"""Noise seeded by a number and the data it is drawn for."""

from __future__ import annotations

import hashlib
import operator

import torch

__all__ = ["batch_generator"]


def batch_generator(seed: int, x: torch.Tensor, device: torch.device | str | None = None) -> torch.Generator:
    """A generator on ``device`` (default ``x``'s) seeded by ``seed`` and a BLAKE2b digest of ``x``'s shape,
    dtype and bytes (63 bits; dense tensors).

    The same batch always draws the same noise (on one kind of device and torch version), so a model's
    Monte Carlo ``nll(batch)`` is a function of the batch; two batches of an evaluation draw different
    noise, so the estimates of their examples are independent (a generator reseeded with ``seed``
    alone would repeat the draws at each position of every batch, and a standard error over examples
    would miss that).
    """
    h = hashlib.blake2b(str(operator.index(seed)).encode(), digest_size=8)
    h.update(str((tuple(x.shape), x.dtype)).encode())
    data = x.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
    h.update(data.view(torch.uint8).numpy().tobytes())  # bytes, so any dtype (bfloat16 has no numpy type)
    return torch.Generator(device=device or x.device).manual_seed(int.from_bytes(h.digest(), "little") >> 1)
