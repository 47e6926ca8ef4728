"""Small data and models shared by the gmkit-score tests."""

from __future__ import annotations

import itertools

import torch

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.registry import registry

#: 1 x 2 x 2 images with 3 levels: all 81 of them.
TINY = DataSpec(name="tiny", kind="image", shape=(1, 2, 2), levels=3)
TINY_NET = {"channels": 8, "mults": (1,), "attention": (), "blocks": 1, "dropout": 0.0}


def all_tiny_images() -> Batch:
    grid = torch.tensor(list(itertools.product(range(3), repeat=4)), dtype=torch.long)  # (81, 4)
    return Batch(grid.reshape(81, 1, 2, 2), None)


def tiny_data(n: int = 256, seed: int = 0) -> Dataset:
    """Images concentrated on a few of the 81 (so a briefly trained model is far from uniform)."""
    g = torch.Generator().manual_seed(seed)
    modes = torch.tensor([[0, 0, 2, 2], [2, 2, 0, 0], [1, 1, 1, 1]])
    x = modes[torch.randint(0, 3, (n,), generator=g)]
    flip = torch.rand(x.shape, generator=g) < 0.1
    x = torch.where(flip, torch.randint(0, 3, x.shape, generator=g), x)
    return Dataset(x.reshape(n, 1, 2, 2), None, TINY, "train")


def build(name: str, spec: DataSpec = TINY, **options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.get("model", name, data=spec, **options)


def train_briefly(model: torch.nn.Module, data: Dataset, steps: int = 60, lr: float = 3e-3) -> torch.nn.Module:
    torch.manual_seed(1)
    model.prepare(data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for i in range(steps):
        batch = data.batch(torch.randint(0, len(data), (64,)))
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        del i
    return model.eval()
