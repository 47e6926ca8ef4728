"""The adversarial losses and penalties against hand computation and autograd; spectral norm against SVD."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from gmkit_gan.losses import accuracies, discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from gmkit_gan.networks import apply_spectral_norm, conv_trunk, mlp_trunk
from hypothesis import given, settings
from hypothesis import strategies as st

REAL = torch.tensor([2.0, -1.0], dtype=torch.float64)
FAKE = torch.tensor([0.5, -3.0], dtype=torch.float64)


def _sp(u: float) -> float:
    return math.log1p(math.exp(u))


@pytest.mark.parametrize(
    ("kind", "d_expected", "g_expected"),
    [
        ("non_saturating", (_sp(-2) + _sp(1)) / 2 + (_sp(0.5) + _sp(-3)) / 2, (_sp(-0.5) + _sp(3)) / 2),
        ("hinge", (0 + 2) / 2 + (1.5 + 0) / 2, 1.25),
        ("least_squares", 0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2, 0.5 * (0.25 + 16) / 2),
        ("wgan_gp", -1.25 - 0.5, 1.25),
    ],
)
def test_losses_match_hand_computed_values(kind: str, d_expected: float, g_expected: float) -> None:
    assert float(discriminator_loss(kind, REAL, FAKE)) == pytest.approx(d_expected, rel=1e-12)
    assert float(generator_loss(kind, FAKE)) == pytest.approx(g_expected, rel=1e-12)


def test_unknown_loss_is_an_error() -> None:
    with pytest.raises(ValueError, match="losses: non_saturating"):
        discriminator_loss("minimax", REAL, FAKE)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-20, 20), min_size=1, max_size=8), st.lists(st.floats(-20, 20), min_size=1, max_size=8))
def test_non_saturating_is_binary_cross_entropy(real: list[float], fake: list[float]) -> None:
    r, f = torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(
        f, torch.zeros_like(f)
    )
    assert torch.allclose(discriminator_loss("non_saturating", r, f), bce)
    assert torch.allclose(
        generator_loss("non_saturating", f), F.binary_cross_entropy_with_logits(f, torch.ones_like(f))
    )
    assert float(discriminator_loss("hinge", r, f)) >= 0


def test_gradient_penalty_of_a_linear_critic_is_exact() -> None:
    """``D(x) = w.x + b`` has ``grad D = w`` everywhere: GP = (||w|| - 1)^2, d GP / dw = 2 (||w|| - 1) w / ||w||."""
    torch.manual_seed(0)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    real, fake = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    gp = gradient_penalty(lambda x: x @ w + 0.3, real, fake)
    norm = float(w.detach().norm())
    assert float(gp.detach()) == pytest.approx((norm - 1) ** 2, rel=1e-12)
    (grad,) = torch.autograd.grad(gp, w)
    assert torch.allclose(grad, 2 * (norm - 1) * w.detach() / norm)


def test_gradient_penalty_evaluates_between_real_and_fake() -> None:
    """For ``D(x) = ||x||^2 / 2`` the gradient at x_hat is x_hat: GP = mean (||e x + (1-e) y|| - 1)^2 for the drawn e."""
    real, fake = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(7)
    gp = gradient_penalty(lambda x: 0.5 * x.square().sum(1), real, fake, generator=g)
    eps = torch.rand((4, 1), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    mixed = eps * real + (1 - eps) * fake
    assert float(gp.detach()) == pytest.approx(float((mixed.norm(dim=1) - 1).square().mean()), rel=1e-12)


def test_r1_penalty_of_a_quadratic_critic() -> None:
    """``D(x) = x^T A x / 2`` has gradient (A + A^T) x / 2 (= A x, A symmetric): R1 = mean ||A x||^2, and its A-gradient."""
    torch.manual_seed(1)
    m = torch.randn(3, 3, dtype=torch.float64)
    a = (m + m.T).requires_grad_(True)
    x = torch.randn(8, 3, dtype=torch.float64)
    r1 = r1_penalty(lambda u: 0.5 * torch.einsum("bi,ij,bj->b", u, a, u), x)
    assert float(r1.detach()) == pytest.approx(float((x @ a.detach()).square().sum(1).mean()), rel=1e-12)
    (grad,) = torch.autograd.grad(r1, a)
    ref = torch.autograd.functional.jacobian(lambda s: (x @ ((s + s.T) / 2)).square().sum(1).mean(), a.detach())
    assert torch.allclose(grad, ref)


def test_accuracies_use_each_loss_boundary() -> None:
    r, f = torch.tensor([0.6, 0.4, 2.0]), torch.tensor([0.45, -1.0])
    assert [float(a) for a in accuracies("hinge", r, f)] == pytest.approx([1.0, 0.5])
    assert [float(a) for a in accuracies("least_squares", r, f)] == pytest.approx([2 / 3, 1.0])
    # WGAN: boundary at (mean r + mean f) / 2 = (1.0 + (-0.275)) / 2 = 0.3625
    assert [float(a) for a in accuracies("wgan_gp", r, f)] == pytest.approx([1.0, 0.5])


@pytest.mark.parametrize("trunk", ["mlp", "conv"])
def test_spectral_norm_makes_the_largest_singular_value_one(trunk: str) -> None:
    from gmkit_core.data import DataSpec

    torch.manual_seed(0)
    spec = DataSpec("t", "vector", (5,)) if trunk == "mlp" else DataSpec("t", "image", (1, 8, 8), levels=17)
    net = mlp_trunk(spec, (16, 12))[0] if trunk == "mlp" else conv_trunk(spec, 4, 10)[0]
    apply_spectral_norm(net)
    x = torch.randn(3, *spec.shape)
    with torch.no_grad():
        for _ in range(300):  # one power iteration per training-mode forward
            net(x)
    net.eval()
    layers = [m for m in net.modules() if hasattr(m, "parametrizations")]
    assert len(layers) == (2 if trunk == "mlp" else 3)
    for layer in layers:
        w = layer.weight.detach()  # W / sigma_hat, as the forward uses it
        top = torch.linalg.svdvals(w.reshape(w.shape[0], -1))[0]
        assert float(top) == pytest.approx(1.0, abs=1e-3)
        raw = layer.parametrizations.weight.original.detach()
        assert float(torch.linalg.svdvals(raw.reshape(raw.shape[0], -1))[0]) != pytest.approx(1.0, abs=1e-2)
