"""The replay buffer's bookkeeping and the image <-> box mapping (hypothesis over levels and offsets)."""

from __future__ import annotations

import torch
from gmkit_ebm.buffer import ReplayBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import DataSpec
from gmkit_core.registry import registry


def test_buffer_draws_distinct_chains_and_ages_them() -> None:
    torch.manual_seed(0)
    buf = ReplayBuffer(50, (2,))
    low, high = torch.full((2,), -1.0), torch.full((2,), 1.0)
    buf.fill(low, high)
    assert float(buf.samples.abs().max()) <= 1 and int(buf.age.sum()) == 0
    index, x, fresh = buf.draw(20, 0.0, low, high)
    assert len(set(index.tolist())) == 20 and not bool(fresh.any())
    assert torch.equal(x, buf.samples[index])
    buf.store(index, x + 0.5, fresh, 7)
    assert int(buf.age[index].min()) == 7 and int(buf.age.sum()) == 140
    index2, _, fresh2 = buf.draw(50, 1.0, low, high)  # every chain restarts
    assert bool(fresh2.all())
    buf.store(index2, torch.zeros(50, 2), fresh2, 3)
    assert bool((buf.age == 3).all()) and float(buf.mean_age()) == 3.0


@settings(max_examples=30, deadline=None)
@given(levels=st.integers(2, 64), offset=st.floats(-0.999, 0.999))
def test_bin_centres_and_offsets_quantise_back(levels: int, offset: float) -> None:
    spec = DataSpec("img", "image", (1, 2, 2), levels=levels)
    model = registry.get("model", "ebm", data=spec, channels=2, buffer_size=1)
    x = torch.randint(0, levels, (5, 1, 2, 2))
    centre = model.continuous(x)
    half = 1.0 / (levels - 1)
    assert torch.equal(model.quantize(centre), x)
    assert torch.equal(model.quantize(centre + 0.999 * offset * half), x)  # inside the bin: same level
    assert (
        abs(float(model.low.min()) + 1 + half) < 1e-6 and abs(float(model.high.max()) - 1 - half) < 1e-6
    )  # B: the bins
