"""``ddp_find_unused_parameters`` is set exactly where a training loss leaves a parameter without a gradient.

The trainer wraps models in DistributedDataParallel with ``find_unused_parameters`` from this class
attribute (default False); a parameter that gets no gradient under False makes DDP fail.
"""

from __future__ import annotations

import pytest
import torch

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry

SPEC = DataSpec("digits", "image", (1, 8, 8), levels=17, num_classes=10)


def _unused(name: str) -> list[str]:
    torch.manual_seed(0)
    model = registry.get("model", name, data=SPEC, hidden=8, layers=3).train()
    x = torch.randint(0, 17, (4, 1, 8, 8))
    model.loss(Batch(x, torch.arange(4)))["loss"].backward()
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("name", ["pixelcnn", "cpixelcnn"])
def test_the_flag_matches_the_parameters_a_loss_leaves_unused(name: str) -> None:
    unused = _unused(name)
    flag = getattr(registry.entry("model", name).load(), "ddp_find_unused_parameters", False)
    assert flag == bool(unused), unused
    if name == "cpixelcnn":  # the last layer's vertical stack output feeds nothing
        assert unused == ["net.stack.layers.2.condition_v.weight"]
