"""Samplers: an oracle on a one-point data set returns the point; DDIM (eta = 0) is deterministic
and invertible; seeds fix samples; guidance combines the two predictions as stated."""

from __future__ import annotations

import pytest
import torch
from diffusion_helpers import OracleGaussian
from gmkit_diffusion.samplers import DDIMSampler, DDPMSampler
from torch import nn

from gmkit_core.data import DataSpec
from gmkit_core.distributions import to_unit_interval
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry

IMAGE = DataSpec("point", "image", (1, 2, 2), levels=9)


def _point_model(spec: DataSpec, point: torch.Tensor, **cfg):
    model = registry.get("model", "ddpm", data=spec, prediction="eps", T=200, mults=(1,), attention=(), **cfg)
    model.network = OracleGaussian(model.schedule, point, 0.0)
    return model.eval()


@pytest.mark.parametrize("schedule", ["linear", "cosine", "loglinear"])
@pytest.mark.parametrize(
    "sampler",
    [
        DDPMSampler(progress=False),
        DDIMSampler(steps=20, progress=False),
        DDIMSampler(steps=20, eta=1.0, progress=False),
    ],
)
def test_oracle_on_one_point_images_returns_the_point(schedule, sampler):
    levels = torch.tensor([[[0, 3], [8, 5]]])
    model = _point_model(IMAGE, to_unit_interval(levels, 9), schedule=schedule)
    x = sampler(model, 16, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.int64 and torch.equal(x, levels.expand(16, 1, 2, 2))


@pytest.mark.parametrize("sampler", [DDPMSampler(progress=False), DDIMSampler(steps=50, progress=False)])
def test_oracle_on_one_point_vectors_returns_the_point(sampler):
    point = torch.tensor([1.5, -0.25])
    model = _point_model(DataSpec("point", "vector", (2,)), point)
    x = sampler(model, 32, generator=torch.Generator().manual_seed(1))
    beta1 = float(model.schedule.betas[0]) ** 0.5
    assert x.dtype == torch.float32 and torch.allclose(x, point.expand(32, 2), atol=5 * beta1)


def _gaussian_vector_model():
    mean = torch.tensor([0.5, -1.0])
    model = registry.get("model", "ddpm", data=DataSpec("g", "vector", (2,)), prediction="eps", T=1000)
    model.network = OracleGaussian(model.schedule, mean, 0.3)
    return model.eval()


def test_ddim_eta0_is_deterministic_given_x_T():
    model = _gaussian_vector_model()
    sampler = DDIMSampler(steps=25, progress=False)
    xT = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    a = sampler.generate(model, xT, generator=torch.Generator().manual_seed(1))
    b = sampler.generate(model, xT, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_ddim_inversion_round_trips_up_to_discretisation_error():
    """x_1 -> invert -> x_T -> generate reproduces x0-hat(x_1); the error falls like 1/steps."""
    model = _gaussian_vector_model()
    g = torch.Generator().manual_seed(3)
    x0 = torch.tensor([0.5, -1.0]) + 0.3 * torch.randn(64, 2, generator=g)
    t1 = torch.ones(64, dtype=torch.long)
    x1 = model.schedule.q_sample(x0, t1, torch.randn(64, 2, generator=g))
    errors = []
    for steps in (100, 1000):
        sampler = DDIMSampler(steps=steps, progress=False)
        xT = sampler.invert(model, x1)
        assert float((xT - x1).abs().mean()) > 0.1  # it did move
        errors.append(float((sampler.generate(model, xT) - model.denoise(x1, t1)).abs().max()))
    assert errors[1] < 6e-3 and errors[1] < errors[0] / 5


def test_same_seed_same_samples_other_seed_others():
    spec = DataSpec("d", "image", (1, 4, 4), levels=5)
    model = registry.get("model", "ddpm", data=spec, T=30, channels=8, mults=(1, 2), attention=(2,)).eval()
    with torch.no_grad():
        for p in model.parameters():  # leave the zero initialisation so samples depend on the weights
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    draw = lambda s: model.sample(3, generator=torch.Generator().manual_seed(s))  # noqa: E731
    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))


class _LabelNet(nn.Module):
    """eps-hat = x + (label + 1): the null class (index num_classes) gives a known offset too."""

    def forward(self, x, t, y=None):  # noqa: ANN001, ANN201
        return x + (y.float() + 1).reshape(-1, 1)


def test_guidance_extrapolates_from_unconditional_to_conditional():
    spec = DataSpec("v", "vector", (2,), num_classes=3)
    model = registry.get("model", "ddpm", data=spec, prediction="eps", T=50).eval()
    model.network = _LabelNet()
    x, t, y = torch.randn(4, 2), torch.full((4,), 20), torch.tensor([0, 1, 2, 1])
    cond, uncond = model.denoise(x, t, y, 1.0), model.denoise(x, t, torch.full_like(y, 3), 1.0)
    assert torch.allclose(model.denoise(x, t, y, 3.0), uncond + 3.0 * (cond - uncond), atol=1e-5)


def test_sampler_options_are_checked():
    with pytest.raises(ConfigError):
        registry.get("sampler", "ddim", steps=0)
    with pytest.raises(ConfigError):
        registry.get("sampler", "ddim", stepz=10)


def test_condition_on_an_unconditional_model_is_a_config_error():
    spec = DataSpec("v", "vector", (2,))
    model = registry.get("model", "ddpm", data=spec, T=10)
    with pytest.raises(ConfigError):
        model.sample(2, condition=torch.tensor([0, 1]))
