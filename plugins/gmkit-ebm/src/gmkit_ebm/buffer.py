r"""The persistent replay buffer of SGLD chains (Du and Mordatch, 2019, arXiv:1903.08689).

Each training step takes ``n`` distinct chains from the buffer, restarts each
from uniform noise on the box with probability :math:`\rho` (``reinit``), runs
them ``K`` SGLD steps and writes them back. ``samples`` ``(N, *shape)`` and
``age`` ``(N,)`` (SGLD steps since the chain's last restart) are persistent
buffers: the run file holds them, EMA copies them and a resumed run continues
the same chains. All draws use torch's global RNG, so resume is bit-exact.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ReplayBuffer", "uniform"]


def uniform(
    n: int, low: Tensor, high: Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None
) -> Tensor:
    """``(n, *shape)`` draws from the uniform law on the box ``[low, high]`` (broadcast to ``shape``)."""
    u = torch.rand((n, *shape), generator=generator, device=low.device, dtype=low.dtype)
    return low + (high - low) * u


class ReplayBuffer(nn.Module):
    """``N`` persistent chains of shape ``shape`` with their ages."""

    samples: Tensor
    age: Tensor

    def __init__(self, size: int, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("samples", torch.zeros(size, *shape))
        self.register_buffer("age", torch.zeros(size, dtype=torch.long))

    def __len__(self) -> int:
        return self.samples.shape[0]

    @torch.no_grad()
    def fill(self, low: Tensor, high: Tensor) -> None:
        """Start every chain from uniform noise on the box (age 0)."""
        self.samples.copy_(uniform(len(self), low, high, self.shape))
        self.age.zero_()

    @torch.no_grad()
    def draw(self, n: int, reinit: float, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(index (n,), x (n, *shape), fresh (n,) bool)``: ``n`` distinct chains, a share ``reinit`` restarted."""
        if n > len(self):
            raise ValueError(f"buffer of {len(self)} chains cannot serve a batch of {n}")
        index = torch.randperm(len(self), device=self.samples.device)[:n]
        fresh = torch.rand(n, device=self.samples.device) < reinit
        x = torch.where(
            fresh.reshape(-1, *([1] * len(self.shape))), uniform(n, low, high, self.shape), self.samples[index]
        )
        return index, x, fresh

    @torch.no_grad()
    def store(self, index: Tensor, x: Tensor, fresh: Tensor, steps: int) -> None:
        """Write the refined chains back; their age becomes ``steps`` (restarted) or grows by ``steps``."""
        self.samples[index] = x.to(self.samples.dtype)
        self.age[index] = torch.where(fresh, torch.zeros_like(self.age[index]), self.age[index]) + steps

    def mean_age(self) -> Tensor:
        """Mean age of the chains in SGLD steps (a float scalar)."""
        return self.age.double().mean() if len(self) else torch.zeros((), dtype=torch.float64)
