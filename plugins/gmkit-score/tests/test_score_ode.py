"""The probability-flow ODE likelihood: closed forms, the exact divergence, Hutchinson, the bound on 81 tiny images."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_score.ode import divergence_exact, divergence_hutchinson, log_density
from score_helpers import TINY_NET, all_tiny_images, build, tiny_data, train_briefly

from gmkit_core.data import DataSpec

VEC = DataSpec(name="vec", kind="vector", shape=(3,))


def standard_normal(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x.square().sum(1) + x.shape[1] * math.log(2 * math.pi))


@pytest.mark.parametrize("method", ["rk4", "rk45"])
def test_gaussian_data_under_the_exact_velocity_give_the_closed_form(method: str) -> None:
    r"""Data N(m, s^2 I) on the linear path: x_t ~ N((1-t)m, r_t^2 I), r_t^2 = (1-t)^2 s^2 + t^2, and the
    velocity is v = -m + (r_t'/r_t)(x - (1-t)m); log p_0 must be log N(x; m, s^2 I)."""
    m = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    s = 0.4

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t[:, None]
        r2 = (1 - t) ** 2 * s * s + t * t
        dr_over_r = (-(1 - t) * s * s + t) / r2
        return -m + dr_over_r * (x - (1 - t) * m)

    x = m + s * torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
    result = log_density(velocity, x, 0.0, 1.0, standard_normal, method=method, steps=100, rtol=1e-8, atol=1e-8)
    closed = -0.5 * (((x - m) / s).square().sum(1) + 3 * math.log(2 * math.pi * s * s))
    assert torch.allclose(result.log_density, closed, atol=1e-5), (result.log_density - closed).abs().max()
    assert result.nfe > 0


def test_exact_divergence_is_the_trace_of_the_jacobian_and_hutchinson_is_unbiased() -> None:
    model = build("flow_matching", VEC, hidden=16, depth=2, class_conditional=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 3, requires_grad=True)
    t = torch.full((4,), 0.3)
    v = model.velocity(x, t)
    div = divergence_exact(v, x)
    trace = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda z: model.velocity(z[None], t[:1])[0], x[i]).trace()
            for i in range(4)
        ]
    )
    assert torch.allclose(div, trace, atol=1e-5)
    g = torch.Generator().manual_seed(0)
    probes = [torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1 for _ in range(3000)]
    draws = torch.stack([divergence_hutchinson(v, x, p) for p in probes]).detach()  # (3000, 4)
    stderr = draws.std(0) / math.sqrt(len(probes))
    assert bool(((draws.mean(0) - div.detach()).abs() < 4 * stderr + 1e-6).all())


def test_ode_bound_is_a_bound_on_all_81_tiny_images_and_the_check_can_fail() -> None:
    model = train_briefly(build("flow_matching", ode_steps=4, **TINY_NET), tiny_data(), steps=60)
    images = all_tiny_images()
    nll = [model.ode_nll(images, torch.Generator().manual_seed(seed))[0].detach() for seed in range(2)]
    bound = torch.stack(nll).double().mean(0)  # the bound holds in expectation over the dequantisation noise
    mass = float(torch.exp(-bound).sum())
    assert 0.1 < mass <= 1.0, mass
    # the check can fail: the density at the bin centres (bins have width 1 here) instead of averaged over
    # the bins is a plausible mistake, and it is far from a bound on the discrete data
    x = model.to_model_space(images.x)
    centres = log_density(lambda z, t: model.velocity(z, t), x, 0.0, 1.0, model.prior_log_prob, steps=4)
    assert float(torch.exp(centres.log_density.double()).sum()) > 1.0


def test_hutchinson_makes_an_estimate_and_evaluate_reports_the_solver() -> None:
    data = tiny_data(32)
    exact = build("flow_matching", ode_steps=2, **TINY_NET)
    estimate = build("flow_matching", ode_steps=2, divergence="hutchinson", **TINY_NET)
    assert type(exact).likelihood_kind(exact.data, exact.config) == "bound"
    assert type(estimate).likelihood_kind(estimate.data, estimate.config) == "estimate"
    out = estimate.eval().evaluate(data, batch_size=32)
    assert out["likelihood"] == "estimate" and out["ode_nfe"] == 8 and out["ode_steps"] == 2
    assert out["ode_divergence"] == "hutchinson"
