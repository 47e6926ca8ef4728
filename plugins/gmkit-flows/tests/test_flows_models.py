"""Flow models and priors: densities integrate to one, the dequantisation bound, sampling, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import Batch, DataSpec
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.interfaces import likelihood_of
from gmkit_core.registry import registry

VECTOR = DataSpec("toy", "vector", (2,))
SMALL = {
    "maf": {"layers": 2, "hidden": 8},
    "nsf": {"layers": 2, "hidden": 8, "bins": 4, "bound": 3.0},
    "realnvp": {"steps": 1, "hidden": 8},
}


def _randomized(model: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    model.double().eval()
    for m in model.modules():
        if hasattr(m, "initialized"):
            m.initialized.fill_(True)
    return model


@pytest.mark.parametrize("name", sorted(SMALL))
def test_2d_density_integrates_to_one(name: str) -> None:
    torch.manual_seed(0)
    model = _randomized(registry.get("model", name, data=VECTOR, **SMALL[name]), seed=1, scale=0.2)
    h = 0.035
    grid = torch.arange(-14, 14, h, dtype=torch.float64) + h / 2
    xy = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = float(torch.exp(model.log_prob(xy)).sum() * h * h)
    assert abs(mass - 1) < 5e-3, mass


@pytest.mark.parametrize("name", sorted(SMALL))
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_sampling_then_evaluating_is_consistent(name: str, seed: int) -> None:
    model = _randomized(registry.get("model", name, data=VECTOR, **SMALL[name]), seed)
    g = torch.Generator().manual_seed(seed)
    z = model.base.sample(16, generator=g).double()
    with torch.no_grad():
        x, ladj_inv = model.transform.inverse(z)
        logp = model.log_prob(x)
    expected = model.base.log_prob(z) - ladj_inv  # change of variables through the inverse
    assert bool(torch.isfinite(logp).all())
    torch.testing.assert_close(logp, expected, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(model.nll(Batch(x)), -logp)
    s1 = model.sample(5, generator=torch.Generator().manual_seed(seed))
    s2 = model.sample(5, generator=torch.Generator().manual_seed(seed))
    assert s1.shape == (5, 2) and torch.equal(s1, s2)


def test_dequantisation_bound_against_quadrature() -> None:
    r"""Tiny images (1x1x2, L=3), logit with alpha=0: P(x) = \int_{bin(x)} p(y) dy exactly by quadrature.

    The per-pixel masses sum to one, the one-draw bound exceeds -log P(x) on average, and the
    importance-weighted estimate with many draws converges to -log P(x) (every scaling term included).
    """
    spec = DataSpec("tiny", "image", (1, 1, 2), levels=3)
    torch.manual_seed(0)
    model = registry.get("model", "maf", data=spec, layers=2, hidden=8, logit_alpha=0.0, nll_samples=4000)
    model = _randomized(model, seed=3)
    n = 300
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # midpoints of [0, 1)
    uu = torch.cartesian_prod(t, t)
    levels = torch.cartesian_prod(torch.arange(3), torch.arange(3))
    exact = []
    with torch.no_grad():
        for x in levels:
            y = ((x.double() + uu) / 3).view(-1, 1, 1, 2)
            exact.append(torch.logsumexp(model.log_prob(y), 0) - math.log(n * n) - 2 * math.log(3))
    exact_t = torch.stack(exact)
    assert abs(float(torch.logsumexp(exact_t, 0))) < 1e-3  # the 9 masses sum to one
    x = levels.view(9, 1, 1, 2)
    torch.manual_seed(0)
    with torch.no_grad():
        iw = model.nll(Batch(x))  # K = 4000 fixed-seed draws
        draws = model._bound_draws(x.repeat(4000, 1, 1, 1), None).view(4000, 9)  # log p(y) - log q - D log L
    w = torch.exp(draws - draws.max(0).values)
    stderr = w.std(0) / (w.mean(0) * math.sqrt(4000))  # delta-method standard error of log mean w
    assert bool(((iw + exact_t).abs() < 5 * stderr + 1e-3).all()), (iw, -exact_t, stderr)
    one_draw = -draws.mean(0)  # the plain dequantisation bound, E[-log p(y)] + D log L
    assert bool((one_draw > -exact_t).all())


def test_variational_dequantizer_log_q_matches_logit_normal_density() -> None:
    from gmkit_flows.dequantization import LogitNormalDequantizer

    deq = _randomized(LogitNormalDequantizer((1, 2, 2), levels=5, hidden=4, blocks=1), seed=0)
    x = torch.randint(0, 5, (3, 1, 2, 2))
    g = torch.Generator().manual_seed(0)
    u, log_q = deq(x, g)
    theta = deq.net(torch.as_tensor(x, dtype=torch.float64) * 0.5 - 1)
    mu, sigma = theta[..., 0], torch.exp(theta[..., 1])
    v = torch.log(u) - torch.log1p(-u)
    density = torch.distributions.Normal(mu, sigma).log_prob(v) - torch.log(u) - torch.log1p(-u)
    torch.testing.assert_close(log_q, density.flatten(1).sum(1), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "name,options",
    [
        ("realnvp", {"scales": 2, "steps": 1, "hidden": 8, "depth": 1}),
        ("glow", {"levels": 2, "steps": 1, "hidden": 8, "blocks": 1}),
        ("maf", {"layers": 1, "hidden": 16}),
        ("nsf", {"layers": 1, "hidden": 16, "dequantization": "variational", "dequantizer_hidden": 4}),
    ],
)
def test_image_models_train_sample_and_bound(name: str, options: dict) -> None:
    from gmkit_core.data import load

    train = load("digits", "train")
    model = registry.get("model", name, data=train.spec, nll_samples=2, **options)
    assert likelihood_of(model) == "bound"
    model.prepare(train)
    batch = train.batch(slice(0, 16))
    out = model.loss(batch)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert math.isfinite(float(out["loss"].detach())) and "bits_per_dim" in out
    model.eval()
    nll = model.nll(batch)
    assert nll.shape == (16,) and torch.equal(nll, model.nll(batch))  # fixed-seed estimate
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 8, 8) and s.dtype == torch.int64
    assert int(s.min()) >= 0 and int(s.max()) < 17


def test_vector_models_are_exact() -> None:
    for name in SMALL:
        assert likelihood_of(registry.get("model", name, data=VECTOR, **SMALL[name])) == "exact"


def test_user_errors() -> None:
    with pytest.raises(DataError, match="images"):
        registry.get("model", "glow", data=VECTOR)
    with pytest.raises(ConfigError, match="dequantization"):
        registry.get("model", "maf", data=VECTOR, dequantization="gaussian")
    with pytest.raises(ConfigError):
        registry.get("model", "nsf", data=VECTOR, bins=0)
    with pytest.raises(ConfigError):
        registry.get("model", "maf", data=VECTOR).sample(2, condition=torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("name", ["maf", "nsf", "realnvp"])
def test_flow_priors_through_the_registry(name: str) -> None:
    prior = registry.get("prior", name, shape=(2, 3), hidden=8)
    # before any data every layer is the identity: the base density
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(prior.eval().log_prob(x), -0.5 * (x.square().sum((1, 2)) + 6 * math.log(2 * math.pi)))
    prior.train()
    z = prior.sample(5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 2, 3)
    lp = prior.log_prob(3 * z + 1)  # ActNorm initialises on this batch
    assert lp.shape == (5,) and bool(torch.isfinite(lp).all())
    lp.sum().backward()
    assert all(p.grad is not None for p in prior.parameters())
    with pytest.raises(Exception, match="no prior named"):
        registry.get("prior", name, shape=4, base="nope")
