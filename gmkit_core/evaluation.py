"""Evaluating a run on a split: likelihood figures on the discrete data, exact or bound, and sample quality."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .data import load
from .errors import DataError
from .interfaces import likelihood_of

__all__ = ["evaluate_run", "evaluate_metrics"]


def evaluate_run(run: Any, split: str = "test", data: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """``model.evaluate`` on ``split`` of the run's data (or ``data``), with what was evaluated."""
    source = data or run.data_source
    try:
        ds = load(source, split)
    except DataError as exc:
        if data is not None:
            raise
        raise DataError(
            f"this run's data '{source}' cannot be loaded here ({exc}); evaluate on a copy with --data SRC"
        ) from None
    spec = run.model.data
    if (ds.spec.kind, tuple(ds.spec.shape), ds.spec.levels) != (spec.kind, tuple(spec.shape), spec.levels):
        raise DataError(
            f"{source} ({ds.spec.kind} {tuple(ds.spec.shape)}, levels {ds.spec.levels}) does not match the data "
            f"this run was trained on ({spec.kind} {tuple(spec.shape)}, levels {spec.levels})"
        )
    result = {"model": run.record.model, "dataset": source, "split": split}
    result.update(run.model.evaluate(ds, batch_size))
    kind = likelihood_of(run.model)
    result["likelihood"], result["exact"] = kind, kind == "exact"
    return result


def evaluate_metrics(
    run: Any,
    metrics: str | Iterable[str] = ("fd", "kid", "prdc"),
    split: str = "test",
    data: str | None = None,
    batch_size: int = 256,
    **quality: Any,
) -> dict[str, Any]:
    """:func:`evaluate_run` plus :func:`gmkit_core.metrics.sample_quality` against the same split.

    ``quality``: ``n``, ``seed``, ``features``, ``sampler``, ``options``, ... of ``sample_quality``.
    A model without a likelihood gets the metrics and no NLL keys.
    """
    from .metrics import parse_metrics, sample_quality

    names = parse_metrics(metrics)  # a bad name fails before the likelihood pass
    result = evaluate_run(run, split=split, data=data, batch_size=batch_size)
    result.update(sample_quality(run, names, split=split, data=data, **quality))
    return result
