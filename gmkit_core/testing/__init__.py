"""The conformance kit: check that a model keeps the GenerativeModel contract.

``check_model("vae", data="digits", latent_dim=4)`` (a registered name, or a
model class) builds a small instance and asserts, naming the check that fails:

- ``build``: it builds from its Config on the data's spec; ``prepare`` runs;
- ``loss``: ``loss(batch)`` holds a finite scalar ``"loss"`` whose gradients are
  finite and reach the parameters;
- ``samples``: shape ``(n, *shape)``; int64 levels in ``[0, L)`` for images,
  finite floats for vectors; conditional models honour ``condition``;
- ``nll``: ``(B,)`` finite nats, non-negative on discrete data, deterministic when
  the model says it is exact, and ``evaluate`` agrees with it;
- ``seed``: the same generator seed gives the same samples, another seed others;
- ``save_load``: a run file round-trips weights exactly and the reloaded model
  gives the same samples and NLL;
- ``devices``: every tensor is a registered parameter or buffer (so ``.to``
  moves it); on a CUDA machine the model also trains and samples there.

The pytest fixture ``gmkit_check`` (installed with gmkit-core) is the same
function; ``pytest --gmkit-device cuda`` runs it on another device.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from pathlib import Path
from typing import Any

import attrs
import torch

from ..artifact import RunRecord, load, write_run
from ..config import config_to_dict, make_config
from ..data import Batch, Dataset
from ..data import load as load_data
from ..interfaces import LIKELIHOODS, GenerativeModel, likelihood_of
from ..registry import registry

__all__ = ["ConformanceError", "Report", "check_model"]


class ConformanceError(AssertionError):
    """A model broke its contract; the message names the check."""


@attrs.define
class Report:
    model: str
    passed: list[str] = attrs.field(factory=list)


def _require(ok: bool, check: str, message: str) -> None:
    if not ok:
        raise ConformanceError(f"[{check}] {message}")


def _subset(ds: Dataset, n: int) -> Dataset:
    return Dataset(ds.x[:n], None if ds.y is None else ds.y[:n], ds.spec, ds.split)


def check_model(
    model: str | type[GenerativeModel],
    data: str = "digits",
    device: str | torch.device = "cpu",
    n_train: int = 64,
    n_samples: int = 4,
    **overrides: Any,
) -> Report:
    """Run every check on ``model`` built with ``overrides``; raise ConformanceError on the first failure."""
    if isinstance(model, str):
        name, cls = model, registry.entry("model", model).load()
    else:
        name, cls = model.__name__, model
    report = Report(name)
    device = torch.device(device)
    train = _subset(load_data(data, "train"), n_train)
    spec = train.spec
    batch = train.batch(slice(0, min(16, n_train))).to(device)

    torch.manual_seed(0)
    config = cls.configure(spec, overrides, owner=f"model '{name}'")
    net = cls(config, spec).to(device)
    _require(isinstance(net, GenerativeModel), "build", f"{cls.__name__} is not a GenerativeModel")
    _check_sample_signature(cls)
    kind = likelihood_of(net)
    _require(kind in LIKELIHOODS, "build", f"likelihood is '{kind}'; kinds: {', '.join(LIKELIHOODS)}")
    with torch.no_grad():
        net.prepare(train)
    report.passed.append("build")

    _check_loss(net, batch)
    report.passed.append("loss")
    net.eval()
    condition = _condition(net, batch, n_samples)
    _check_samples(net, n_samples, condition, device)
    report.passed.append("samples")
    if likelihood_of(net) != "none":
        _check_nll(net, batch, train)
        report.passed.append("nll")
    _check_seed(net, n_samples, condition, device)
    report.passed.append("seed")
    _check_save_load(net, name, cls, batch, n_samples, condition, device)
    report.passed.append("save_load")
    _check_devices(net, batch)
    report.passed.append("devices")
    return report


def _condition(net: GenerativeModel, batch: Batch, n: int) -> torch.Tensor | None:
    if not net.conditional or net.data.num_classes is None:
        return None
    return torch.arange(n, device=batch.x.device) % net.data.num_classes


def _check_loss(net: GenerativeModel, batch: Batch) -> None:
    net.train()
    out = net.loss(batch)
    _require(isinstance(out, dict) and "loss" in out, "loss", "loss(batch) must return a dict with key 'loss'")
    loss = out["loss"]
    _require(loss.ndim == 0, "loss", f"'loss' must be a scalar, got shape {tuple(loss.shape)}")
    _require(bool(torch.isfinite(loss)), "loss", f"loss is not finite: {float(loss.detach())}")
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        return
    net.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    _require(len(grads) > 0, "loss", "no parameter received a gradient")
    _require(all(bool(torch.isfinite(g).all()) for g in grads), "loss", "a gradient is not finite")
    _require(any(bool(g.abs().sum() > 0) for g in grads), "loss", "all gradients are zero")
    net.zero_grad(set_to_none=True)


def _check_sample_signature(cls: type[GenerativeModel]) -> None:
    """``sample(n, *, condition=None, generator=None)``: the two keywords are keyword-only, as the contract says."""
    params = inspect.signature(cls.sample).parameters
    for name in ("condition", "generator"):
        kind = params[name].kind if name in params else None
        _require(
            kind == inspect.Parameter.KEYWORD_ONLY,
            "build",
            f"{cls.__name__}.sample must take '{name}' as a keyword-only argument (sample(n, *, condition, generator))",
        )


def _check_samples(net: GenerativeModel, n: int, condition: torch.Tensor | None, device: torch.device) -> None:
    spec = net.data
    with torch.no_grad():
        x = net.sample(n, condition=condition, generator=torch.Generator(device).manual_seed(0))
    _require(tuple(x.shape) == (n, *spec.shape), "samples", f"shape {tuple(x.shape)}, expected {(n, *spec.shape)}")
    if spec.is_discrete:
        _require(x.dtype == torch.int64, "samples", f"images must be int64 levels, got {x.dtype}")
        _require(
            int(x.min()) >= 0 and int(x.max()) < (spec.levels or 0),
            "samples",
            f"levels outside [0, {spec.levels}): min {int(x.min())}, max {int(x.max())}",
        )
    else:
        _require(
            x.is_floating_point() and bool(torch.isfinite(x).all()), "samples", "vector samples must be finite floats"
        )


def _check_nll(net: GenerativeModel, batch: Batch, train: Dataset) -> None:
    with torch.no_grad():
        torch.manual_seed(1)
        a = net.nll(batch)
        torch.manual_seed(2)
        b = net.nll(batch)
    _require(tuple(a.shape) == (len(batch),), "nll", f"nll must be (B,) = ({len(batch)},), got {tuple(a.shape)}")
    _require(bool(torch.isfinite(a).all()), "nll", "nll is not finite")
    if net.data.is_discrete:
        _require(bool((a >= -1e-4).all()), "nll", f"nll of discrete data must be >= 0 nats, got {float(a.min())}")
    if likelihood_of(net) == "exact":
        _require(
            torch.allclose(a, b, rtol=1e-5, atol=1e-5),
            "nll",
            "the model says its nll is exact but two evaluations differ (is it a stochastic bound?)",
        )
    metrics = net.evaluate(Dataset(batch.x.cpu(), None if batch.y is None else batch.y.cpu(), train.spec, "check"))
    _require(
        metrics.get("exact") == (likelihood_of(net) == "exact"), "nll", "evaluate()['exact'] disagrees with likelihood"
    )
    if "bits_per_dim" in metrics:
        expected = metrics["nll_nats"] / (net.data.dims * math.log(2))
        _require(
            abs(metrics["bits_per_dim"] - expected) < 1e-6 * max(1, expected), "nll", "bits_per_dim != nats / (D ln 2)"
        )


def _check_seed(net: GenerativeModel, n: int, condition: torch.Tensor | None, device: torch.device) -> None:
    def draw(seed: int, global_seed: int) -> torch.Tensor:
        torch.manual_seed(global_seed)  # the global RNG must not matter, only the generator
        with torch.no_grad():
            return net.sample(n, condition=condition, generator=torch.Generator(device).manual_seed(seed))

    _require(
        torch.equal(draw(3, 11), draw(3, 12)),
        "seed",
        "the same generator seed gave different samples (is the global RNG used instead of the generator?)",
    )
    _require(not torch.equal(draw(3, 11), draw(4, 11)), "seed", "different seeds gave identical samples")


def _check_save_load(
    net: GenerativeModel,
    name: str,
    cls: type[GenerativeModel],
    batch: Batch,
    n: int,
    condition: torch.Tensor | None,
    device: torch.device,
) -> None:
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.h5"
        record = RunRecord(
            model=name,
            plugin="conformance",
            plugin_version="0",
            config_class=f"{cls.__module__}.{cls.Config.__qualname__}",
            config=config_to_dict(net.config),
            train_config={},
            data={"source": "check", "spec": net.data.to_json()},
            best=state,
        )
        write_run(path, record)
        if name in registry.names("model") and registry.entry("model", name).load() is cls:
            other = load(path, device=device).model
        else:
            from ..artifact import read_run

            loaded = read_run(path, weights_only=True)
            other = cls(make_config(cls.Config, loaded.config), net.data).to(device).eval()
            other.load_state_dict(loaded.best)
    reloaded = other.state_dict()
    _require(set(reloaded) == set(state), "save_load", "state dict keys differ after reloading")
    for key, value in state.items():
        _require(torch.equal(reloaded[key].cpu(), value), "save_load", f"tensor '{key}' changed after reloading")
    with torch.no_grad():
        a = net.sample(n, condition=condition, generator=torch.Generator(device).manual_seed(5))
        b = other.sample(n, condition=condition, generator=torch.Generator(device).manual_seed(5))
        _require(torch.equal(a, b), "save_load", "the reloaded model samples differently with the same seed")
        if likelihood_of(net) == "exact":
            _require(torch.allclose(net.nll(batch), other.nll(batch)), "save_load", "the reloaded model's nll differs")


def _check_devices(net: GenerativeModel, batch: Batch) -> None:
    for mod_name, module in net.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter) and value.numel() > 1:
                _require(
                    False,
                    "devices",
                    f"{mod_name or 'model'}.{attr} is a plain tensor attribute; "
                    "register it as a buffer so .to(device) moves it",
                )
    if torch.cuda.is_available() and batch.x.device.type == "cpu":
        gpu = torch.device("cuda")
        net.to(gpu)
        try:
            _check_loss(net, batch.to(gpu))
            net.eval()
            _check_samples(
                net,
                2,
                None
                if not net.conditional or net.data.num_classes is None
                else torch.zeros(2, dtype=torch.long, device=gpu),
                gpu,
            )
        finally:
            net.to("cpu")
