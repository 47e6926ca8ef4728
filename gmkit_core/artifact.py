"""The run file: one HDF5 file per run, everything needed to sample, evaluate and resume.

Layout (format ``gmkit-run`` version 2)::

    /            attrs: format, format_version, gmkit_core_version, plugin, plugin_version,
                        model, config_class, config (JSON), train_config (JSON),
                        data (JSON: source and DataSpec), created, updated
    /best        the weights a user gets (best on validation; EMA weights when EMA is on)
    /model       current weights        /ema  EMA weights (if any)
    /optimizer   one group per optimiser (``model``, or the model's own names such as
                 ``generator``/``discriminator``): state tensors as
                 <group>/state/<param index>/<name>; param_groups as JSON attr
    /trainer     step, best_score, best_step, bad_evals, data order, RNG states
    /history     step-indexed arrays: train/<name>, validation/<name>
    /samples     optional sample arrays

Tensors are stored as plain arrays with HDF5 Fletcher-32 checksums, so flipped
bytes are reported as a damaged file (dtype in an attribute where numpy lacks it);
JSON holds everything else. Nothing is pickled, so opening an untrusted file runs
no code. Writes go to a temporary file in the same folder, are flushed and
fsync'ed, then renamed over the target, so a crash leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from ._version import __version__
from .errors import ArtifactError, ConfigError

__all__ = ["FORMAT", "FORMAT_VERSION", "RunRecord", "write_run", "read_run", "load", "Run"]

FORMAT = "gmkit-run"
FORMAT_VERSION = 2  # 2: one optimiser state per named group (1: a single optimiser)


@attrs.define
class RunRecord:
    """The contents of a run file, in memory."""

    model: str
    plugin: str
    plugin_version: str
    config_class: str
    config: dict[str, Any]
    train_config: dict[str, Any]
    data: dict[str, Any]
    best: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor] | None = None
    ema: dict[str, torch.Tensor] | None = None
    optimizer: dict[str, dict[str, Any]] | None = None  # optimiser state by group name
    trainer: dict[str, Any] = attrs.field(factory=dict)
    history: dict[str, dict[str, np.ndarray]] = attrs.field(factory=dict)
    samples: dict[str, np.ndarray] = attrs.field(factory=dict)
    created: str = ""


# -- tensors -------------------------------------------------------------------------
def _put_tensor(group: Any, name: str, tensor: torch.Tensor) -> None:
    """Store with a Fletcher-32 checksum (a chunked layout, so a 0-d tensor is kept as 1 element plus its shape)."""
    t = tensor.detach().cpu()
    array = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    data = array.reshape(1) if array.ndim == 0 else array
    ds = group.create_dataset(name, data=data, fletcher32=data.size > 0)
    ds.attrs["dtype"] = str(t.dtype).removeprefix("torch.")
    if array.ndim == 0:
        ds.attrs["scalar"] = True


def _get_tensor(ds: Any) -> torch.Tensor:
    """Read a tensor; a checksum mismatch raises OSError, reported as a damaged file."""
    array = np.array(ds[()])
    t = torch.from_numpy(array.reshape(()) if ds.attrs.get("scalar") else array)
    dtype = ds.attrs.get("dtype")
    return t.to(getattr(torch, dtype)) if dtype else t


def _put_state(group: Any, state: dict[str, torch.Tensor]) -> None:
    for key, value in state.items():
        _put_tensor(group, key, value)


def _get_state(group: Any) -> dict[str, torch.Tensor]:
    return {key: _get_tensor(group[key]) for key in group}


def _put_optimizer(group: Any, state: dict[str, Any]) -> None:
    group.attrs["param_groups"] = json.dumps(state["param_groups"])
    for index, per_param in state["state"].items():
        sub = group.create_group(f"state/{index}")
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                _put_tensor(sub, name, value)
            else:
                sub.attrs[name] = json.dumps(value)


def _get_optimizer(group: Any) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for index, sub in group.get("state", {}).items():
        entry: dict[str, Any] = {name: _get_tensor(sub[name]) for name in sub}
        entry.update({name: json.loads(value) for name, value in sub.attrs.items()})
        state[int(index)] = entry
    return {"state": state, "param_groups": json.loads(group.attrs["param_groups"])}


def _put_tree(group: Any, tree: dict[str, Any]) -> None:
    for key, value in tree.items():
        if isinstance(value, dict):
            _put_tree(group.create_group(key), value)
        elif isinstance(value, torch.Tensor):
            _put_tensor(group, key, value)
        elif isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = json.dumps(value)


def _get_tree(group: Any) -> dict[str, Any]:
    import h5py

    out: dict[str, Any] = {k: json.loads(v) for k, v in group.attrs.items()}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _get_tree(item)
        elif "dtype" in item.attrs:
            out[key] = _get_tensor(item)
        else:
            out[key] = np.array(item[()])
    return out


# -- files ---------------------------------------------------------------------------
def write_run(path: str | Path, record: RunRecord) -> Path:
    """Write ``record`` to ``path`` atomically (temporary file, fsync, rename)."""
    import h5py

    path = Path(path)
    if not path.parent.exists():
        raise ArtifactError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(
                {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "gmkit_core_version": __version__,
                    "plugin": record.plugin,
                    "plugin_version": record.plugin_version,
                    "model": record.model,
                    "config_class": record.config_class,
                    "config": json.dumps(record.config),
                    "train_config": json.dumps(record.train_config),
                    "data": json.dumps(record.data),
                    "created": record.created or now,
                    "updated": now,
                }
            )
            _put_state(f.create_group("best"), record.best)
            for name, state in (("model", record.weights), ("ema", record.ema)):
                if state is not None:
                    _put_state(f.create_group(name), state)
            if record.optimizer is not None:
                group = f.create_group("optimizer")
                for name, state in record.optimizer.items():
                    _put_optimizer(group.create_group(name), state)
            _put_tree(f.create_group("trainer"), record.trainer)
            _put_tree(f.create_group("history"), record.history)
            _put_tree(f.create_group("samples"), record.samples)
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_run(path: str | Path, weights_only: bool = False) -> RunRecord:
    """Read a run file; a missing, truncated, foreign or newer file raises ArtifactError."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such run file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ArtifactError(f"{path}: not a gmkit run file (not readable as HDF5: truncated or foreign)") from None
    try:
        with f:
            if f.attrs.get("format") != FORMAT:
                raise ArtifactError(f"{path}: not a gmkit run file (HDF5 without the '{FORMAT}' format mark)")
            version = int(f.attrs.get("format_version", -1))
            if version > FORMAT_VERSION:
                raise ArtifactError(
                    f"{path}: run format version {version} is newer than this gmkit-core reads "
                    f"({FORMAT_VERSION}); upgrade gmkit-core"
                )
            a = f.attrs
            record = RunRecord(
                model=str(a["model"]),
                plugin=str(a["plugin"]),
                plugin_version=str(a["plugin_version"]),
                config_class=str(a["config_class"]),
                config=json.loads(a["config"]),
                train_config=json.loads(a["train_config"]),
                data=json.loads(a["data"]),
                best=_get_state(f["best"]),
                created=str(a["created"]),
            )
            if not weights_only:
                record.weights = _get_state(f["model"]) if "model" in f else None
                record.ema = _get_state(f["ema"]) if "ema" in f else None
                if "optimizer" in f:
                    opt = f["optimizer"]
                    record.optimizer = (
                        {"model": _get_optimizer(opt)}
                        if "param_groups" in opt.attrs  # version 1
                        else {name: _get_optimizer(opt[name]) for name in opt}
                    )
                record.trainer = _get_tree(f["trainer"]) if "trainer" in f else {}
                record.history = _get_tree(f["history"]) if "history" in f else {}
                record.samples = _get_tree(f["samples"]) if "samples" in f else {}
            return record
    except ArtifactError:
        raise
    except (KeyError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: damaged run file ({type(exc).__name__}: {exc})") from None


def build_model(record: RunRecord, state: dict[str, torch.Tensor], overrides: dict[str, Any] | None = None) -> Any:
    """Rebuild the registered model of ``record`` and load ``state`` into it."""
    from .config import make_config
    from .data import DataSpec
    from .registry import registry

    entry = registry.entry("model", record.model)
    cls = entry.load()
    config = make_config(cls.Config, {**record.config, **(overrides or {})}, owner=f"model '{record.model}'")
    model = cls(config, DataSpec.from_json(record.data["spec"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ArtifactError(f"run weights do not fit model '{record.model}' ({first})") from None
    return model.eval()


@attrs.define
class Run:
    """A trained run: ``run.model`` (best weights, eval mode), ``run.sample``, ``run.evaluate``."""

    path: Path
    record: RunRecord
    model: Any

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def data_source(self) -> str:
        return str(self.record.data["source"])

    def to(self, device: str | torch.device) -> Run:
        self.model.to(device)
        return self

    def sample(
        self, n: int, label: int | None = None, seed: int = 0, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``n`` samples (of class ``label`` for conditional models), seeded."""
        from .sampling import draw

        return draw(self, n, label=label, seed=seed, sampler=sampler, options=options)

    def evaluate(
        self,
        split: str = "test",
        data: str | None = None,
        batch_size: int = 256,
        metrics: str | Sequence[str] | None = None,
        **quality: Any,
    ) -> dict[str, Any]:
        """Likelihood figures on a split of the run's data (or of ``data``).

        ``metrics`` (e.g. ``"fd,kid,prdc"``) adds sample-quality figures against the
        same split; ``quality`` goes to :func:`gmkit_core.metrics.sample_quality` (``n``, ``seed``, ...).
        """
        from .evaluation import evaluate_metrics, evaluate_run

        if metrics:
            return evaluate_metrics(self, metrics, split=split, data=data, batch_size=batch_size, **quality)
        if quality:
            raise ConfigError(f"{', '.join(quality)}: sample-quality options need metrics=, e.g. metrics='fd,kid,prdc'")
        return evaluate_run(self, split=split, data=data, batch_size=batch_size)


def load(path: str | Path, device: str | torch.device = "cpu", **overrides: Any) -> Run:
    """Open a run file: the model with its best weights, ready to sample and evaluate.

    ``device``: ``cpu`` (default), ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (the best available).
    """
    from .devices import resolve_device

    target = resolve_device(device)
    record = read_run(path, weights_only=True)
    model = build_model(record, record.best, overrides).to(target)
    return Run(Path(path), record, model)
