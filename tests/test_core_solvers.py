"""The shared Gaussian paths and ODE samplers against closed forms (gmkit_core.paths, gmkit_core.solvers)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.paths import GaussianPath, LinearPath, LogSNRPath, ode_velocity
from gmkit_core.registry import registry
from gmkit_core.solvers import SOLVERS, SolverOptions, noise_levels, solve


def vp_path() -> LogSNRPath:
    return LogSNRPath(lambda t: 10.0 - 20.0 * t)  # log-SNR from 10 to -10


PATHS = {"vp": vp_path, "linear": LinearPath}


def gaussian_oracle(path: GaussianPath, m: float, s: float):
    r"""E[x0 | x_t] for x0 ~ N(m, s^2 I): m + alpha s^2 / (alpha^2 s^2 + sigma^2) (x - alpha m)."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sig = path.alpha(t)[:, None].double(), path.sigma(t)[:, None].double()
        return (m + a * s * s / (a * a * s * s + sig * sig) * (x.double() - a * m)).to(x.dtype)

    return denoise


def exact_map(path: GaussianPath, x: torch.Tensor, nfe: int, method: str, m: float, s: float) -> torch.Tensor:
    r"""The exact ODE solution for Gaussian data: x~ - m scales with sqrt(s^2 + sigma~^2) (sigma~ = sigma/alpha)."""
    steps = (nfe + 1) // 2 if method == "heun" else nfe
    t, lam = noise_levels(path, steps, method, SolverOptions(nfe=nfe))
    sig0 = math.exp(-float(lam[0]) / 2)
    xs = x.double() / float(path.alpha(t[:1].float()))
    return m + (xs - m) * s / math.sqrt(s * s + sig0 * sig0)


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("name", PATHS)
def test_a_single_point_is_reached_exactly(method: str, name: str) -> None:
    path = PATHS[name]()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)) * 80
    target = torch.tensor([0.3, -0.7, 1.1])
    out = solve(method, lambda xt, t: target.expand_as(xt), path, x, nfe=7)
    assert torch.allclose(out, target.expand_as(out), atol=1e-6)


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("name", PATHS)
def test_gaussian_data_follow_the_exact_flow_and_converge(method: str, name: str) -> None:
    path, m, s = PATHS[name](), 0.5, 0.3
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    errors = []
    for nfe in (5, 11, 41):
        sigma0 = float(
            path.sigma(
                noise_levels(path, (nfe + 1) // 2 if method == "heun" else nfe, method, SolverOptions(nfe=nfe))[0][
                    :1
                ].float()
            )
        )
        start = sigma0 * x
        out = solve(method, gaussian_oracle(path, m, s), path, start, nfe=nfe)
        errors.append(float((out - exact_map(path, start, nfe, method, m, s)).abs().max()))
    assert errors[-1] < errors[0]
    assert errors[-1] < {"euler": 0.1, "heun": 0.06, "dpmpp_2m": 0.01}[method], errors


class OracleModel(torch.nn.Module):
    """A Denoiser for data N(m, s^2 I) in 2 dimensions, with the exact x0-prediction."""

    def __init__(self, m: float = 0.5, s: float = 0.3):
        super().__init__()
        self.m, self.s = m, s
        self.data = DataSpec(name="oracle", kind="vector", shape=(2,))
        self.register_buffer("dummy", torch.zeros(()))
        self.calls = 0

    def path(self) -> GaussianPath:
        return vp_path()

    def denoise(self, x, t, condition=None, guidance=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        return gaussian_oracle(self.path(), self.m, self.s)(x, t)

    def decode(self, x0, generator=None, mode=False):  # type: ignore[no-untyped-def]
        return x0

    def sampling_labels(self, n, condition, generator):  # type: ignore[no-untyped-def]
        return None


@pytest.mark.parametrize("name", SOLVERS)
def test_registered_samplers_reach_the_data_deterministically_with_nfe_calls(name: str) -> None:
    model = OracleModel()
    sampler = registry.get("sampler", name, nfe=61)
    assert sampler.applies_to(model) is None
    a = sampler(model, 4000, generator=torch.Generator().manual_seed(3))
    assert model.calls == sampler.nfe <= 61
    b = sampler(model, 4000, generator=torch.Generator().manual_seed(3))
    c = sampler(model, 4000, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.mean()) - 0.5) < 0.02 and abs(float(a.std()) - 0.3) < 0.03


def test_samplers_refuse_models_without_a_path_and_bad_options() -> None:
    sampler = registry.get("sampler", "heun")
    why = sampler.applies_to(torch.nn.Linear(2, 2))
    assert why is not None and "path()" in why
    with pytest.raises(ConfigError, match="path"):
        sampler(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ConfigError, match="nfe"):
        registry.get("sampler", "euler", nfe=0)
    with pytest.raises(ConfigError, match="steps"):
        registry.get("sampler", "dpmpp_2m", steps=3)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 0.99))
def test_path_derivatives_time_inverse_and_velocity(t0: float) -> None:
    t = torch.tensor([t0], dtype=torch.float64)
    for path in (vp_path(), LinearPath()):
        a, s, da, ds = path.derivatives(t)
        h = 1e-6
        assert torch.allclose(da, (path.alpha(t + h) - path.alpha(t - h)) / (2 * h), atol=1e-5)
        assert torch.allclose(ds, (path.sigma(t + h) - path.sigma(t - h)) / (2 * h), atol=1e-5)
        assert torch.allclose(path.time_at(path.log_snr(t)), t, atol=1e-7)
    # single-point data c on the linear path: the flow velocity is (x - c) / t
    x, c = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
    assert torch.allclose(ode_velocity(LinearPath(), x, t, c), (x - c) / t0)
    a, s = vp_path().alpha(t), vp_path().sigma(t)
    assert torch.allclose(a.square() + s.square(), torch.ones_like(t))
