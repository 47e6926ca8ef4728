"""score_sde and flow_matching: SDE coefficients, samplers, exact minibatch OT, reflow, conformance."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gmkit_score.base import training_times
from gmkit_score.ode import divergence_exact
from gmkit_score.ot import assignment, ot_pairing
from gmkit_score.sde import SubVPPath, VEPath, VPPath, logistic_quantile
from hypothesis import given, settings
from hypothesis import strategies as st
from score_helpers import build

from gmkit_core.data import Batch, Dataset, DataSpec, load
from gmkit_core.errors import ConfigError
from gmkit_core.paths import GaussianPath, LinearPath
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


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_training_times_are_stratified_powers_of_a_uniform(power: float) -> None:
    torch.manual_seed(0)
    t = training_times(64, torch.device("cpu"), 0.1, 0.9, power)
    assert bool(((t >= 0.1) & (t <= 0.9)).all())
    u = ((t - 0.1) / 0.8).pow(1 / power).sort().values  # back to the antithetic uniforms: spaced by 1/64
    assert torch.allclose(u.diff(), torch.full((63,), 1 / 64), atol=1e-5)


def smooth_in_time(t: torch.Tensor) -> torch.Tensor:
    """A smooth function of time for the quadrature checks of the weightings."""
    return torch.cos(3 * t) + t


def log_snr_rate(path: GaussianPath) -> tuple[torch.Tensor, ...]:
    """``(s, alpha, sigma, rate)`` on a fine grid of ``s = log t`` over ``[log 1e-5, 0]``, float64, with
    ``rate = -d lambda / d log t`` from the path's own derivatives."""
    s = torch.linspace(math.log(1e-5), 0.0, 200_001, dtype=torch.float64)
    _, _, da, ds = path.derivatives(s.exp())
    a, sg = path.alpha(s.exp()), path.sigma(s.exp())
    return s, a, sg, -2 * (da / a - ds / sg) * s.exp()


@pytest.mark.parametrize("sde", ["vp", "subvp", "ve"])
def test_likelihood_weighting_importance_samples_minus_the_log_snr_rate(sde: str) -> None:
    """E_{t ~ p}[f(t)] (lambda(t_eps) - lambda(1)) = int -lambda'(t) f(t) dt: the g^2-weighted loss, by quadrature."""
    model = build("score_sde", VEC, hidden=8, depth=1, sde=sde, weighting="likelihood")
    path = model.path()
    torch.manual_seed(0)
    t = model.training_times(4096, torch.device("cpu")).double()
    assert bool(((t >= 1e-5 * 0.99) & (t <= 1.0)).all())

    ends = path.log_snr(torch.tensor([1.0, 1e-5], dtype=torch.float64))
    sampled = float(smooth_in_time(t).mean() * (ends[1] - ends[0]))
    s, a, sg, rate = log_snr_rate(path)
    assert sampled == pytest.approx(float(torch.trapezoid(rate * smooth_in_time(s.exp()), s)), rel=2e-3)
    _, g2 = model.sde_coefficients(s.exp())  # the weight is the SDE's own g^2: g^2 / sigma^2 = -lambda'
    assert torch.allclose(g2 / sg.square() * s.exp(), rate, rtol=1e-6)
    with pytest.raises(ConfigError, match="t_power"):
        build("score_sde", VEC, hidden=8, depth=1, weighting="likelihood", t_power=2.0)
    check_model("score_sde", data="8gaussians", hidden=16, depth=1, nfe=3, ode_steps=2, sde=sde, weighting="likelihood")


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["vp", "subvp", "ve"]),
    st.floats(0.01, 1.0),
    st.floats(1.5, 300.0),
    st.floats(0.0, 1.0),
)
def test_closed_form_time_at_inverts_the_log_snr_as_the_bisection_does(
    sde: str, low: float, ratio: float, u: float
) -> None:
    path = VEPath(low, low * ratio) if sde == "ve" else (SubVPPath if sde == "subvp" else VPPath)(low, low * ratio)
    ends = path.log_snr(torch.tensor([1.0, 1e-5], dtype=torch.float64))
    lam = ends[0] + u * (ends[1] - ends[0])
    t = path.time_at(lam[None])
    assert float(path.log_snr(t)[0]) == pytest.approx(float(lam), abs=1e-7 * (1 + abs(float(lam))) + 1e-6)
    assert float(t[0]) == pytest.approx(float(GaussianPath.time_at(path, lam[None])[0]), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood", "flow"])
def test_score_sde_loss_weighs_the_eps_error_at_the_weightings_times(
    monkeypatch: pytest.MonkeyPatch, weighting: str
) -> None:
    model = build("score_sde", VEC, hidden=8, depth=1, weighting=weighting)
    x = torch.randn(5, 2)
    t = torch.tensor([1e-3, 0.01, 0.1, 0.5, 0.9])
    monkeypatch.setattr(model, "training_times", lambda B, device: t)
    with torch.no_grad():
        torch.manual_seed(0)
        loss = model.loss(Batch(x))["loss"]
        torch.manual_seed(0)
        eps = torch.randn(5, 2)
        path = model.path()
        a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
        x_t = a * model.to_model_space(x) + s * eps
        weight = (1 + s / a).square() if weighting == "flow" else torch.ones_like(s)  # e^{-lambda/2} = sigma/alpha
        expected = (weight * (model.eps_hat(x_t, t, None) - eps).square()).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.floats(-40.0, 5.0), st.floats(0.5, 45.0), st.floats(0.0, 1.0))
