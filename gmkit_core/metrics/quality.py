"""Sample quality of a run (or of one data set against another) in one feature space.

:func:`sample_quality` draws ``n`` samples from a run with a fixed seed
(class-balanced labels for conditional models), maps them and the reference
split through a feature extractor and computes the requested metrics;
:func:`compare_data` does the same for two data sets (the real-vs-real floor).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from ..data import SPLITS, Dataset, DataSpec, load
from ..errors import ConfigError, DataError
from ..features import FeatureExtractor, resolve
from .frechet import frechet_distance
from .kid import kernel_distance
from .prdc import prdc

__all__ = [
    "METRICS",
    "parse_metrics",
    "feature_metrics",
    "sample_quality",
    "compare_data",
    "parse_source_split",
    "draw_samples",
]

#: metric name -> the keys it adds to a result
METRICS = {"fd": ("fd",), "kid": ("kid", "kid_std"), "prdc": ("precision", "recall", "density", "coverage")}


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """``"fd,kid,prdc"`` (or a sequence; ``all``) -> the metric names, checked."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [m for m in names if m]
    if names == ["all"]:
        return tuple(METRICS)
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(
            f"--metrics: unknown metric {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"metrics: {', '.join(METRICS)} (or all)"
        )
    return tuple(dict.fromkeys(names))


def _check_sizes(n_samples: int, n_reference: int, metrics: tuple[str, ...], k: int) -> None:
    if "prdc" in metrics and min(n_samples, n_reference) <= k:
        raise DataError(
            f"prdc with k={k} needs more than {k} examples in each set, got {n_samples} samples and "
            f"{n_reference} reference examples; raise --samples or drop prdc"
        )
    if min(n_samples, n_reference) < 2:
        raise DataError(
            f"sample-quality metrics need at least 2 examples in each set, got {n_samples} samples and "
            f"{n_reference} reference examples"
        )


