r"""Ancestral sampling of the transformer, sub-pixel by sub-pixel, and a timing of both paths.

For :math:`p = 0 .. N-1`: logits of sub-pixel ``p`` given the drawn :math:`x_{<p}`, then
:math:`x_p \sim \mathrm{Cat}(\mathrm{softmax}(\ell_p))` by inverse CDF with one uniform from
``generator`` per sequence and step (:func:`gmkit_core.distributions.sample_categorical`).

- :func:`sample_cached`: the key/value cache holds every earlier position, so step ``p`` runs
  the network on one token: :math:`O(N)` token passes and :math:`O(N^2)` attention in all.
- :func:`sample_naive`: step ``p`` reruns the network on the whole prefix of ``p + 1`` tokens:
  :math:`O(N^2)` token passes and :math:`O(N^3)` attention in all (the reference).

Both draw the same uniforms in the same order, so for the same generator they give the same
samples (the logits agree to rounding; a draw could only differ if a uniform fell within
rounding of a CDF boundary).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from gmkit_core.distributions import sample_categorical

from .network import CausalTransformer

__all__ = ["sample_cached", "sample_naive", "benchmark_sampling", "SAMPLERS"]


@torch.no_grad()
def sample_cached(
    net: CausalTransformer, n: int, condition: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """``(n, N)`` int64 tokens in raster order (channels inner), one cached step per sub-pixel."""
    device = net.token.weight.device
    out = torch.empty(n, net.length, dtype=torch.long, device=device)
    cache = net.new_cache(n)
    token = torch.full((n, 1), net.start, dtype=torch.long, device=device)
    for p in range(net.length):
        logits = net(token, p, cache, condition)[:, -1]  # (n, L)
        out[:, p] = sample_categorical(logits, generator)
        token = out[:, p : p + 1]
    return out


@torch.no_grad()
def sample_naive(
    net: CausalTransformer, n: int, condition: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """``(n, N)`` int64 tokens in raster order, a full forward pass over the prefix per sub-pixel."""
    device = net.token.weight.device
    out = torch.zeros(n, net.length, dtype=torch.long, device=device)
    start = torch.full((n, 1), net.start, dtype=torch.long, device=device)
    for p in range(net.length):
        logits = net(torch.cat([start, out[:, :p]], dim=1), 0, None, condition)[:, p]  # (n, L)
        out[:, p] = sample_categorical(logits, generator)
    return out


SAMPLERS = {True: sample_cached, False: sample_naive}


def benchmark_sampling(model: Any, n: int = 4, seed: int = 0) -> dict[str, Any]:
    """Seconds to draw ``n`` samples from ``model`` with and without the cache, the speed-up, and whether they agree.

    ``model`` is a built ``transformer``; its condition, if any, is label 0. Example::

        from gmkit_core.data import DataSpec
        from gmkit_core.registry import registry
        m = registry.get("model", "transformer", data=DataSpec("img", "image", (1, 28, 28), levels=2))
        benchmark_sampling(m.eval(), n=4)
    """
    model.eval()
    condition = torch.zeros(n, dtype=torch.long) if model.conditional else None
    seconds, draws = {}, {}
    for cache in (True, False):
        start = time.perf_counter()
        draws[cache] = model.sample(n, condition=condition, generator=torch.Generator().manual_seed(seed), cache=cache)
        seconds[cache] = time.perf_counter() - start
    return {
        "n": n,
        "shape": list(model.data.shape),
        "cached_s": seconds[True],
        "naive_s": seconds[False],
        "speedup": seconds[False] / seconds[True],
        "identical": bool(torch.equal(draws[True], draws[False])),
        "threads": torch.get_num_threads(),
    }