def test_logistic_quantile_inverts_the_truncated_cdf_in_both_tails(low: float, width: float, u: float) -> None:
    high = low + width
    lam = logistic_quantile(torch.tensor([0.0, u, 1.0]), low, high).double()  # float32, as in training
    assert float(lam[0]) == pytest.approx(low, abs=1e-4) and float(lam[2]) == pytest.approx(high, abs=1e-4)
    assert float(lam[0]) <= float(lam[1]) + 1e-4 and float(lam[1]) <= float(lam[2]) + 1e-4

    def cdf(x: float) -> float:
        return 1 / (1 + math.exp(-x / 2))

    assert (cdf(float(lam[1])) - cdf(low)) / (cdf(high) - cdf(low)) == pytest.approx(u, abs=2e-5)


@pytest.mark.parametrize("sde", ["vp", "subvp", "ve"])
def test_flow_weighting_importance_samples_exp_minus_half_log_snr(sde: str) -> None:
    """2 Z E_{t ~ p}[(1 + e^{-lambda/2})^2 f(t)] = int e^{-lambda/2} (-lambda'(t)) f(t) dt, Z = F(lambda(t_eps)) -
    F(lambda(1)), F the logistic CDF of scale 2; and the weight is flow matching's 1/(1 - tau)^2 at the same log-SNR."""
    model = build("score_sde", VEC, hidden=8, depth=1, sde=sde, weighting="flow")
    path = model.path()
    torch.manual_seed(0)
    t = model.training_times(1 << 16, torch.device("cpu"))
    assert bool(((t >= 1e-5 * 0.99) & (t <= 1.0)).all())

    ends = path.log_snr(torch.tensor([1.0, 1e-5], dtype=torch.float64))
    z = float(torch.sigmoid(ends[1] / 2) - torch.sigmoid(ends[0] / 2))
    sampled = 2 * z * float((model.loss_weights(t).double() * smooth_in_time(t.double())).mean())
    s, a, sg, rate = log_snr_rate(path)
    assert sampled == pytest.approx(float(torch.trapezoid(rate * (sg / a) * smooth_in_time(s.exp()), s)), rel=3e-3)
    lam = torch.linspace(float(ends[0]) + 0.1, float(ends[1]) - 0.1, 41)  # within the range: time_at clamps
    tau = GaussianPath.time_at(LinearPath(), lam)  # the linear path's time at each log-SNR, by bisection
    assert torch.allclose(model.loss_weights(path.time_at(lam)), (1 - tau).pow(-2), rtol=1e-3)
    with pytest.raises(ConfigError, match="t_power"):
        build("score_sde", VEC, hidden=8, depth=1, weighting="flow", t_power=2.0)


