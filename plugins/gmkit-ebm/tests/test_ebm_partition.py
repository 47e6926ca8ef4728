"""log Z by the grid and by AIS against Gaussian mixtures whose normaliser is known in closed form."""

from __future__ import annotations

import math

import torch
from gmkit_ebm.partition import ais_log_partition, grid_log_partition, sigmoid_schedule

LOG_C = 1.7  # the energies below are -log(mixture density) + LOG_C, so Z = exp(-LOG_C)


def mixture(dim: int) -> torch.distributions.MixtureSameFamily:
    loc = torch.tensor([[1.5, -1.0, 0.5, 0.0], [-2.0, 1.0, 0.0, 1.0], [0.5, 2.0, -1.0, -0.5]], dtype=torch.float64)
    scale = torch.tensor([[0.4, 0.7, 0.5, 0.6], [0.8, 0.3, 0.6, 0.5], [0.5, 0.5, 0.4, 0.7]], dtype=torch.float64)
    comp = torch.distributions.Independent(torch.distributions.Normal(loc[:, :dim], scale[:, :dim]), 1)
    weights = torch.distributions.Categorical(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    return torch.distributions.MixtureSameFamily(weights, comp)


def test_grid_normalises_a_mixture_and_matches_its_nll() -> None:
    mix = mixture(2)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return -mix.log_prob(x) + LOG_C

    low, high = torch.full((2,), -6.0, dtype=torch.float64), torch.full((2,), 6.0, dtype=torch.float64)
    result = grid_log_partition(energy, low, high, points=128)
    assert result.points == 256 and math.isclose(result.cell[0], 12 / 256)
    assert abs(result.log_z - (-LOG_C)) < 1e-6 + result.error  # normalised: integrates to one
    assert result.error < 1e-3 and result.boundary_mass < 1e-6
    x = mix.sample((50,))
    assert torch.allclose(energy(x) + result.log_z, -mix.log_prob(x), atol=1e-3)


def test_grid_error_reports_a_coarse_grid() -> None:
    mix = mixture(2)
    low, high = torch.full((2,), -6.0, dtype=torch.float64), torch.full((2,), 6.0, dtype=torch.float64)
    coarse = grid_log_partition(lambda x: -mix.log_prob(x), low, high, points=8)
    assert coarse.error > 1e-3  # a visibly coarse grid says so
    assert abs(coarse.log_z) <= coarse.error  # and the error covers the truth (log Z = 0)


def test_grid_sees_the_box_cutting_the_density() -> None:
    mix = mixture(2)
    low, high = torch.full((2,), -1.0, dtype=torch.float64), torch.full((2,), 1.0, dtype=torch.float64)
    result = grid_log_partition(lambda x: -mix.log_prob(x), low, high, points=32)
    assert result.log_z < -0.5 and result.boundary_mass > 0.05


def test_sigmoid_schedule_runs_from_zero_to_one() -> None:
    b = sigmoid_schedule(100)
    assert b[0] == 0 and b[-1] == 1 and bool((b[1:] > b[:-1]).all())


def test_ais_recovers_log_z_of_a_mixture_within_its_standard_error() -> None:
    dim = 4
    mix = mixture(dim)
    low, high = torch.full((dim,), -7.0, dtype=torch.float64), torch.full((dim,), 7.0, dtype=torch.float64)
    result = ais_log_partition(
        lambda x: -mix.log_prob(x) + LOG_C,
        low,
        high,
        (dim,),
        chains=200,
        steps=300,
        step_size=0.05,
        generator=torch.Generator().manual_seed(0),
    )
    assert 0 < result.stderr < 0.2
    assert abs(result.log_z - (-LOG_C)) < 4 * result.stderr, (result.log_z, result.stderr)
    assert 0.2 < result.acceptance <= 1


def test_ais_on_a_constant_energy_is_exact() -> None:
    low, high = torch.zeros(3, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64)
    result = ais_log_partition(
        lambda x: torch.full((x.shape[0],), 0.5, dtype=x.dtype) + 0 * x.sum(1),
        low,
        high,
        (3,),
        chains=8,
        steps=10,
        generator=torch.Generator().manual_seed(0),
    )
    assert math.isclose(result.log_z, 3 * math.log(2) - 0.5, abs_tol=1e-9) and result.stderr == 0
