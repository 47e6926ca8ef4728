"""score_sde and flow_matching: SDE coefficients, samplers, exact minibatch OT, reflow, conformance."""

from __future__ import annotations

import itertools

import pytest
import torch
from gmkit_score.ot import assignment, ot_pairing
from gmkit_score.sde import SubVPPath, VEPath, VPPath
from score_helpers import build

from gmkit_core.data import Dataset, DataSpec, load
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry
from gmkit_core.testing import check_model
from gmkit_core.training.config import TrainConfig
from gmkit_core.training.trainer import nested_fit

VEC = DataSpec(name="vec", kind="vector", shape=(2,))
SMALL_UNET = {"channels": 8, "mults": (1,), "attention": ()}


def test_sde_coefficients_match_the_papers_closed_forms() -> None:
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    beta = 0.1 + t * (20.0 - 0.1)
    vp = build("score_sde", VEC, hidden=8, depth=1, sde="vp")
    f, g2 = vp.sde_coefficients(t)
    assert torch.allclose(f, -0.5 * beta) and torch.allclose(g2, beta)  # dx = -beta/2 x dt + sqrt(beta) dW
    sub = build("score_sde", VEC, hidden=8, depth=1, sde="subvp")
    f, g2 = sub.sde_coefficients(t)
    vp_path = VPPath()
    assert torch.allclose(g2, beta * (1 - torch.exp(-2 * (-2 * vp_path.log_alpha(t)))), atol=1e-10)
    ve = build("score_sde", VEC, hidden=8, depth=1, sde="ve", sigma_min=0.01, sigma_max=20.0)
    f, g2 = ve.sde_coefficients(t)
    sigma = VEPath(0.01, 20.0).sigma(t)
    assert torch.allclose(f, torch.zeros_like(t)) and torch.allclose(
        g2, 2 * sigma.square() * torch.log(torch.tensor(2000.0))
    )
    assert bool((SubVPPath().sigma(t) <= vp_path.sigma(t)).all())


@pytest.mark.parametrize("method", ["em", "pc", "ode"])
def test_score_sde_samplers_are_seeded_and_options_checked(method: str) -> None:
    model = build("score_sde", VEC, hidden=8, depth=1, steps=5, nfe=5).eval()
    a = model.sample(6, generator=torch.Generator().manual_seed(0), method=method)
    b = model.sample(6, generator=torch.Generator().manual_seed(0), method=method)
    assert a.shape == (6, 2) and torch.equal(a, b)
    with pytest.raises(ConfigError, match="method"):
        model.sample(2, method="ddim")


def test_assignment_is_the_optimal_permutation() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        cost = torch.rand(6, 6, generator=g)
        perm = assignment(cost)
        best = min(sum(float(cost[i, p[i]]) for i in range(6)) for p in itertools.permutations(range(6)))
        assert sorted(perm.tolist()) == list(range(6))
        assert abs(sum(float(cost[i, perm[i]]) for i in range(6)) - best) < 1e-9
    x, noise = torch.randn(32, 2, generator=g), torch.randn(32, 2, generator=g)
    paired = ot_pairing(x, noise)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, noise.tolist()))
    assert (x - paired).square().sum() <= (x - noise).square().sum()


def test_reflow_straightens_the_flow() -> None:
    data = load("8gaussians", "train")
    sub = {
        "train": Dataset(data.x[:2048], None, data.spec, "train"),
        "validation": Dataset(data.x[2048:2304], None, data.spec, "validation"),
    }
    model = build("flow_matching", data.spec, hidden=64, depth=2, reflow_steps=150, reflow_pairs=1024, reflow_nfe=32)
    fit = nested_fit(TrainConfig(batch_size=256, lr=3e-3, quiet=True, threads=1))
    fit(model, sub, steps=300, eval_every=0, batch_size=256)

    def straightness() -> float:
        """Mean squared gap between one Euler step and the 32-evaluation RK4 solution from the same noise."""
        pairs, _ = model.reflow_pairs(256, torch.Generator().manual_seed(9))
        x0, eps = pairs.chunk(2, dim=1)
        with torch.no_grad():
            one_step = eps - model.velocity(eps, torch.ones(256))
        return float((one_step - x0).square().sum(1).mean())

    before = straightness()
    model.finish(sub, fit)
    after = straightness()
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("name", ["score_sde", "flow_matching"])
def test_conformance(name: str) -> None:
    extra = {"steps": 3} if name == "score_sde" else {"reflow_pairs": 8}
    report = check_model(name, data="8gaussians", hidden=16, depth=1, nfe=3, ode_steps=2, **extra)
    assert report.passed[-1] == "devices"


def test_conformance_on_images_with_the_hutchinson_estimate() -> None:
    for name in ("score_sde", "flow_matching"):
        check_model(
            name,
            data="digits",
            divergence="hutchinson",
            nfe=3,
            ode_steps=1,
            ode_nodes=1,
            **SMALL_UNET,
            **({"steps": 3} if name == "score_sde" else {}),
        )


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m"])
def test_shared_samplers_draw_from_ddpm(sampler: str) -> None:
    spec = load("digits", "train").spec
    model = build("ddpm", spec, T=100, **SMALL_UNET).eval()
    draw = registry.get("sampler", sampler, nfe=5)
    assert draw.applies_to(model) is None
    a = draw(model, 3, condition=torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(0))
    b = draw(model, 3, condition=torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 8, 8) and a.dtype == torch.int64 and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 17
