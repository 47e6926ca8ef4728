"""SGLD against a Gaussian energy: stationary mean and variance within Monte Carlo error."""

from __future__ import annotations

import math

import torch
from gmkit_ebm.langevin import energy_grad, langevin

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
VAR = torch.tensor([0.25, 1.0], dtype=torch.float64)


def gaussian_energy(x: torch.Tensor) -> torch.Tensor:
    return ((x - MU) ** 2 / (2 * VAR)).sum(1)


def _run(noise: float | None, step: float = 0.01, chains: int = 2000, steps: int = 800) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(chains, 2, generator=g, dtype=torch.float64) * 4 - 2
    return langevin(gaussian_energy, x0, steps, step, noise, generator=g)


def test_energy_grad_is_autograd_of_the_energy() -> None:
    x = torch.randn(5, 2, dtype=torch.float64)
    e, grad = energy_grad(gaussian_energy, x)
    assert torch.allclose(e, gaussian_energy(x))
    assert torch.allclose(grad, (x - MU) / VAR)


def test_langevin_samples_the_gaussian_mean_and_variance() -> None:
    x = _run(None)
    n = x.shape[0]
    # Monte Carlo standard errors of the mean and of the variance of n independent chains
    assert torch.all((x.mean(0) - MU).abs() < 4 * (VAR / n).sqrt()), x.mean(0)
    # the unadjusted chain's stationary variance is VAR / (1 - eps / (2 VAR)) (2% and 0.5% above VAR here)
    target = VAR / (1 - 0.01 / (2 * VAR))
    assert torch.all((x.var(0) - target).abs() < 4 * target * math.sqrt(2 / (n - 1))), x.var(0)
    assert torch.all((x.var(0) - VAR).abs() < 0.1 * VAR)


def test_decoupled_noise_gives_a_colder_chain() -> None:
    step = 0.01
    x = _run(math.sqrt(step))  # sigma^2 = eps instead of 2 eps: half the variance
    n = x.shape[0]
    target = VAR / 2 / (1 - step / (2 * VAR))  # variance of x <- (1 - eps/VAR) x + sqrt(eps) xi
    assert torch.all((x.var(0) - target).abs() < 4 * target * math.sqrt(2 / (n - 1))), x.var(0)


def test_box_clipping_and_generator() -> None:
    x0 = torch.zeros(64, 2, dtype=torch.float64)
    a = langevin(gaussian_energy, x0, 50, 0.5, None, -0.5, 0.5, torch.Generator().manual_seed(1))
    b = langevin(gaussian_energy, x0, 50, 0.5, None, -0.5, 0.5, torch.Generator().manual_seed(1))
    c = langevin(gaussian_energy, x0, 50, 0.5, None, -0.5, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= -0.5 and float(a.max()) <= 0.5
