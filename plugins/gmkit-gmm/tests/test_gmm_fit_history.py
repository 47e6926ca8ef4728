"""The EM fit as run history (``fit_history``) and its one-line summary (``describe_fit``)."""

from __future__ import annotations

import re

import torch

from gmkit_core.data import Batch, Dataset
from gmkit_core.data import load as load_data
from gmkit_core.registry import registry


def _moons(n: int = 600) -> Dataset:
    train = load_data("moons", "train")
    return Dataset(train.x[:n], None, train.spec, "train")


def test_em_history_on_vectors_is_the_training_log_likelihood_per_iteration() -> None:
    data = _moons()
    model = registry.get("model", "gmm", data=data.spec, components=6, covariance="full", reg_covar=0.0).double()
    model.prepare(data)
    em = model.fit_history()["em"]
    ll = em["log_likelihood"]
    assert em["iteration"] == [float(i) for i in range(len(ll))]
    assert len(ll) == model.em_result.iterations + 1 >= 3
    assert all(b >= a - 1e-9 for a, b in zip(ll, ll[1:], strict=False)), ll  # EM never lowers it (reg_covar = 0)
    # the last entry is the fitted mixture's mean log-likelihood of the training points, computed afresh
    fresh = float(-model.nll(Batch(data.x.double())).mean())
    assert abs(ll[-1] - fresh) < 1e-9, (ll[-1], fresh)
    line = model.describe_fit()
    assert line is not None
    match = re.match(r"EM: (\d+) iterations?, log-likelihood (-?\d+\.\d+) nats/example", line)
    assert match, line
    assert int(match.group(1)) == model.em_result.iterations
    assert abs(float(match.group(2)) - fresh) < 1e-4
    assert "converged" in line


def test_em_history_on_images_adds_the_dequantisation_and_logit_terms() -> None:
    train = load_data("digits", "train")
    data = Dataset(train.x[:300], None, train.spec, "train")
    model = registry.get("model", "gmm", data=data.spec, components=2, covariance="diag", dequant_copies=1, max_iter=5)
    model.prepare(data)
    ll = model.fit_history()["em"]["log_likelihood"]
    # redraw the fitted noise (stream 0 of the seed, first use) and score the discrete data through the fitted mixture
    z, offset = model._to_latent(data.x, model._generator(data.x.device, 0))
    with torch.no_grad():
        fresh = float((model.mixture.log_prob(z) + offset).double().mean())
    assert abs(ll[-1] - fresh) < 1e-3 * abs(fresh), (ll[-1], fresh)
    assert fresh < -50  # nats per 64-pixel image, not per dimension nor in logit space alone
    assert "not converged within max_iter=5" in (model.describe_fit() or "")


def test_no_em_means_no_history() -> None:
    data = _moons(200)
    model = registry.get("model", "gmm", data=data.spec, components=3, fit="gradient")
    model.prepare(data)
    assert model.fit_history() == {}
    assert model.describe_fit() is None
    unprepared = registry.get("model", "gmm", data=data.spec, components=3)
    assert unprepared.fit_history() == {} and unprepared.describe_fit() is None


def test_restarts_are_named_and_the_kept_run_is_reported() -> None:
    data = _moons(300)
    model = registry.get("model", "gmm", data=data.spec, components=4, restarts=3)
    model.prepare(data)
    line = model.describe_fit() or ""
    assert "best of 3 restarts" in line
    assert model.fit_history()["em"]["log_likelihood"][-1] == model.em_result.final
    assert torch.isfinite(torch.tensor(model.fit_history()["em"]["log_likelihood"])).all()
