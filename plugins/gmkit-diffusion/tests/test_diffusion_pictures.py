"""The pictures ``gmkit train`` draws use fast DDIM (``picture_sample_options``) unless asked otherwise."""

from __future__ import annotations

import pytest
import torch
from gmkit_diffusion.samplers import DDIMSampler, DDPMSampler

from gmkit_core.data import DataSpec
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry

VECTOR = DataSpec("v", "vector", (2,))


def _counting_model(**cfg: object):
    """A small ddpm on 2D vectors whose network counts its calls."""
    torch.manual_seed(0)
    model = registry.get("model", "ddpm", data=VECTOR, T=40, hidden=16, depth=1, **cfg).eval()
    calls = []
    model.network.register_forward_hook(lambda *_: calls.append(1))
    return model, calls


def test_pictures_default_to_ddim_with_sample_steps() -> None:
    model, calls = _counting_model(sample_steps=5)
    assert model.config.sampler == "ddpm"  # `sample` itself keeps the configured (ancestral) sampler
    options = model.picture_sample_options
    assert options == {"sampler": "ddim", "steps": 5}
    fast = model.sample(16, generator=torch.Generator().manual_seed(3), **options)
    assert len(calls) == 5
    calls.clear()
    model.sample(16, generator=torch.Generator().manual_seed(3))
    assert len(calls) == 40  # all T steps
    reference = DDIMSampler(steps=5, progress=False)(model, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast, reference)


def test_pictures_can_ask_for_the_ancestral_sampler() -> None:
    model, calls = _counting_model(picture_sampler="ddpm")
    options = model.picture_sample_options
    assert options == {"sampler": "ddpm"}
    x = model.sample(8, generator=torch.Generator().manual_seed(1), **options)
    assert len(calls) == 40
    assert torch.equal(x, DDPMSampler(progress=False)(model, 8, generator=torch.Generator().manual_seed(1)))


def test_sample_keywords_are_checked() -> None:
    model, _ = _counting_model()
    with pytest.raises(ConfigError, match="steps applies to the ddim sampler"):
        model.sample(2, sampler="ddpm", steps=10)
    with pytest.raises(ConfigError, match="sampler='euler'"):
        model.sample(2, sampler="euler")
    with pytest.raises(ConfigError, match="picture_sampler"):
        registry.get("model", "ddpm", data=VECTOR, picture_sampler="euler")
