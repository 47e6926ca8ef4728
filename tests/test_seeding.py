"""Noise seeded by a number and the batch it is drawn for."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.seeding import batch_generator


def _draw(seed: int, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(4, generator=batch_generator(seed, x))


@settings(max_examples=25, deadline=None)
@given(st.integers(-(2**40), 2**40), st.lists(st.integers(0, 255), min_size=1, max_size=12))
def test_the_same_seed_and_values_draw_the_same_noise_and_a_change_draws_other_noise(
    seed: int, values: list[int]
) -> None:
    x = torch.tensor(values)
    assert torch.equal(_draw(seed, x), _draw(seed, x.clone()))
    changed = x.clone()
    changed[0] += 1
    assert not torch.equal(_draw(seed, x), _draw(seed, changed))
    assert not torch.equal(_draw(seed, x), _draw(seed + 1, x))


def test_shape_and_dtype_enter_the_seed() -> None:
    x = torch.zeros(4, dtype=torch.int64)
    assert not torch.equal(_draw(0, x), _draw(0, x.reshape(2, 2)))
    assert not torch.equal(_draw(0, x), _draw(0, torch.zeros(4, dtype=torch.float64)))  # the same 32 zero bytes


def test_the_seed_is_fixed_across_processes_and_versions_of_python() -> None:
    """A golden value: no salted hash or object identity enters the seed."""
    assert batch_generator(0, torch.arange(4)).initial_seed() == 4550291569315833453


def test_every_dtype_and_layout_is_read_by_its_bytes() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    for y in (x.bfloat16(), x.double(), x.bool(), torch.tensor(3.0)):
        assert torch.equal(_draw(0, y), _draw(0, y.clone()))
    assert torch.equal(_draw(0, x.t()), _draw(0, x.t().contiguous()))  # the values, not the strides
    assert not torch.equal(_draw(0, x.bfloat16()), _draw(0, (x + 1).bfloat16()))
