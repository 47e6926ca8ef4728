"""``train(...)``: registry + data + trainer + run file, the machinery behind ``gmkit train``."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import torch

from ..artifact import Run, RunRecord, build_model, read_run, write_run
from ..config import config_to_dict, make_config
from ..data import Dataset, absolute_source
from ..data import load as load_data
from ..data.files import from_arrays
from ..errors import ConfigError
from ..registry import registry
from ..runfile import check_run_path, check_writable, lock
from .config import TrainConfig
from .trainer import Outcome, Snapshot

__all__ = ["train", "TrainResult"]


@attrs.define
class TrainResult:
    run: Run
    outcome: Outcome
    pictures: list[Path]
    is_main: bool = True
    #: lines the user should read (e.g. resuming a finished run)
    notices: list[str] = attrs.field(factory=list)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0"


IN_MEMORY = "<in-memory arrays>"


def _splits(data: str | Mapping[str, Any]) -> tuple[dict[str, Dataset], str, str]:
    """The train and validation splits of ``data``, its source as stored (absolute paths) and as given."""
    if isinstance(data, str):
        return ({split: load_data(data, split) for split in ("train", "validation")}, absolute_source(data), data)
    if not isinstance(data, Mapping):
        raise ConfigError(
            "data must be a source string (e.g. 'digits', 'npz:my.npz') or a mapping of arrays "
            "in the documented layout (x_train, y_train, x_validation, ...; docs/data.md)"
        )
    arrays = dict(data)
    splits = {"train": from_arrays(arrays, "train", "arrays", IN_MEMORY)}
    if "x_validation" in arrays or "x" in arrays:
        splits["validation"] = from_arrays(arrays, "validation", "arrays", IN_MEMORY)
    return splits, IN_MEMORY, IN_MEMORY


def _check_resume(previous: RunRecord, resume: Path, model: str, source: str, overrides: dict[str, Any] | None) -> None:
    if previous.model != model:
        raise ConfigError(f"--resume {resume} holds a '{previous.model}' run, not '{model}'")
    stored = previous.data["source"]
    if source != IN_MEMORY and source not in (stored, previous.data.get("given", stored)):
        raise ConfigError(f"--resume {resume} was trained on '{stored}', not '{source}'")
    if overrides:
        raise ConfigError("model options cannot change on --resume; the run's own config is used")


def train(
    model: str,
    data: str | Mapping[str, Any] = "digits",
    out: str | Path | None = None,
    *,
    steps: int | None = None,
    seed: int | None = None,
    overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    device: str | None = None,
    quiet: bool = False,
    pictures: bool = True,
    force: bool = False,
) -> TrainResult:
    """Train ``model`` on ``data`` and write the run to ``out`` (default: the ``resume`` file).

    ``data`` is a source string (``"digits"``, ``"npz:my.npz"``; relative paths
    are stored absolute) or, from Python, a mapping of arrays in the layout of
    docs/data.md (``{"x_train": X, "y_train": y, "x_validation": ...}``).
    ``steps`` is the total step count of the run: with ``resume`` it continues a
    run that stopped earlier up to ``steps``. ``overrides`` set model options,
    ``train_overrides`` trainer options (see :class:`TrainConfig`). An existing
    ``out`` is replaced only with ``force`` or when it is the run being resumed.
    """
    target = out if out is not None else resume
    if target is None:
        raise ConfigError("--out RUN.h5 is required (or --resume RUN.h5 to continue a run in place)")
    out = check_run_path(target)
    resume = check_run_path(resume, "--resume") if resume is not None else None
    if out.exists() and not force and (resume is None or out.resolve() != resume.resolve()):
        raise ConfigError(f"--out {out} exists; pass --force to replace it, or --resume {out} to continue it")
    check_writable(out)
    entry = registry.entry("model", model)
    cls = entry.load()
    previous = read_run(resume) if resume is not None else None
    splits, source, given = _splits(data)
    if previous is not None:
        _check_resume(previous, out, model, source, overrides)
    spec = splits["train"].spec
    owner = f"model '{model}'"
    config = make_config(cls.Config, previous.config, owner) if previous else cls.configure(spec, overrides, owner)
    base = cls.defaults_for(spec)
    if previous is not None:
        base.update(previous.train_config)
    base.update(train_overrides or {})
    for key, value in (("steps", steps), ("seed", seed), ("device", device)):
        if value is not None:
            base[key] = value
    if quiet:
        base["quiet"] = True
    tconfig = make_config(TrainConfig, base, owner="trainer")
    notices = _resume_notices(previous, tconfig) if previous is not None else []
    if previous is not None and int(previous.trainer.get("step", 0)) >= tconfig.steps:
        run = Run(out, previous, build_model(previous, previous.best))
        done = Outcome(
            step=int(previous.trainer["step"]),
            best_step=int(previous.trainer.get("best_step", 0)),
            best_score=float(previous.trainer.get("best_score", math.inf)),
        )
        return TrainResult(run, done, [], notices=notices)
    torch.manual_seed(tconfig.seed)  # the initial weights are part of what the seed fixes
    net = cls(config, spec)
    record = RunRecord(
        model=model,
        plugin=entry.plugin,
        plugin_version=_version(entry.plugin),
        config_class=f"{cls.__module__}.{cls.Config.__qualname__}",
        config=config_to_dict(config),
        train_config=config_to_dict(tconfig),
        data={"source": source, "given": given, "spec": spec.to_json()},
        best={},
        created=previous.created if previous else "",
    )
    with lock(out) if _rank() == 0 else contextlib.nullcontext():
        return _fit(net, record, splits, tconfig, previous, out, pictures, notices)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _resume_notices(previous: RunRecord, tconfig: TrainConfig) -> list[str]:
    """What a user must know about continuing ``previous`` to ``tconfig.steps``."""
    reached, planned = int(previous.trainer.get("step", 0)), int(previous.train_config.get("steps", 0))
    if reached >= tconfig.steps:
        return [
            f"the run already reached step {reached} (--steps {tconfig.steps}); nothing to train: pass a larger "
            "--steps to continue it"
        ]
    if reached >= planned and tconfig.schedule == "cosine":
        return [
            f"extending a finished run from {reached} to {tconfig.steps} steps: the cosine learning-rate schedule "
            "now spans the new total, so this is not bit-identical to a run trained to that many steps from the "
            "start (resuming an interrupted run is)"
        ]
    return []


def _fit(
    net: Any,
    record: RunRecord,
    splits: dict[str, Dataset],
    tconfig: TrainConfig,
    previous: RunRecord | None,
    out: Path,
    pictures: bool,
    notices: list[str],
) -> TrainResult:
    def checkpoint(snap: Snapshot) -> None:
        record.best, record.weights, record.ema = snap.best, snap.weights, snap.ema
        record.optimizer, record.trainer, record.history = snap.optimizer, snap.trainer, snap.history
        write_run(out, record)

    def samples(step: int, module: Any) -> None:
        from ..plots import sample_picture

        sample_picture(module, out.with_name(f"{out.stem}.step{step:07d}.png"), seed=tconfig.seed)

    resume_snap = None
    if previous is not None:
        if previous.weights is None or not previous.trainer:
            raise ConfigError(f"--resume {out} has no trainer state to resume from")
        resume_snap = Snapshot(
            previous.weights, previous.best, previous.ema, previous.optimizer or {}, previous.trainer, previous.history
        )
    trainer = registry.get(
        "trainer", tconfig.trainer, checkpoint=checkpoint, samples=samples if tconfig.sample_every else None
    )
    fitted = trainer.fit(net, splits, tconfig, resume=resume_snap)
    run = Run(out, record, fitted)
    written: list[Path] = []
    from .distributed import world

    current = world()
    if pictures and current.is_main and not trainer.outcome.interrupted:
        from ..plots import run_pictures

        written = run_pictures(run, splits["train"])
    if current.distributed:
        import torch.distributed as dist

        dist.barrier()  # rank 0 has written the run file before any process leaves
        dist.destroy_process_group()
    return TrainResult(run, trainer.outcome, written, current.is_main, notices)
