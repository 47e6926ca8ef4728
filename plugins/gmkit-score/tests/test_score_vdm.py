"""VDM: the learned schedule, the continuous bound as the limit of the discrete one, the bound on all 81 tiny images."""

from __future__ import annotations

import math

import torch
from gmkit_score.gamma import LearnedGamma, derivative
from hypothesis import given, settings
from hypothesis import strategies as st
from score_helpers import all_tiny_images, build, tiny_data, train_briefly

from gmkit_core.data import DataSpec, load
from gmkit_core.testing import check_model

VEC = DataSpec(name="vec", kind="vector", shape=(2,))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.floats(0.1, 5.0),
    g0=st.floats(-20, 0),
    gap=st.floats(0.1, 30),
    hidden=st.integers(1, 32),
)
def test_learned_schedule_is_monotone_with_its_end_points(
    seed: int, scale: float, g0: float, gap: float, hidden: int
) -> None:
    gamma = LearnedGamma(g0, g0 + gap, hidden)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gamma.parameters():
            if p is not gamma.gamma_0 and p is not gamma.gap:
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    t = torch.sort(torch.rand(200, generator=g, dtype=torch.float64))[0]
    t = torch.cat([torch.zeros(1, dtype=t.dtype), t, torch.ones(1, dtype=t.dtype)])
    with torch.no_grad():
        values = gamma.double()(t)
    assert bool((values[1:] >= values[:-1] - 1e-9).all())
    assert math.isclose(float(values[0]), g0, abs_tol=1e-6)
    assert math.isclose(float(values[-1]), g0 + gap, rel_tol=1e-6, abs_tol=1e-5)
    _, slope = derivative(gamma.double(), t[1:-1])
    assert bool((slope > 0).all())


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_continuous_loss_is_the_limit_of_the_discrete_bound() -> None:
    continuous = _perturbed(build("vdm", VEC, hidden=16, depth=2, schedule_hidden=8, class_conditional=False))
    x = torch.tensor([[0.7, -1.2]])
    eps = torch.tensor([[0.3, 0.9]])

    def diffusion_loss(T: int, n: int) -> float:
        model = build("vdm", VEC, hidden=16, depth=2, schedule_hidden=8, class_conditional=False, T=T).eval()
        model.load_state_dict(continuous.state_dict())
        t = (torch.arange(1, n + 1) - (0.0 if T else 0.5)) / n  # t_i = i / T, or midpoints for the integral
        with torch.no_grad():
            loss, _ = model.diffusion_term(x.expand(n, 2), None, t, eps.expand(n, 2))
        return float(loss.double().mean())

    limit = diffusion_loss(0, 20_000)
    gaps = [diffusion_loss(T, T) - limit for T in (10, 100, 1000)]
    # L_T >= L_inf (more steps never loosen the bound), and the gap falls like 1/T
    assert all(g > 0 for g in gaps), gaps
    assert gaps[1] < 0.2 * gaps[0] and gaps[2] < 0.2 * gaps[1], gaps
    assert gaps[2] < 0.02 * limit, (gaps, limit)


def test_bound_is_a_bound_on_all_81_tiny_images() -> None:
    # The T-step bound with 4 x T draws per image visits every step i/T exactly 4 times (no noise in t),
    # which keeps the Monte Carlo noise of the estimate (and so Jensen's upward bias of exp(-nll)) small.
    model = train_briefly(
        build("vdm", T=40, nll_samples=160, schedule_hidden=8, channels=8, mults=(1,), attention=(), dropout=0.0),
        tiny_data(),
        steps=40,
    )
    images = all_tiny_images()
    with torch.no_grad():
        terms = model.terms(images, torch.Generator().manual_seed(0), samples=160)
    mass = float(torch.exp(-terms["bound"].double()).sum())
    assert 0.05 < mass <= 1.0, mass
    # the check can fail: the same sum without the diffusion term is not a bound
    broken = float(torch.exp(-(terms["bound"] - terms["diffusion"]).double()).sum())
    assert broken > 1.0, broken


def test_evaluate_reports_the_three_terms_and_conformance() -> None:
    train = load("digits", "train")
    model = build(
        "vdm",
        train.spec,
        channels=8,
        mults=(1,),
        attention=(),
        schedule_hidden=8,
        nll_samples=2,
        class_conditional=False,
    ).eval()
    from gmkit_core.data import Dataset

    part = Dataset(train.x[:16], None, train.spec, "part")
    out = model.evaluate(part, batch_size=16)
    total = out["diffusion_nats"] + out["prior_nats"] + out["reconstruction_nats"]
    assert math.isclose(total, out["nll_nats"], rel_tol=1e-5)
    assert out["likelihood"] == "bound" and not out["exact"]
    report = check_model(
        "vdm", data="digits", channels=8, mults=(1,), attention=(), schedule_hidden=8, nll_samples=2, nfe=3
    )
    assert "nll" in report.passed and "save_load" in report.passed
