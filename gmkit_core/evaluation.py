"""Evaluating a run on a split: likelihood figures on the discrete data, exact or bound."""

from __future__ import annotations

from typing import Any

from .data import load
from .errors import DataError

__all__ = ["evaluate_run"]


def evaluate_run(run: Any, split: str = "test", data: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """``model.evaluate`` on ``split`` of the run's data (or ``data``), with what was evaluated."""
    source = data or run.data_source
    ds = load(source, split)
    spec = run.model.data
    if (ds.spec.kind, tuple(ds.spec.shape), ds.spec.levels) != (spec.kind, tuple(spec.shape), spec.levels):
        raise DataError(
            f"{source} ({ds.spec.kind} {tuple(ds.spec.shape)}, levels {ds.spec.levels}) does not match the data "
            f"this run was trained on ({spec.kind} {tuple(spec.shape)}, levels {spec.levels})"
        )
    result = {"model": run.record.model, "dataset": source, "split": split}
    result.update(run.model.evaluate(ds, batch_size))
    result.setdefault("exact", run.model.likelihood == "exact")
    result["likelihood"] = run.model.likelihood
    return result
