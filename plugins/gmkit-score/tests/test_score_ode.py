"""The probability-flow ODE likelihood: closed forms, the exact divergence, Hutchinson, the bound on 81 tiny images."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_score.ode import divergence_exact, divergence_hutchinson, gauss_legendre, log_density
from gmkit_score.sde import VPPath
from score_helpers import TINY_NET, all_tiny_images, build, tiny_data, train_briefly

from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.paths import ode_velocity

VEC = DataSpec(name="vec", kind="vector", shape=(3,))


def standard_normal(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x.square().sum(1) + x.shape[1] * math.log(2 * math.pi))


GAUSSIAN_SETTINGS = [("rk4", 1.0, 0), ("rk45", 1.0, 0), ("rk4", 2.0, 0), ("rk4", 2.0, 12), ("rk45", 3.0, 12)]


@pytest.mark.parametrize(("method", "warp", "nodes"), GAUSSIAN_SETTINGS)
def test_gaussian_data_under_the_exact_velocity_give_the_closed_form(method: str, warp: float, nodes: int) -> None:
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

    def solve(nodes: int) -> torch.Tensor:
        options = {"steps": 100, "rtol": 1e-8, "atol": 1e-8, "warp": warp, "nodes": nodes}
        result = log_density(velocity, x, 0.0, 1.0, standard_normal, method=method, **options)
        assert result.nfe > 0 and result.divergence_evaluations == (nodes or result.nfe)
        return result.log_density

    closed = -0.5 * (((x - m) / s).square().sum(1) + 3 * math.log(2 * math.pi * s * s))
    assert torch.allclose(solve(nodes), closed, atol=1e-5), (solve(nodes) - closed).abs().max()
    if nodes:  # the check can fail: two nodes are too few for this integrand
        assert float((solve(2) - closed).abs().max()) > 1e-3


def test_gauss_legendre_is_exact_to_degree_2n_minus_1_and_not_beyond() -> None:
    for n in (1, 3, 8):
        nodes, weights = gauss_legendre(n, -0.5, 2.0)
        assert all(-0.5 < z < 2.0 for z in nodes) and nodes == sorted(nodes)
        for degree in range(2 * n + 1):
            quad = sum(w * z**degree for z, w in zip(nodes, weights, strict=True))
            exact = (2.0 ** (degree + 1) - (-0.5) ** (degree + 1)) / (degree + 1)
            if degree < 2 * n:
                assert quad == pytest.approx(exact, rel=1e-10, abs=1e-12)
            else:
                assert abs(quad - exact) > 1e-6


@pytest.mark.parametrize("chunk", [1, 3, 4, None])
def test_chunked_exact_divergence_of_a_unet_is_the_trace_of_its_jacobian(chunk: int | None) -> None:
    """Images (1 x 2 x 2, D = 4), with 1, 3 (uneven: 3 + 1), 4 and all basis vectors per backward pass."""
    model = build("flow_matching", **TINY_NET)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 1, 2, 2, dtype=torch.float32, requires_grad=True)
    t = torch.full((3,), 0.4)
    div = divergence_exact(model.velocity(x, t), x, chunk)
    trace = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda z: model.velocity(z[None], t[:1])[0].flatten(), x[i])
            .reshape(4, 4)
            .trace()
            for i in range(3)
        ]
    )
    assert float(trace.abs().min()) > 1e-3  # a non-trivial Jacobian (the output layer starts at zero)
    assert torch.allclose(div, trace, atol=1e-5), (div, trace)


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
    # trained on the bin centres, so that its density peaks there (the mistake checked for below)
    model = train_briefly(build("flow_matching", ode_steps=4, dequantize=False, **TINY_NET), tiny_data(), steps=60)
    images = all_tiny_images()
    nll = [model.ode_nll(images, torch.Generator().manual_seed(seed))[0].detach() for seed in range(2)]
    bound = torch.stack(nll).double().mean(0)  # the bound holds in expectation over the dequantisation noise
    mass = float(torch.exp(-bound).sum())
    assert 0.1 < mass <= 1.0, mass
    assert model.resolved_nodes() == 16  # the default on images: the divergence at 16 quadrature nodes
    # the check can fail: the density at the bin centres (bins have width 1 here) instead of averaged over
    # the bins is a plausible mistake, and it is far from a bound on the discrete data
    x = model.to_model_space(images.x)
    centres = log_density(lambda z, t: model.velocity(z, t), x, 0.0, 1.0, model.prior_log_prob, steps=4)
    assert float(torch.exp(centres.log_density.double()).sum()) > 1.0


def test_hutchinson_makes_an_estimate_and_evaluate_reports_the_solver() -> None:
    data = tiny_data(32)
    exact = build("flow_matching", ode_steps=2, ode_nodes=3, **TINY_NET)
    estimate = build("flow_matching", ode_steps=2, ode_nodes=0, divergence="hutchinson", **TINY_NET)
    assert type(exact).likelihood_kind(exact.data, exact.config) == "bound"
    assert type(estimate).likelihood_kind(estimate.data, estimate.config) == "estimate"
    out = estimate.eval().evaluate(data, batch_size=32)
    assert out["likelihood"] == "estimate" and out["ode_nfe"] == 8 and out["ode_steps"] == 2
    assert out["ode_divergence"] == "hutchinson" and out["ode_divergence_nfe"] == 8 and out["ode_nodes"] == 0
    # three nodes at s = 0.11, 0.5, 0.89 split [0, 1] into four segments of one RK4 step each (16 velocity
    # evaluations without gradients), and the divergence is taken at the three nodes only
    out = exact.eval().evaluate(data, batch_size=32)
    assert out["ode_nfe"] == 4 * 4 + 3 and out["ode_divergence_nfe"] == 3 and out["ode_nodes"] == 3


def test_time_warp_resolves_the_vp_velocity_near_t0() -> None:
    r"""Data N(m, s^2 I) on the VP path, exact denoiser: log p at t_eps = 1e-5 in closed form. Near t = 0 the
    velocity grows like t^{-1/2}; 32 RK4 steps in s with t = s^2 (warp 2, score_sde's default) are 50x more
    accurate than 32 steps in plain time."""
    path = VPPath(0.1, 20.0, 1e-5)
    m, s = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.1

    def moments(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = path.alpha(t)
        return a, a.square() * s * s + path.sigma(t).square()

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, r2 = moments(t)
        return ode_velocity(path, x, t, m + (a * s * s / r2)[:, None] * (x - a[:, None] * m))

    def log_normal(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x - mean).square().sum(1) / var + x.shape[1] * torch.log(2 * math.pi * var))

    a1, r1 = moments(torch.ones(1, dtype=torch.float64))
    a0, r0 = moments(torch.full((1,), 1e-5, dtype=torch.float64))
    x = m + s * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    closed = log_normal(x, a0 * m, r0)

    def error(warp: float) -> float:
        prior = lambda z: log_normal(z, a1 * m, r1)  # noqa: E731
        result = log_density(velocity, x, 1e-5, 1.0, prior, method="rk4", steps=32, warp=warp)
        return float((result.log_density - closed).abs().max())

    assert error(2.0) < 5e-4
    assert error(1.0) > 2e-3
    vp, ve = build("score_sde", VEC, hidden=8, depth=1), build("score_sde", VEC, hidden=8, depth=1, sde="ve")
    assert vp.resolved_warp() == 2.0 and ve.resolved_warp() == 1.0
    assert build("flow_matching", VEC, hidden=8, depth=1).resolved_warp() == 1.0
    with pytest.raises(ConfigError, match="ode_warp"):
        build("flow_matching", VEC, hidden=8, depth=1, ode_warp=0.5).resolved_warp()
