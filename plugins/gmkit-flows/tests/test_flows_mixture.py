"""Mixture bases: MADE MoG (MAF MoG) and the diagonal mixture (realnvp on vectors).

Densities against torch.distributions and a grid, samples against the density, the autoregressive order.
"""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_flows.mixture import GaussianMixture, MADEMoG
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry


def _random_mog(
    features: int, components: int, seed: int, order: torch.Tensor | None = None, scale: float = 0.4
) -> MADEMoG:
    torch.manual_seed(seed)
    mog = MADEMoG(features, components, hidden=16, depth=2, order=order).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in mog.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return mog


@settings(max_examples=10, deadline=None)
@given(features=st.integers(1, 4), components=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_log_prob_against_torch_mixtures(features: int, components: int, seed: int) -> None:
    """Each conditional rebuilt as torch's MixtureSameFamily from the raw MADE output (own clamp and split)."""
    mog = _random_mog(features, components, seed)
    u = torch.randn(7, features, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)) * 2
    raw = mog.made(u)  # (B, D, 3C): logits, means, unclamped log-scales
    logits, mean, s = raw.split(components, -1)
    scale = torch.exp(5.0 * torch.tanh(s / 5.0))
    expected = MixtureSameFamily(Categorical(logits=logits), Normal(mean, scale)).log_prob(u).sum(-1)
    torch.testing.assert_close(mog.log_prob(u), expected)


def test_conditionals_are_autoregressive_in_the_order() -> None:
    """With the reverse order the second dimension's conditional ignores u, the first's depends on u_2 only."""
    mog = _random_mog(2, 3, seed=5, order=torch.tensor([2, 1]))
    u = torch.randn(4, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: torch.cat(mog.params(v), -1).sum(0), u)  # (D, 3C, B, D)
    assert bool((jac[1] == 0).all())  # dimension 2 (degree 1) sees nothing
    assert bool((jac[0][..., 0] == 0).all()) and bool((jac[0][..., 1] != 0).any())


@pytest.mark.parametrize("order", [None, torch.tensor([2, 1])])
def test_density_integrates_to_one_and_samples_follow_it(order: torch.Tensor | None) -> None:
    """The 2D density's mass on a grid is 1; moments of 40000 samples match the grid's within 4 standard errors."""
    mog = _random_mog(2, 4, seed=11, order=order, scale=0.25).eval()
    h = 0.02
    grid = torch.arange(-16, 16, h, dtype=torch.float64) + h / 2
    xy = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        p = torch.exp(mog.log_prob(xy)) * h * h
    assert abs(float(p.sum()) - 1) < 1e-4
    samples = mog.sample(40000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (40000, 2) and samples.dtype == torch.float64
    for f in (lambda v: v[:, 0], lambda v: v[:, 1], lambda v: v[:, 0] * v[:, 1], lambda v: (v[:, 0] > v[:, 1]) * 1.0):
        values = f(samples)
        exact = float((f(xy) * p).sum())
        assert abs(float(values.mean()) - exact) < 4 * float(values.std()) / math.sqrt(len(values)) + 1e-3


def test_initial_components_are_distinct_and_near_unit_variance() -> None:
    """Zero weights, biases at normal quantiles with scale 1/sqrt(C): mixture variance close to 1, no two means equal."""
    mog = MADEMoG(3, 10).double()
    log_w, mean, log_scale = mog.params(torch.randn(5, 3, dtype=torch.float64))
    torch.testing.assert_close(log_w.exp(), torch.full_like(log_w, 0.1))
    assert len(set(mean[0, 0].tolist())) == 10
    variance = (log_scale.exp().square() + mean.square()).mean(-1) - mean.mean(-1).square()
    assert bool(((variance - 1).abs() < 0.1).all())


def test_maf_mog_is_the_vector_default_and_sampling_is_seeded() -> None:
    spec = DataSpec("toy", "vector", (2,))
    model = registry.get("model", "maf", data=spec, layers=1, hidden=8)
    assert isinstance(model.base, MADEMoG) and model.base.components == 20
    assert torch.equal(model.base.made.order, torch.tensor([2, 1]))
    s1 = model.sample(6, generator=torch.Generator().manual_seed(3))
    s2 = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2)
    plain = registry.get("model", "maf", data=spec, layers=1, hidden=8, components=0, base="gmm")
    assert not isinstance(plain.base, MADEMoG)
    with pytest.raises(ConfigError, match="components=0"):
        registry.get("model", "maf", data=spec, layers=1, hidden=8, base="gmm")


def test_maf_mog_on_flattened_images() -> None:
    """An explicit MADE MoG base on images acts on the flattened event and returns image-shaped draws."""
    spec = DataSpec("img", "image", (1, 2, 2), levels=5)
    model = registry.get("model", "maf", data=spec, layers=1, hidden=8, components=3)
    assert isinstance(model.base, MADEMoG)
    z = model.base.sample(4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 1, 2, 2) and model.base.log_prob(z).shape == (4,)
    assert not isinstance(registry.get("model", "maf", data=spec, layers=1, hidden=8).base, MADEMoG)


@settings(max_examples=10, deadline=None)
@given(features=st.integers(1, 4), components=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_diagonal_mixture_against_torch(features: int, components: int, seed: int) -> None:
    mix = GaussianMixture(features, components, seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in mix.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    z = 2 * torch.randn(9, features, generator=g, dtype=torch.float64)
    scale = torch.exp(5.0 * torch.tanh(mix.log_scales / 5.0))
    torch_mix = MixtureSameFamily(Categorical(logits=mix.logits), Independent(Normal(mix.means, scale), 1))
    torch.testing.assert_close(mix.log_prob(z), torch_mix.log_prob(z))


def test_diagonal_mixture_samples_follow_its_density() -> None:
    """Moments of 40000 draws against the closed-form mixture moments, within 4 standard errors."""
    mix = GaussianMixture((2,), 3, seed=4).double()
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64))
        mix.log_scales.add_(torch.tensor([[0.3, -0.2], [0.0, 0.5], [-0.4, 0.1]], dtype=torch.float64))
    x = mix.sample(40000, generator=torch.Generator().manual_seed(1))
    w = torch.softmax(mix.logits, 0).detach()
    var = torch.exp(2 * 5.0 * torch.tanh(mix.log_scales / 5.0)).detach()
    mean = (w[:, None] * mix.means).sum(0).detach()
    second = (w[:, None] * (var + mix.means.square())).sum(0).detach()
    for got, exact, spread in ((x.mean(0), mean, x.std(0)), (x.square().mean(0), second, x.square().std(0))):
        assert bool(((got - exact).abs() < 4 * spread / math.sqrt(len(x))).all()), (got, exact)


def test_realnvp_mixture_base_is_the_vector_default() -> None:
    spec = DataSpec("toy", "vector", (2,))
    model = registry.get("model", "realnvp", data=spec, steps=1, hidden=8)
    assert isinstance(model.base, GaussianMixture) and model.base.components == 10
    assert not isinstance(
        registry.get("model", "realnvp", data=spec, steps=1, hidden=8, components=0).base, GaussianMixture
    )
    with pytest.raises(ConfigError, match="components=0"):
        registry.get("model", "realnvp", data=spec, steps=1, hidden=8, base="gmm")
    image = registry.get("model", "realnvp", data=DataSpec("img", "image", (1, 4, 4), levels=5), steps=1, hidden=4)
    assert not isinstance(image.base, GaussianMixture)
