"""The quantiser's math against hand computations and brute force (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_vqvae.quantizer import VectorQuantizer
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.codebook import batch_statistics, code_statistics, ema_update, nearest_code


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _quantizer(codebook: torch.Tensor, **kwargs) -> VectorQuantizer:
    K, D = codebook.shape
    q = VectorQuantizer(K, D, **kwargs).double()
    q.codebook.data.copy_(codebook)
    q.sums.copy_(codebook)
    return q


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), K=st.integers(1, 9), D=st.integers(1, 5), n=st.integers(1, 12))
def test_output_is_the_nearest_codebook_row(seed: int, K: int, D: int, n: int) -> None:
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(K, D, generator=g, dtype=torch.float64)
    z = 2 * torch.randn(n, 3, D, generator=g, dtype=torch.float64)
    q = _quantizer(codebook).eval()(z)
    brute = (z.unsqueeze(-2) - codebook).square().sum(-1)  # (n, 3, K), the definition
    chosen = brute.gather(-1, q.codes.unsqueeze(-1)).squeeze(-1)
    assert torch.all(chosen <= brute.min(-1).values + 1e-12)
    assert torch.equal(q.z_q, codebook[q.codes])  # a codebook row, exactly
    assert ((q.z_q.unsqueeze(-2) == codebook).all(-1)).any(-1).all()


def test_nearest_code_brute_force_on_a_grid() -> None:
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[0.4, 0.1], [0.6, 0.0], [0.1, 1.2], [5.0, -1.0]])
    assert nearest_code(z, codebook).tolist() == [0, 1, 2, 1]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_straight_through_gradient_equals_gradient_at_z_q(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    codebook = torch.randn(5, 3, generator=g)
    w = torch.randn(4, 2, 3, generator=g)
    z_e = torch.randn(4, 2, 3, generator=g).requires_grad_()

    def f(z: torch.Tensor) -> torch.Tensor:  # a nonlinear "decoder loss"
        return (torch.sin(z) * w).sum() + (z**3).sum()

    q = _quantizer(codebook).eval()(z_e)
    (grad_e,) = torch.autograd.grad(f(q.z_q), z_e)
    z_q = codebook[q.codes].clone().requires_grad_()
    (grad_q,) = torch.autograd.grad(f(z_q), z_q)
    assert torch.allclose(grad_e, grad_q, atol=0, rtol=1e-12)
    assert torch.equal(q.z_q.detach(), codebook[q.codes])


def test_codebook_and_commitment_losses_values_and_gradients() -> None:
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    z_e = torch.tensor([[[0.2, -0.1], [0.9, 1.3]]]).requires_grad_()  # (B=1, 2 positions, D=2)
    q = _quantizer(codebook, update="loss").eval()
    out = q(z_e)
    assert out.codes.tolist() == [[0, 1]]
    expected = 0.2**2 + 0.1**2 + 0.1**2 + 0.3**2
    assert torch.allclose(out.codebook_loss, torch.tensor([expected]))
    assert torch.allclose(out.commitment_loss, torch.tensor([expected]))
    # codebook loss: gradient 2 (e_k - z_e) on the chosen rows, none on z_e
    g_cb, g_z = torch.autograd.grad(out.codebook_loss.sum(), [q.codebook, z_e], allow_unused=True)
    assert torch.allclose(g_cb, torch.tensor([[-0.4, 0.2], [0.2, -0.6]]))
    assert g_z is None or torch.all(g_z == 0)
    # commitment loss: gradient 2 (z_e - e_k) on z_e, none on the codebook
    out = q(z_e)
    g_cb, g_z = torch.autograd.grad(out.commitment_loss.sum(), [q.codebook, z_e], allow_unused=True)
    assert g_cb is None or torch.all(g_cb == 0)
    assert torch.allclose(g_z, torch.tensor([[[0.4, -0.2], [-0.2, 0.6]]]))


@pytest.mark.parametrize(
    "eps, e0, e1", [(0.0, 0.125, 2.1), (0.1, 0.125 / (1.1 / 2.45 * 2.25), 2.625 / (1.35 / 2.45 * 2.25))]
)
def test_ema_update_hand_computed(eps: float, e0: float, e1: float) -> None:
    # codes e = (0, 2), N = (1, 1), m = (0, 2); batch z = 0.5 -> code 0, 1.5 and 3.0 -> code 1; gamma = 3/4
    counts, sums = torch.tensor([1.0, 1.0]), torch.tensor([[0.0], [2.0]])
    z, codes = torch.tensor([[0.5], [1.5], [3.0]]), torch.tensor([0, 1, 1])
    n, s = batch_statistics(z, codes, 2)
    assert torch.equal(n, torch.tensor([1.0, 2.0])) and torch.allclose(s, torch.tensor([[0.5], [4.5]]))
    N, m, e = ema_update(counts, sums, n, s, decay=0.75, eps=eps)
    assert torch.allclose(N, torch.tensor([1.0, 1.25]))  # 0.75*(1, 1) + 0.25*(1, 2)
    assert torch.allclose(m, torch.tensor([[0.125], [2.625]]))  # 0.75*(0, 2) + 0.25*(0.5, 4.5)
    assert torch.allclose(e, torch.tensor([[e0], [e1]]))


def test_ema_quantizer_updates_buffers_in_training_only() -> None:
    q = _quantizer(torch.tensor([[0.0], [2.0]]), update="ema", decay=0.75, eps=0.0)
    z = torch.tensor([[[0.5], [1.5], [3.0]]])
    q.eval()(z)
    assert torch.equal(q.codebook, torch.tensor([[0.0], [2.0]]))
    with torch.no_grad():
        q.train()(z)
    assert torch.equal(q.codebook, torch.tensor([[0.0], [2.0]]))  # no update without gradients (validation)
    q.train()(z)
    assert torch.allclose(q.codebook, torch.tensor([[0.125], [2.1]]))
    assert torch.allclose(q.counts, torch.tensor([1.0, 1.25]))
    assert not q.codebook.requires_grad  # an EMA codebook is not a parameter
    assert [n for n, _ in q.named_parameters()] == []


def test_dead_codes_are_revived_from_encoder_outputs() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    z = (centres.repeat(8, 1) + 0.1 * torch.randn(32, 2, generator=g)).unsqueeze(0)  # (1, 32, 2)
    codebook = torch.tensor([[0.0, 0.0], [4.0, 0.0], [100.0, 100.0], [-100.0, 100.0]])
    q = _quantizer(codebook, update="ema", decay=0.9, dead_code_window=3)
    used_before = set(q.eval()(z).codes.flatten().tolist())
    assert used_before == {0, 1}
    q.train()
    torch.manual_seed(0)
    for _ in range(3):  # the third batch completes the window: codes 2 and 3 had no hits
        q(z)
    flat = z.reshape(-1, 2)
    for i in (2, 3):  # revived codes are encoder outputs of the batch
        assert ((flat == q.codebook[i]).all(-1)).any()
        assert q.counts[i] == 1.0 and torch.equal(q.sums[i], q.codebook[i])
    assert int(q.batches) == 0 and float(q.hits.sum()) == 0
    used_after = set(q.eval()(z).codes.flatten().tolist())
    assert len(used_after) > len(used_before) and used_after & {2, 3}


def test_revive_touches_only_dead_codes() -> None:
    q = _quantizer(torch.tensor([[0.0], [1.0], [2.0]]))
    q.hits.copy_(torch.tensor([3.0, 0.0, 1.0]))
    before = q.codebook.clone()
    dead = q.revive(torch.tensor([[7.0], [8.0]]), generator=torch.Generator().manual_seed(1))
    assert dead.tolist() == [1]
    assert q.codebook[1].item() in (7.0, 8.0)
    assert torch.equal(q.codebook[[0, 2]], before[[0, 2]])


def test_code_statistics() -> None:
    assert code_statistics(torch.tensor([5.0, 5.0, 0.0, 0.0])) == pytest.approx((2.0, 0.5))
    assert code_statistics(torch.full((8,), 3.0)) == pytest.approx((8.0, 1.0))
    p = torch.tensor([0.5, 0.25, 0.25])
    assert code_statistics(p * 4)[0] == pytest.approx(math.exp(-(p * p.log()).sum().item()))