@pytest.mark.parametrize("name", ["flow_matching", "score_sde"])
def test_fourier_input_features_enter_the_velocity_and_its_exact_divergence(name: str) -> None:
    times = {"t_power": 2.0, **({"weighting": "sigma2"} if name == "score_sde" else {})}  # t_power: uniform t only
    model = build(name, VEC, hidden=16, depth=2, x_fourier=(0, 2), nfe=3, **times)
    assert model.network.inp.in_features == 2 * (1 + 2 * 2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 2, requires_grad=True)
    t = torch.full((3,), 0.2)
    div = divergence_exact(model.velocity(x, t), x)
    trace = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda z: model.velocity(z[None], t[:1])[0], x[i]).trace()
            for i in range(3)
        ]
    )
    assert torch.allclose(div, trace, atol=1e-5)
    check_model(name, data="8gaussians", hidden=16, depth=1, nfe=3, ode_steps=2, x_fourier=(1,), **times)
    with pytest.raises(ConfigError, match="x_fourier"):
        build(name, load("digits", "train").spec, x_fourier=(1,), **SMALL_UNET)


def test_dequantized_training_data_fill_the_bins_of_the_bound() -> None:
    spec = load("digits", "train").spec
    data = load("digits", "train")
    batch = data.batch(torch.arange(32))
    plain = build("flow_matching", spec, dequantize=False, **SMALL_UNET)
    centres = plain.to_model_space(batch.x)
    assert torch.equal(plain.training_data(batch), centres)
    model = build("flow_matching", spec, dequantize=True, **SMALL_UNET)
    x = model.training_data(batch)
    half = 1.0 / (spec.levels - 1)
    assert bool(((x - centres).abs() <= half).all()) and float((x - centres).abs().mean()) > 0.4 * half
    assert torch.equal(model.decode(x), batch.x.long())  # each point stays in its own bin


def test_fourier_features_on_2d_vectors_only_and_score_sde_defaults_on_vectors() -> None:
    plane = DataSpec("checkerboard", "vector", (2,))
    wide = DataSpec("wide", "vector", (8,))
    digits = DataSpec("digits", "image", (1, 8, 8), levels=17, num_classes=10)
    fm = registry.entry("model", "flow_matching").load()
    assert fm.config_for(plane) == {"x_fourier": (0, 1, 2)}
    assert registry.get("model", "flow_matching", data=plane).input_multiplier == 7
    assert fm.config_for(wide) == {} and fm.config_for(digits) == {}
    sde = registry.entry("model", "score_sde").load()
    assert sde.config_for(plane) == {"predict": "v", "weighting": "flow", "x_fourier": (0, 1, 2)}
    assert sde.config_for(wide) == {"predict": "v", "weighting": "flow"} and sde.config_for(digits) == {}
    model = registry.get("model", "score_sde", data=plane, weighting="sigma2")  # given options win
    assert (model.config.weighting, model.config.predict, model.input_multiplier) == ("sigma2", "v", 7)


class Constant(torch.nn.Module):
    """A network that returns a fixed tensor (an oracle for one batch)."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.value


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["vp", "subvp", "ve"]), st.floats(1e-5, 1.0))
def test_v_prediction_reads_the_true_v_as_the_true_noise(sde: str, time: float) -> None:
    """An oracle network returning v = (alpha eps - sigma x0) / sqrt(alpha^2 + sigma^2) gives eps_hat = eps."""
    model = build("score_sde", VEC, hidden=8, depth=1, sde=sde, predict="v")
    path = model.path()
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    t = torch.full((4,), time, dtype=torch.float64)
    a, s = float(path.alpha(t)[0]), float(path.sigma(t)[0])
    v = (a * eps - s * x0) / math.hypot(a, s)
    model.network = Constant(v)
    eps_hat = model.eps_hat(a * x0 + s * eps, t, None)
    assert torch.allclose(eps_hat, eps, rtol=1e-9, atol=1e-9)
    assert torch.allclose(model.x0_from_network(a * x0 + s * eps, t, None), x0, atol=1e-6 * (1 + s / a))


def test_eps_prediction_with_sigma2_weighting_passes_the_conformance_kit_on_vectors() -> None:
    """The vector defaults are v and flow (test_conformance); the image defaults, on vectors."""
    check_model(
        "score_sde", data="8gaussians", hidden=16, depth=1, nfe=3, ode_steps=2, predict="eps", weighting="sigma2"
    )
