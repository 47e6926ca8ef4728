"""Every flow's training loss reaches all of its parameters, so DDP needs no search for unused ones."""

from __future__ import annotations

import pytest
import torch

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry

VECTOR = DataSpec("toy", "vector", (2,))
IMAGE = DataSpec("img", "image", (1, 4, 4), levels=5)
CASES = [
    ("maf", VECTOR, {}),
    ("nsf", VECTOR, {}),
    ("realnvp", VECTOR, {}),
    ("glow", IMAGE, {"levels": 1, "steps": 2, "hidden": 8}),
    ("realnvp", IMAGE, {"scales": 1, "steps": 1, "hidden": 8, "dequantization": "variational"}),
]


@pytest.mark.parametrize(("name", "spec", "options"), CASES)
def test_no_parameter_is_left_without_gradient(name: str, spec: DataSpec, options: dict) -> None:
    torch.manual_seed(0)
    model = registry.get("model", name, data=spec, **options).train()
    x = torch.randn(8, 2) if spec.kind == "vector" else torch.randint(0, 5, (8, 1, 4, 4))
    model.loss(Batch(x))["loss"].backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    assert getattr(type(model), "ddp_find_unused_parameters", False) is False
