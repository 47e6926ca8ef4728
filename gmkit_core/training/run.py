"""``train(...)``: registry + data + trainer + run file, the machinery behind ``gmkit train``."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import torch

from ..artifact import Run, RunRecord, read_run, write_run
from ..config import config_to_dict, make_config
from ..data import load as load_data
from ..errors import ConfigError
from ..registry import registry
from .config import TrainConfig
from .trainer import Outcome, Snapshot

__all__ = ["train", "TrainResult"]


@attrs.define
class TrainResult:
    run: Run
    outcome: Outcome
    pictures: list[Path]
    is_main: bool = True


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0"


def train(model: str, data: str = "digits", out: str | Path = "run.h5", *, steps: int | None = None,
          seed: int | None = None, overrides: dict[str, Any] | None = None,
          train_overrides: dict[str, Any] | None = None, resume: str | Path | None = None,
          device: str | None = None, quiet: bool = False, pictures: bool = True) -> TrainResult:
    """Train ``model`` on ``data`` and write the run to ``out``.

    ``steps`` is the total step count of the run: with ``resume`` it continues a
    run that stopped earlier up to ``steps``. ``overrides`` set model options,
    ``train_overrides`` trainer options (see :class:`TrainConfig`).
    """
    entry = registry.entry("model", model)
    cls = entry.load()
    out = Path(out)
    previous = read_run(resume) if resume is not None else None
    if previous is not None:
        if previous.model != model:
            raise ConfigError(f"--resume {resume} holds a '{previous.model}' run, not '{model}'")
        if previous.data["source"] != data:
            raise ConfigError(f"--resume {resume} was trained on '{previous.data['source']}', not '{data}'")
        if overrides:
            raise ConfigError("model options cannot change on --resume; the run's own config is used")
    config = make_config(cls.Config, previous.config if previous else (overrides or {}), owner=f"model '{model}'")

    splits = {split: load_data(data, split) for split in ("train", "validation")}
    spec = splits["train"].spec
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
    torch.manual_seed(tconfig.seed)  # the initial weights are part of what the seed fixes
    net = cls(config, spec)
    record = RunRecord(
        model=model, plugin=entry.plugin, plugin_version=_version(entry.plugin),
        config_class=f"{cls.__module__}.{cls.Config.__qualname__}", config=config_to_dict(config),
        train_config=config_to_dict(tconfig), data={"source": data, "spec": spec.to_json()},
        best={}, created=previous.created if previous else "",
    )

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
            raise ConfigError(f"--resume {resume} has no trainer state to resume from")
        resume_snap = Snapshot(previous.weights, previous.best, previous.ema, previous.optimizer or {},
                               previous.trainer, previous.history)
    if not out.parent.exists():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    trainer = registry.get("trainer", tconfig.trainer, checkpoint=checkpoint,
                           samples=samples if tconfig.sample_every else None)
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
    return TrainResult(run, trainer.outcome, written, current.is_main)


