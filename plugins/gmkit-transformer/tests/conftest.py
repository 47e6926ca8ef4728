"""Fixtures shared by the gmkit-transformer tests."""

import itertools

import pytest
import torch

from gmkit_core.data import DataSpec


@pytest.fixture
def float64_default():
    """float64 as torch's default dtype for one test, restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _every_image(spec: DataSpec) -> torch.Tensor:
    """All ``levels ** dims`` images of a tiny ``spec``: ``(L^D, C, H, W)`` int64."""
    levels = int(spec.levels or 0)
    return torch.tensor(list(itertools.product(range(levels), repeat=spec.dims))).view(-1, *spec.shape)


def _scramble(module: torch.nn.Module, std: float, seed: int = 0) -> None:
    """Redraw every parameter from N(0, std^2), so the model is far from its near-uniform initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * std)


@pytest.fixture(scope="session")
def every_image():
    """``every_image(spec)``: all images of a tiny data spec."""
    return _every_image


@pytest.fixture(scope="session")
def scramble():
    """``scramble(module, std)``: redraw the parameters from N(0, std^2)."""
    return _scramble
