"""The 3D quantiser: nearest code, straight-through gradient, EMA update, dead-code restarts."""

from __future__ import annotations

import torch
from gmkit_video.quantizer import Quantized, VolumeQuantizer
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.codebook import ema_update, nearest_code, spread_rows


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 9), st.integers(1, 5))
def test_assignment_is_the_brute_force_nearest_code(seed: int, K: int, D: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 3, 2, 2, D, generator=g, dtype=torch.float64)
    codebook = torch.randn(K, D, generator=g, dtype=torch.float64)
    brute = torch.stack([((z - e).square().sum(-1)) for e in codebook], dim=-1).argmin(-1)  # (2, 3, 2, 2)
    assert torch.equal(nearest_code(z, codebook), brute)
    q = VolumeQuantizer(K, D).double().eval()
    q.codebook.copy_(codebook)
    out = q(z)
    assert isinstance(out, Quantized) and out.codes.shape == (2, 3, 2, 2)
    assert torch.equal(out.codes, brute)
    assert torch.equal(out.z_q, codebook[brute])
    expected = (z - codebook[brute]).square().sum((1, 2, 3, 4))
    assert torch.allclose(out.commitment_loss, expected) and torch.allclose(out.codebook_loss, expected)


def test_straight_through_jacobian_is_the_identity() -> None:
    torch.manual_seed(0)
    q = VolumeQuantizer(5, 3).double().eval()
    z = torch.randn(1, 2, 1, 2, 3, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda t: q(t).z_q, z)  # (*z, *z)
    assert torch.equal(jacobian.reshape(z.numel(), z.numel()), torch.eye(z.numel(), dtype=torch.float64))
    # the value is the code itself, not z
    assert torch.equal(q(z).z_q, q.codebook[q(z).codes])


def test_ema_update_matches_the_hand_computation() -> None:
    q = VolumeQuantizer(2, 1, decay=0.5, eps=0.0).double().train()
    q.codebook.copy_(torch.tensor([[0.0], [10.0]], dtype=torch.float64))
    q.sums.copy_(torch.tensor([[0.0], [10.0]], dtype=torch.float64))
    q.counts.copy_(torch.tensor([1.0, 1.0], dtype=torch.float64))
    z = torch.tensor([1.0, 2.0, 9.0], dtype=torch.float64).reshape(1, 3, 1, 1, 1)  # codes 0, 0, 1
    with torch.enable_grad():
        q(z.requires_grad_())
    # N = 0.5*1 + 0.5*[2, 1] = [1.5, 1.0]; m = 0.5*[0, 10] + 0.5*[3, 9] = [1.5, 9.5]; eps = 0 -> e = m / N
    assert torch.allclose(q.counts, torch.tensor([1.5, 1.0], dtype=torch.float64))
    assert torch.allclose(q.sums.flatten(), torch.tensor([1.5, 9.5], dtype=torch.float64))
    assert torch.allclose(q.codebook.flatten(), torch.tensor([1.0, 9.5], dtype=torch.float64))
    # Laplace smoothing: N~ = n (N + eps) / (n + K eps), n = sum N
    counts, _, codebook = ema_update(
        torch.zeros(2), torch.zeros(2, 1), torch.tensor([3.0, 1.0]), torch.tensor([[3.0], [2.0]]), 0.0, 0.5
    )
    smoothed = 4.0 * (torch.tensor([3.0, 1.0]) + 0.5) / (4.0 + 2 * 0.5)
    assert torch.equal(counts, torch.tensor([3.0, 1.0]))
    assert torch.allclose(codebook.flatten(), torch.tensor([3.0, 2.0]) / smoothed)


def test_no_update_in_eval_mode_or_without_gradients() -> None:
    q = VolumeQuantizer(4, 2).train()
    before = q.codebook.clone()
    with torch.no_grad():
        q(torch.randn(2, 2, 2, 2, 2))
    q.eval()
    q(torch.randn(2, 2, 2, 2, 2))
    assert torch.equal(q.codebook, before)


def test_dead_codes_are_restarted_at_encoder_outputs() -> None:
    torch.manual_seed(0)
    q = VolumeQuantizer(4, 2, dead_code_window=2).double().train()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [0.1, 0.0]], dtype=torch.float64))
    q.sums.copy_(q.codebook)
    z = torch.tensor([[0.0, 0.0], [0.05, 0.0], [3.0, 3.0], [-3.0, 3.0]], dtype=torch.float64).reshape(1, 2, 2, 1, 2)
    with torch.enable_grad():
        q(z)  # batch 1: codes 0, 3 hit; 1, 2 dead so far
        assert int(q.batches) == 1
        q(z)  # batch 2: the window is reached, codes 1 and 2 restart
    assert int(q.batches) == 0 and int(q.hits.sum()) == 0
    rows = {tuple(r.tolist()) for r in z.reshape(-1, 2)}
    for c in (1, 2):
        assert tuple(q.codebook[c].tolist()) in rows  # restarted at an encoder output of the batch
        assert float(q.counts[c]) == 1.0
        assert torch.equal(q.sums[c], q.codebook[c])
    # the restarts go to the outputs far from the live codes, not to copies of the near-zero ones
    assert {tuple(q.codebook[c].tolist()) for c in (1, 2)} == {(3.0, 3.0), (-3.0, 3.0)}
    assert q.codebook[0].abs().max() < 1  # live codes keep their EMA value


def test_spread_rows_avoid_copies_of_a_repeated_row() -> None:
    z = torch.cat([torch.zeros(1000, 2), torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])])
    rows = spread_rows(z, 4, None, torch.Generator().manual_seed(0))
    assert len({tuple(r.tolist()) for r in rows}) == 4  # all four distinct vectors, although 0 is 99.7% of rows
