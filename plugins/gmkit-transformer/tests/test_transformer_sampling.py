"""Sampling: the key/value cache gives the naive path's samples, and samples follow the model."""

import pytest
import torch

from gmkit_core.data import Batch, DataSpec
from gmkit_core.registry import registry


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["transformer", "ctransformer"])
def test_cached_sampling_equals_naive_sampling(scramble, name, dtype):
    spec = DataSpec("small", "image", (2, 3, 3), levels=5, num_classes=3)
    model = registry.get("model", name, data=spec, dim=16, layers=2, heads=4).to(dtype).eval()
    scramble(model, 0.3)
    label = torch.tensor([0, 2, 1, 1, 0, 2]) if name == "ctransformer" else None
    a = model.sample(6, condition=label, generator=torch.Generator().manual_seed(1), cache=True)
    b = model.sample(6, condition=label, generator=torch.Generator().manual_seed(1), cache=False)
    c = model.sample(6, condition=label, generator=torch.Generator().manual_seed(2), cache=True)
    assert a.shape == (6, 2, 3, 3) and a.dtype == torch.int64
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_cached_logits_equal_full_pass_logits(float64_default, scramble):
    spec = DataSpec("small", "image", (1, 3, 3), levels=4)
    model = registry.get("model", "transformer", data=spec, dim=8, layers=2, heads=2).eval()
    scramble(model, 0.5)
    x = torch.randint(4, (2, 1, 3, 3))
    full = model.logits(x)  # (2, 9, 4)
    s = torch.cat([torch.full((2, 1), model.net.start), model.to_sequence(x)[:, :-1]], 1)
    cache = model.net.new_cache(2)
    steps = [model.net(s[:, p : p + 1], p, cache) for p in range(9)]
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-12)


def test_sample_frequencies_match_the_likelihood(float64_default, every_image, scramble):
    spec = DataSpec("pair", "image", (1, 1, 2), levels=3)
    model = registry.get("model", "transformer", data=spec, dim=8, layers=1, heads=2).eval()
    scramble(model, 1.0)
    xs = every_image(spec)  # 9 images
    p = torch.exp(-model.nll(Batch(xs)))
    n = 20000
    draws = model.sample(n, generator=torch.Generator().manual_seed(0)).view(n, 2)
    counts = torch.bincount(draws[:, 0] * 3 + draws[:, 1], minlength=9).double()
    expected = n * p
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 26.1  # chi-square, 8 degrees of freedom, p = 0.001


def test_unconditional_model_refuses_a_label():
    spec = DataSpec("small", "image", (1, 2, 2), levels=3)
    model = registry.get("model", "transformer", data=spec, dim=8, layers=1, heads=2)
    with pytest.raises(Exception, match="ctransformer"):
        model.sample(2, condition=torch.tensor([0, 1]))
