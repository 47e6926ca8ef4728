"""Sample-quality metrics against independent computations: scipy's sqrtm, closed forms, brute force, unbiasedness."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given
from hypothesis import strategies as st

from gmkit_core.errors import ConfigError, DataError
from gmkit_core.metrics import (
    feature_metrics,
    frechet_distance,
    frechet_from_moments,
    kernel_distance,
    mmd2_unbiased,
    parse_metrics,
    prdc,
)


def _random_spd(d, generator):
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_fd_of_a_set_with_itself_is_zero():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, x + 1.0) == pytest.approx(16.0, rel=1e-9)  # a shift adds ||m1 - m2||^2 only


def _fd_scipy(a, b):
    """The formula with scipy's general (non-symmetric) matrix square root of S1 S2."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


@pytest.mark.parametrize("d", [2, 8, 40])
def test_fd_matches_scipy_reference(d):
    g = torch.Generator().manual_seed(d)
    a = torch.randn(400, d, generator=g, dtype=torch.float64) @ _random_spd(d, g)
    b = 0.5 + torch.randn(300, d, generator=g, dtype=torch.float64) @ _random_spd(d, g)
    assert frechet_distance(a, b) == pytest.approx(_fd_scipy(a.numpy(), b.numpy()), rel=1e-7)


@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_fd_between_known_gaussians_is_the_closed_form(d, seed):
    g = torch.Generator().manual_seed(seed)
    m1, m2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = _random_spd(d, g), _random_spd(d, g)
    root1 = torch.from_numpy(scipy.linalg.sqrtm(s1.numpy()).real)
    middle = torch.from_numpy(scipy.linalg.sqrtm((root1 @ s2 @ root1).numpy()).real)
    expected = float((m1 - m2).square().sum() + torch.trace(s1 + s2 - 2 * middle))
    assert frechet_from_moments(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_fd_of_commuting_gaussians_is_the_scalar_formula():
    # diagonal covariances: FD = ||m1-m2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    m1, m2 = torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64)
    expected = 5.0 + float((a.sqrt() - b.sqrt()).square().sum())
    assert frechet_from_moments(m1, torch.diag(a), m2, torch.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_fd_with_singular_covariances_stays_finite_and_nonnegative():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(50, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 30, generator=g, dtype=torch.float64)
    value = frechet_distance(a, a[torch.randperm(50, generator=g)])
    assert math.isfinite(value) and 0.0 <= value < 1e-6


def _mmd2_loops(x, y):
    """Brute-force unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 3, generator=g, dtype=torch.float64), torch.randn(12, 3, generator=g, dtype=torch.float64)
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_loops(x, y), rel=1e-10)


def test_kid_is_unbiased_and_positive_for_different_distributions():
    g = torch.Generator().manual_seed(2)
    same, shifted = [], []
    for _ in range(400):
        x, y = torch.randn(2, 20, 4, generator=g, dtype=torch.float64)
        same.append(kernel_distance(x, y, subsets=1)[0])
        shifted.append(kernel_distance(x, y + 0.5, subsets=1)[0])
    same, shifted = np.array(same), np.array(shifted)
    stderr = same.std(ddof=1) / math.sqrt(len(same))
    assert abs(same.mean()) < 3 * stderr, (same.mean(), stderr)
    # a biased (V-statistic) estimate would sit well above zero: its mean here is several standard errors up
    assert shifted.mean() > 10 * shifted.std(ddof=1) / math.sqrt(len(shifted))


def test_kid_mean_and_std_over_subsets():
    g = torch.Generator().manual_seed(4)
    x, y = (
        torch.randn(60, 3, generator=g, dtype=torch.float64),
        1 + torch.randn(80, 3, generator=g, dtype=torch.float64),
    )
    mean, std = kernel_distance(x, y, subsets=25, subset_size=1000, seed=7)
    # subset size min(1000, 60, 80) = 60: the subsets of x are all of x; replay the draws by hand
    gen = torch.Generator().manual_seed(7)
    values = []
    for _ in range(25):
        xi, yi = x[torch.randperm(60, generator=gen)[:60]], y[torch.randperm(80, generator=gen)[:60]]
        values.append(_mmd2_loops(xi[:60], yi))
    assert mean == pytest.approx(np.mean(values), rel=1e-9)
    assert std == pytest.approx(np.std(values, ddof=1), rel=1e-7)
    assert kernel_distance(x, y, subsets=25, seed=7) == (mean, std)  # seeded: repeatable


def _prdc_loops(real, fake, k):
    """Brute force from the definitions (open balls, k-th nearest other point)."""

    def radii(z):
        d = np.linalg.norm(z[:, None] - z[None], axis=2)
        return np.sort(d, axis=1)[:, k]

    rr, rf = radii(real), radii(fake)
    d = np.linalg.norm(real[:, None] - fake[None], axis=2)  # (N, M)
    precision = np.mean([any(d[i, j] < rr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(d[i, j] < rf[j] for j in range(len(fake))) for i in range(len(real))])
    density = sum(d[i, j] < rr[i] for i in range(len(real)) for j in range(len(fake))) / (k * len(fake))
    coverage = np.mean([d[i].min() < rr[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@given(st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_prdc_matches_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(15, 2)), rng.normal(0.5, 1.2, size=(11, 2))
    got = prdc(torch.from_numpy(real), torch.from_numpy(fake), k=k)
    expected = _prdc_loops(real, fake, k)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_prdc_identical_sets_are_perfect():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert prdc(x, x.clone(), k=5) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_prdc_same_distribution_has_density_near_one():
    g = torch.Generator().manual_seed(6)
    values = prdc(torch.randn(3000, 2, generator=g), torch.randn(3000, 2, generator=g), k=5)
    assert values["density"] == pytest.approx(1.0, abs=0.05)
    assert min(values["precision"], values["recall"], values["coverage"]) > 0.9


def test_prdc_disjoint_far_apart_sets_score_zero():
    g = torch.Generator().manual_seed(7)
    real, fake = torch.randn(100, 3, generator=g), 100 + torch.randn(80, 3, generator=g)
    assert prdc(real, fake) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_of_a_subset():
    # two far-apart clusters of 60 and 40 real points; the fakes are exactly the first cluster
    g = torch.Generator().manual_seed(8)
    a, b = (
        torch.randn(60, 2, generator=g, dtype=torch.float64),
        50 + torch.randn(40, 2, generator=g, dtype=torch.float64),
    )
    values = prdc(torch.cat([a, b]), a.clone(), k=5)
    assert values["precision"] == 1.0 and values["density"] == 1.0
    assert values["recall"] == pytest.approx(0.6) and values["coverage"] == pytest.approx(0.6)


def test_bad_requests_are_clear_errors():
    x = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(DataError, match="k=5 need more than 5"):
        prdc(x, x, k=5)
    with pytest.raises(DataError, match="feature dimensions differ"):
        frechet_distance(x, torch.randn(5, 3))
    with pytest.raises(DataError, match="at least 2 feature vectors"):
        frechet_distance(x[:1], x[:1])
    with pytest.raises(ConfigError, match="unknown metric 'fid'.*fd, kid, prdc"):
        parse_metrics("fd,fid")
    assert parse_metrics("all") == ("fd", "kid", "prdc") and parse_metrics(" kid, fd ,kid") == ("kid", "fd")
    with pytest.raises(DataError, match="needs more than 5 examples"):
        feature_metrics(x, x, ["prdc"])
