"""Process groups for data-parallel training under ``torchrun``.

``torchrun --nproc-per-node 2 -m gmkit_core.cli train ...`` sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; the trainer then wraps the model in DDP
(``gloo`` on CPU, ``nccl`` on CUDA), gives each process its slice of every
global batch, and lets only rank 0 write files.
"""

from __future__ import annotations

import os

import attrs
import torch
import torch.distributed as dist

__all__ = ["World", "world"]


@attrs.frozen
class World:
    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """The device for this process: ``auto`` picks cuda (this rank's GPU), then mps, then cpu."""
        from ..devices import resolve_device

        return resolve_device(requested, self.local_rank, self.distributed)


def world(device: str = "auto") -> World:
    """The current process group, initialised from the torchrun environment if needed."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    current = World(size, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if current.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
    return current
