"""Sampling: the cached sampler draws exactly what the naive one draws, from the model's law."""

from __future__ import annotations

import itertools

import pytest
import torch
from gmkit_pixelcnn.sampling import sample_fast, sample_naive
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry


def _condition(kind: str | None, n: int, height: int, width: int) -> torch.Tensor | None:
    gen = torch.Generator().manual_seed(7)
    return {
        None: None,
        "label": torch.arange(n) % 3,
        "vector": torch.randn(n, 2, generator=gen, dtype=torch.float64),
        "spatial": torch.randn(n, 2, height, width, generator=gen, dtype=torch.float64),
    }[kind]


@settings(max_examples=12, deadline=None)
@given(
    arch=st.sampled_from(["gated", "plain"]),
    channels=st.integers(1, 3),
    height=st.integers(1, 5),
    width=st.integers(1, 5),
    output=st.sampled_from(["categorical", "logistic_mixture"]),
    kind=st.sampled_from([None, "label", "vector", "spatial"]),
    position_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fast_equals_naive(arch, channels, height, width, output, kind, position_bias, seed, build):  # noqa: ANN001
    size = {None: 0, "label": 3, "vector": 2, "spatial": 2}[kind]
    net, out = build(
        arch,
        channels,
        levels=5,
        output=output,
        condition=(kind, size) if kind else None,
        size=(height, width) if position_bias else None,
    )
    condition = _condition(kind, 3, height, width)
    shape = (channels, height, width)
    naive = sample_naive(net, out, 3, shape, condition, torch.Generator().manual_seed(seed))
    fast = sample_fast(net, out, 3, shape, condition, torch.Generator().manual_seed(seed))
    assert naive.dtype == fast.dtype == torch.int64
    assert torch.equal(naive, fast)


def test_fast_equals_naive_float32_model():
    torch.manual_seed(0)
    spec = DataSpec("digits-like", "image", (1, 8, 8), levels=17)
    for arch in ("gated", "plain"):
        model = registry.get("model", "pixelcnn", data=spec, arch=arch, hidden=16, layers=3)
        naive = model.sample(4, generator=torch.Generator().manual_seed(3), method="naive")
        fast = model.sample(4, generator=torch.Generator().manual_seed(3), method="fast")
        assert torch.equal(naive, fast)
        assert not torch.equal(fast, model.sample(4, generator=torch.Generator().manual_seed(4)))


@pytest.mark.parametrize("arch", ["gated", "plain"])
def test_samples_follow_the_model(arch, build):  # noqa: ANN001
    """Frequencies of 6000 fast samples of a 1x1x2 image with 3 levels match exp(log p(x))."""
    net, out = build(arch, channels=1, levels=3)
    n = 6000
    x = sample_fast(net, out, n, (1, 1, 2), None, torch.Generator().manual_seed(0))
    images = torch.tensor(list(itertools.product(range(3), repeat=2))).view(9, 1, 1, 2)
    with torch.no_grad():
        p = out(net(images)).log_prob(images).exp()
    counts = torch.stack([(x == img).all(dim=(1, 2, 3)).sum() for img in images]).double()
    # Chi-square with 8 degrees of freedom: 26.1 is its 0.999 quantile.
    chi2 = ((counts - n * p) ** 2 / (n * p)).sum()
    assert chi2 < 26.1, (counts, n * p)


def test_model_sample_contract_and_labels():
    torch.manual_seed(0)
    spec = DataSpec("tiny", "image", (2, 3, 3), levels=4, num_classes=5)
    model = registry.get("model", "cpixelcnn", data=spec, hidden=8, layers=2)
    model.train()
    x = model.sample(6, condition=torch.full((6,), 3), generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 2, 3, 3) and x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < 4
    assert model.training  # sampling restores the mode
    same = model.sample(6, condition=torch.tensor(3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, same)
    drawn = model.sample(
        6, condition=None, generator=torch.Generator().manual_seed(0)
    )  # labels drawn with the generator
    assert drawn.shape == (6, 2, 3, 3)
    with pytest.raises(ConfigError, match="labels must lie"):
        model.sample(2, condition=torch.tensor([0, 5]))
    with pytest.raises(ConfigError, match="method"):
        model.sample(2, method="quick")


def test_sampler_components():
    torch.manual_seed(0)
    spec = DataSpec("tiny", "image", (1, 4, 4), levels=3)
    model = registry.get("model", "pixelcnn", data=spec, hidden=8, layers=2)
    fast = registry.get("sampler", "pixelcnn_fast")
    naive = registry.get("sampler", "pixelcnn_naive")
    a = fast(model, 3, generator=torch.Generator().manual_seed(1))
    b = naive(model, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    prior = registry.get("prior", "pixelcnn", shape=(4, 4), levels=3, hidden=8, layers=2)
    assert fast(prior, 2, generator=torch.Generator().manual_seed(1)).shape == (2, 4, 4)
    assert fast.applies_to(model) is None and fast.applies_to(prior) is None
    assert "pixelcnn and cpixelcnn models" in fast.applies_to(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="pixelcnn and cpixelcnn models"):
        fast(torch.nn.Linear(2, 2), 2)
    with pytest.raises(ConfigError, match="no option 'steps'"):
        registry.get("sampler", "pixelcnn_fast", steps=3)
