"""``gmkit metrics`` (two data sets compared in a feature space) and ``gmkit features`` (list, fit)."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["COMMANDS", "echo_metrics"]

_SPLITS = click.Choice(["train", "validation", "test"])
#: text-table order and number format of the metric keys
_FORMATS = {
    "fd": ".4f",
    "kid": ".5f",
    "kid_std": ".5f",
    "precision": ".4f",
    "recall": ".4f",
    "density": ".4f",
    "coverage": ".4f",
    "class_accuracy": ".4f",
}


def echo_metrics(result: dict[str, Any]) -> None:
    """The metric keys of ``result`` as indented ``name value`` lines, then the extractor."""
    for key, spec in _FORMATS.items():
        if key in result:
            click.echo(f"  {key:<22} {format(result[key], spec)}")
    click.echo(f"  {'n_samples':<22} {result['n_samples']}  (reference: {result['n_reference']})")
    sha = result.get("feature_sha256")
    click.echo(
        f"  {'feature_extractor':<22} {result['feature_extractor']}" + (f"  sha256 {sha[:16]}..." if sha else "")
    )


@click.command("metrics")
@click.option("--data", "data", required=True, help="Data set NAME[:ARG] or file whose examples are scored.")
@click.option("--split", default="train", show_default=True, type=_SPLITS, help="Split of --data.")
@click.option(
    "--against",
    required=True,
    metavar="SRC[:SPLIT]",
    help="Reference data; a trailing :train, :validation or :test picks its split (default test), "
    "e.g. digits:test or npz:/data/x.npz:validation.",
)
@click.option("--metrics", "names", default="fd,kid,prdc", show_default=True, help="Comma-separated: fd, kid, prdc.")
@click.option(
    "--features",
    help="Extractor: NAME, F.h5 (gmkit features fit) or inception:PATH; default: "
    "points for vectors, digits for images.",
)
@click.option("--samples", type=int, help="Use this many random examples of --data (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of subsets (--samples, KID).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def metrics(
    data: str, split: str, against: str, names: str, features: str | None, samples: int | None, seed: int, as_json: bool
) -> None:
    """Sample-quality metrics of one data set against another (e.g. the real-vs-real floor).

    Example: gmkit metrics --data digits --split train --against digits:test
    """
    from ..metrics import compare_data, parse_source_split

    source, against_split = parse_source_split(against)
    result = compare_data(data, source, split, against_split, names, n=samples, seed=seed, features=features)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['data']} against {result['reference']}")
    echo_metrics(result)


@click.group("features")
def features() -> None:
    """Feature extractors for sample-quality metrics (gmkit eval --metrics, gmkit metrics)."""


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def list_features(as_json: bool) -> None:
    """Registered feature extractors."""
    from ..registry import registry

    rows = [e.to_json() for e in registry.entries("feature")]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['plugin']:<14}  {r['description']}")


@features.command("fit")
@click.option("--data", "data", required=True, help="Labelled images NAME[:ARG] or file (train/validation/test).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Feature file to write (F.h5).")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def fit(data: str, out: str, steps: int, seed: int, as_json: bool) -> None:
    """Train a small conv classifier on --data (train split) as a feature extractor; use it with --features F.h5."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..features.fit import fit_file

    if not out.endswith((".h5", ".hdf5")):
        raise ConfigError(f"--out {out}: a feature file ends in .h5")
    if not Path(out).resolve().parent.exists():
        raise ConfigError(f"--out {out}: folder {Path(out).parent} does not exist")
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    info = fit_file(data, out, steps=steps, seed=seed)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(
        f"trained a feature classifier on {data}: test accuracy {info['test_accuracy']:.4f} "
        f"({info['test_examples']} examples), validation {info['validation_accuracy']:.4f}; "
        f"wrote {out} (sha256 {info['sha256']})"
    )


COMMANDS = [metrics, features]