def feature_metrics(
    reference: Tensor,
    samples: Tensor,
    metrics: Iterable[str] = tuple(METRICS),
    k: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """The requested metrics of ``samples`` ``(M, d)`` against ``reference`` ``(N, d)`` features."""
    names = parse_metrics(metrics)
    _check_sizes(samples.shape[0], reference.shape[0], names, k)
    out: dict[str, float] = {}
    if "fd" in names:
        out["fd"] = frechet_distance(reference, samples)
    if "kid" in names:
        out["kid"], out["kid_std"] = kernel_distance(reference, samples, kid_subsets, kid_subset_size, seed)
    if "prdc" in names:
        out.update(prdc(reference, samples, k))
    return out


def _same_data(spec: DataSpec, other: DataSpec, what: str) -> None:
    if (spec.kind, tuple(spec.shape), spec.levels) != (other.kind, tuple(other.shape), other.levels):
        raise DataError(
            f"{what} ({other.kind} {tuple(other.shape)}, levels {other.levels}) does not match "
            f"{spec.name} ({spec.kind} {tuple(spec.shape)}, levels {spec.levels})"
        )


def draw_samples(
    run: Any,
    n: int,
    seed: int = 0,
    sampler: str | None = None,
    options: dict[str, Any] | None = None,
    batch_size: int = 500,
) -> tuple[Tensor, Tensor | None]:
    """``n`` samples of ``run`` in chunks of ``batch_size``, each chunk seeded from ``seed``.

    A conditional model gets class-balanced labels ``i mod K`` (sorted by class);
    returns ``(samples, labels)``, ``labels`` None for an unconditional model.
    """
    if n < 1:
        raise ConfigError(f"--samples must be at least 1, got {n}")
    if batch_size < 1:
        raise ConfigError(f"sampling batch size must be at least 1, got {batch_size}")
    model = run.model
    classes: int | None = model.data.num_classes if model.conditional else None
    labels = torch.arange(n) % classes if classes else None
    counts = [n] if classes is None else [n // classes + (c < n % classes) for c in range(classes)]
    chunks = [
        (c, min(batch_size, count - start)) for c, count in enumerate(counts) for start in range(0, count, batch_size)
    ]
    seeds = torch.randint(0, 2**62, (len(chunks),), generator=torch.Generator().manual_seed(seed)).tolist()
    parts = [
        run.sample(size, label=c if labels is not None else None, seed=s, sampler=sampler, **(options or {})).cpu()
        for (c, size), s in zip(chunks, seeds, strict=True)
    ]
    return torch.cat(parts), (labels.sort().values if labels is not None else None)


def _describe(extractor: FeatureExtractor) -> dict[str, Any]:
    return {"feature_extractor": extractor.name, "feature_sha256": extractor.sha256}


def sample_quality(
    run: Any,
    metrics: str | Iterable[str] = tuple(METRICS),
    n: int = 1000,
    *,
    seed: int = 0,
    features: str | None = None,
    sampler: str | None = None,
    options: dict[str, Any] | None = None,
    split: str = "test",
    data: str | None = None,
    k: int = 5,
    kid_subsets: int = 100,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Metrics of ``n`` seeded samples of ``run`` against ``split`` of its data (or of ``data``).

    Returns ``fd``, ``kid``, ``kid_std``, ``precision``, ``recall``, ``density``,
    ``coverage`` (those requested), ``class_accuracy`` for a conditional model
    with a classifier extractor, ``feature_extractor``, ``feature_sha256``,
    ``n_samples``, ``n_reference``, ``seed``.
    """
    names = parse_metrics(metrics)
    source = data or run.data_source
    reference = load(source, split)
    spec = run.model.data
    _same_data(spec, reference.spec, f"{source} ({split})")
    extractor = resolve(features, spec)
    _check_sizes(n, len(reference), names, k)
    samples, labels = draw_samples(run, n, seed, sampler, options, batch_size)
    result: dict[str, Any] = {
        **_describe(extractor),
        "n_samples": n,
        "n_reference": len(reference),
        "reference": f"{source} ({split})",
        "seed": seed,
    }
    result.update(feature_metrics(extractor(reference.x), extractor(samples), names, k, kid_subsets, seed=seed))
    if labels is not None and extractor.num_classes == spec.num_classes:
        result["class_accuracy"] = float((extractor.logits(samples).argmax(1) == labels).double().mean())
    return result


def parse_source_split(text: str, default: str = "test") -> tuple[str, str]:
    """``"SRC[:SPLIT]"`` -> (source, split): a trailing ``:train``, ``:validation`` or ``:test`` is the split."""
    head, sep, tail = text.rpartition(":")
    return (head, tail) if sep and tail in SPLITS else (text, default)


def _subset(ds: Dataset, n: int | None, seed: int) -> Tensor:
    if n is None or n >= len(ds):
        return ds.x
    if n < 1:
        raise ConfigError(f"--samples must be at least 1, got {n}")
    return ds.x[torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]]


def compare_data(
    source: str,
    against: str,
    split: str = "train",
    against_split: str = "test",
    metrics: str | Iterable[str] = tuple(METRICS),
    *,
    n: int | None = None,
    seed: int = 0,
    features: str | None = None,
    k: int = 5,
    kid_subsets: int = 100,
) -> dict[str, Any]:
    """Metrics of ``split`` of ``source`` (``n`` random examples, or all) against ``against_split`` of ``against``."""
    names = parse_metrics(metrics)
    first, reference = load(source, split), load(against, against_split)
    _same_data(reference.spec, first.spec, f"{source} ({split})")
    extractor = resolve(features, reference.spec)
    x = _subset(first, n, seed)
    _check_sizes(x.shape[0], len(reference), names, k)
    result: dict[str, Any] = {
        "data": f"{source} ({split})",
        "reference": f"{against} ({against_split})",
        **_describe(extractor),
        "n_samples": x.shape[0],
        "n_reference": len(reference),
        "seed": seed,
    }
    result.update(feature_metrics(extractor(reference.x), extractor(x), names, k, kid_subsets, seed=seed))
    return result
