"""The ``gmm`` model: likelihood accounting on discrete data, samples, fitting, contract."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_gmm.model import GMM, GMMConfig

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.data import load as load_data
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry

F64 = torch.float64
LEVELS = 5
TINY = DataSpec("tiny", "image", (1, 1, 2), levels=LEVELS)


def tiny_model(alpha: float, **options: object) -> GMM:
    """Two diagonal components on 2-pixel images with 5 levels; fixed parameters."""
    model = GMM(GMMConfig(components=2, covariance="diag", logit_alpha=alpha, **options), TINY).double()
    loc = torch.tensor([[0.2, 0.7], [0.8, 0.3]], dtype=F64)
    var = torch.tensor([[0.04, 0.09], [0.02, 0.05]], dtype=F64)
    if alpha > 0:  # put the components where the logit maps the data
        loc, var = torch.logit(alpha + (1 - 2 * alpha) * loc), var * 40
    model.mixture.set_parameters(torch.tensor([0.35, 0.65], dtype=F64), loc, var)
    return model


def exact_mass(model: GMM, x: torch.Tensor) -> torch.Tensor:
    """P(x) = sum_k pi_k prod_d [Phi(b_d) - Phi(a_d)] over the bin [x/L, (x+1)/L] mapped monotonically to z."""
    alpha = model.config.logit_alpha
    lo, hi = x.to(F64) / LEVELS, (x.to(F64) + 1) / LEVELS  # (B, D)
    if alpha > 0:
        lo, hi = (torch.logit(alpha + (1 - 2 * alpha) * e) for e in (lo, hi))
    m = model.mixture
    scale = torch.exp(m.log_scale)
    with torch.no_grad():
        a = (lo[:, None, :] - m.loc) / scale  # (B, K, D)
        b = (hi[:, None, :] - m.loc) / scale
        per = (torch.special.ndtr(b) - torch.special.ndtr(a)).prod(-1)  # (B, K)
        return per @ torch.exp(m.log_weights)


def all_images() -> torch.Tensor:
    grid = torch.cartesian_prod(torch.arange(LEVELS), torch.arange(LEVELS))
    return grid.reshape(-1, 1, 1, 2)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_nll_bounds_the_exact_discrete_likelihood(alpha: float) -> None:
    model = tiny_model(alpha)
    x = all_images()
    exact = -torch.log(exact_mass(model, x.reshape(-1, 2)))
    assert float(torch.exp(-exact).sum()) <= 1 + 1e-12
    reps = 4000
    batch = Batch(x.repeat(reps, 1, 1, 1))  # each copy gets its own dequantisation draw
    with torch.no_grad():
        bound = model.nll(batch).reshape(reps, -1).mean(0)  # E_u[-log p(y)] + D log L, per image
        tight = tiny_model(alpha, eval_samples=4000).nll(Batch(x))  # importance-weighted: -> exact
    assert bool((bound >= exact - 0.02).all()), bound - exact
    assert float((bound - exact).mean()) > 0.01  # Jensen's gap is real at this resolution
    torch.testing.assert_close(tight, exact, atol=0.03, rtol=0)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_samples_follow_the_discrete_model(alpha: float) -> None:
    model = tiny_model(alpha)
    x = all_images()
    mass = exact_mass(model, x.reshape(-1, 2))
    draws = model.sample(40_000, generator=torch.Generator().manual_seed(0))
    assert draws.dtype == torch.int64 and draws.shape == (40_000, 1, 1, 2)
    index = draws.reshape(-1, 2) @ torch.tensor([LEVELS, 1])
    freq = torch.bincount(index, minlength=LEVELS**2).to(F64) / 40_000
    # the mass outside [0, 1] lands in the outer bins when samples are clamped
    inside = mass.sum()
    assert float((freq - mass).abs()[mass > 0.01].max()) < 0.01 + float(1 - inside)


def true_eight_gaussians_log_prob(x: torch.Tensor) -> torch.Tensor:
    """The generating density of the built-in 8gaussians (centres 4(cos, sin)(2 pi j / 8) / sqrt 2, sd 0.5 / sqrt 2)."""
    angles = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
    centres = 4 * torch.stack([angles.cos(), angles.sin()], 1) / math.sqrt(2)
    sd = 0.5 / math.sqrt(2)
    d2 = (x.to(F64)[:, None, :] - centres).square().sum(-1)
    return torch.logsumexp(-0.5 * d2 / sd**2 - math.log(2 * math.pi * sd**2) - math.log(8), -1)


def test_em_on_eight_gaussians_reaches_the_true_likelihood() -> None:
    train, test = load_data("8gaussians", "train"), load_data("8gaussians", "test")
    model = registry.get("model", "gmm", data=train.spec, components=8, covariance="full")
    model.prepare(train)
    metrics = model.evaluate(test)
    truth = float(-true_eight_gaussians_log_prob(test.x).mean())
    assert metrics["exact"] is True
    assert abs(metrics["nll_nats"] - truth) < 0.02, (metrics["nll_nats"], truth)
    assert model.em_result.converged


def test_em_on_digits_gives_a_sound_bound() -> None:
    train, test = load_data("digits", "train"), load_data("digits", "test")
    model = registry.get("model", "gmm", data=train.spec, components=2, dequant_copies=1, max_iter=30)
    model.prepare(train)
    metrics = model.evaluate(test)
    assert metrics["exact"] is False
    assert 1.5 < metrics["bits_per_dim"] < 2.8
    samples = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (8, 1, 8, 8) and int(samples.min()) >= 0 and int(samples.max()) < 17


def test_gradient_fit_lowers_the_nll() -> None:
    train = load_data("8gaussians", "train")
    data = Dataset(train.x[:1000], None, train.spec, "train")
    model = registry.get("model", "gmm", data=data.spec, components=8, covariance="diag", fit="gradient")
    torch.manual_seed(0)
    before = model.validation_score(data)  # unit Gaussians at the origin
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        model.loss(data.batch(torch.randint(len(data), (128,))))["loss"].backward()
        optimizer.step()
    assert model.validation_score(data) < before - 0.5
    model.prepare(data)  # fit="gradient": k-means++ initialisation, no EM
    assert not hasattr(model, "em_result")
    assert model.validation_score(data) < 3.1


def test_unconditional_and_config_errors() -> None:
    spec = load_data("moons", "validation").spec
    model = registry.get("model", "gmm", data=spec, components=2)
    with pytest.raises(ConfigError, match="unconditional"):
        model.sample(2, condition=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ConfigError, match="covariance"):
        registry.get("model", "gmm", data=spec, covariance="tied")
    with pytest.raises(ConfigError, match="fit"):
        registry.get("model", "gmm", data=spec, fit="adam")


@pytest.mark.parametrize(
    ("data", "options"),
    [
        ("digits", {"components": 2, "dequant_copies": 1, "max_iter": 10}),
        ("8gaussians", {"components": 3, "covariance": "diag"}),
        ("digits", {"components": 2, "fit": "gradient", "covariance": "spherical"}),
    ],
)
def test_conformance(data: str, options: dict[str, object]) -> None:
    testing = pytest.importorskip("gmkit_core.testing")
    testing.check_model("gmm", data=data, **options)


def test_singular_fit_is_a_config_error_naming_reg_covar() -> None:
    x = torch.randn(100, 3)
    x[:, 2] = 0.0  # the data lie in a plane: unregularised covariances are singular
    data = Dataset(x, None, DataSpec("plane", "vector", (3,)), "train")
    model = registry.get("model", "gmm", data=data.spec, components=2, reg_covar=0.0)
    with pytest.raises(ConfigError, match="reg_covar"):
        model.prepare(data)
