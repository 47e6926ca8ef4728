"""``gmkit train``, ``sample``, ``eval``, ``info`` and ``bench``; torch loads inside each command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS"]

_RUN = click.Path(dir_okay=False)


def _split_overrides(assignments: tuple[str, ...], config: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--config`` TOML then ``--set`` pairs -> (model options, trainer options)."""
    from ..config import parse_assignments, read_toml

    model: dict[str, Any] = {}
    trainer: dict[str, Any] = {}
    if config:
        table = read_toml(config)
        trainer.update(table.pop("train", {}))
        model.update(table)
    for key, value in parse_assignments(assignments).items():
        if key.startswith("train."):
            trainer[key.removeprefix("train.")] = value
        else:
            model[key] = value
    return model, trainer


@click.command()
@click.argument("model")
@click.option("--data", "data", required=True, help="Dataset NAME[:ARG] or a file (see gmkit datasets).")
@click.option("--out", type=_RUN, help="Run file to write (RUN.h5); default with --resume: that file.")
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@click.option("--steps", type=int, help="Total steps of the run (with --resume: continue up to this).")
@click.option("--seed", type=int, help="Seed of weights, data order and noise.")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Model option, or trainer option as train.KEY (see gmkit options MODEL).",
)
@click.option("--config", type=click.Path(dir_okay=False), help="TOML file of options ([train] table for the trainer).")
@click.option("--resume", type=_RUN, help="Continue the run in this file.")
@click.option("--device", help="cpu, cuda, cuda:N, mps (default: best available).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--no-pictures", is_flag=True, help="Do not write loss-curve and sample PNGs.")
def train(
    model: str,
    data: str,
    out: str | None,
    force: bool,
    steps: int | None,
    seed: int | None,
    assignments: tuple[str, ...],
    config: str | None,
    resume: str | None,
    device: str | None,
    quiet: bool,
    no_pictures: bool,
) -> None:
    """Train MODEL on --data and write the run to --out."""
    from ..training import train as run_training

    if out is None and resume is None:
        raise click.UsageError("--out RUN.h5 is required (or --resume RUN.h5 to continue a run in place)")
    model_opts, train_opts = _split_overrides(assignments, config)
    result = run_training(
        model,
        data,
        out,
        steps=steps,
        seed=seed,
        overrides=model_opts,
        train_overrides=train_opts,
        resume=resume,
        device=device,
        quiet=quiet,
        pictures=not no_pictures,
        force=force,
    )
    out = str(result.run.path)
    o = result.outcome
    if not result.is_main:
        return
    for notice in result.notices:
        click.echo(f"note: {notice}", err=True)
    if result.notices and o.seconds == 0 and o.examples == 0:
        return
    if o.interrupted:
        click.echo(
            f"interrupted at step {o.step}; checkpoint written to {out}; "
            f"continue with: gmkit train {model} --data {data} --out {out} --resume {out}",
            err=True,
        )
        sys.exit(130)
    why = " (early stop)" if o.stopped_early else " (time budget)" if o.out_of_time else ""
    rate = o.examples / o.seconds if o.seconds else 0.0
    fitted = result.run.model.describe_fit()
    if fitted:
        click.echo(fitted, err=quiet)
    if o.step or not fitted:
        click.echo(
            f"trained {model} to step {o.step}{why} in {o.seconds:.1f}s ({rate:,.0f} examples/s); "
            f"best validation score {o.best_score:.5g} at step {o.best_step}",
            err=quiet,
        )
    click.echo(f"wrote {out}", err=quiet)
    picture_options = result.run.model.picture_sample_options
    for path in result.pictures:
        how = (
            f" (samples drawn with {', '.join(f'{k}={v}' for k, v in picture_options.items())})"
            if picture_options and str(path).endswith(".samples.png")
            else ""
        )
        click.echo(f"wrote {path}{how}", err=quiet)


@click.command()
@click.argument("run", type=_RUN)
@click.option("-n", "n", type=int, default=64, show_default=True, help="Number of samples.")
@click.option("--out", required=True, type=_RUN, help="FILE.png (grid or 2D scatter) or FILE.h5 / FILE.npz (array).")
@click.option("--label", type=int, help="Class to sample (conditional models).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sampler", help="A registered sampler (e.g. ddim, gmm); default: the model's own.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampler option (repeatable).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N, mps or auto (best available).")
def sample(
    run: str, n: int, out: str, label: int | None, seed: int, sampler: str | None, options: tuple[str, ...], device: str
) -> None:
    """Draw N samples from RUN and write them to --out."""
    import numpy as np

    from ..artifact import load
    from ..config import parse_assignments, parse_literal
    from ..errors import ConfigError
    from ..plots import save_samples_png

    path = Path(out)
    if path.suffix not in (".png", ".h5", ".npz"):
        raise ConfigError(f"--out {out}: write .png, .h5 or .npz")
    if not path.parent.exists():
        raise ConfigError(f"--out {out}: folder {path.parent} does not exist")
    r = load(run, device=device)
    values = {k: parse_literal(v) for k, v in parse_assignments(options).items()}
    samples = r.sample(n, label=label, seed=seed, sampler=sampler, **values).cpu()
    if path.suffix == ".png":
        save_samples_png(samples, r.model.data, path)
    elif path.suffix == ".npz":
        np.savez_compressed(path, samples=samples.numpy())
    else:
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("samples", data=samples.numpy())
            f.attrs.update(
                {"run": str(run), "model": r.record.model, "seed": seed, "label": -1 if label is None else label}
            )
    click.echo(f"wrote {n} samples to {out}")


@click.command("eval")
@click.argument("run", type=_RUN)
@click.option("--data", "data", help="Evaluate on this data instead of the run's own.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Evaluation-time model option (e.g. iwae_k=100)."
)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N, mps or auto (best available).")
@click.option(
    "--metrics",
    "metric_names",
    metavar="fd,kid,prdc",
    help="Also sample-quality metrics of --samples samples against --split (see docs/metrics.md).",
)
@click.option("--samples", type=int, default=1000, show_default=True, help="Samples drawn for --metrics.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples for --metrics.")
@click.option("--features", help="Extractor for --metrics: NAME, F.h5 or inception:PATH (default: digits / points).")
@click.option("--sampler", help="A registered sampler for --metrics (default: the model's own).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Sampler option (repeatable).")
def evaluate(
    run: str,
    data: str | None,
    split: str,
    as_json: bool,
    assignments: tuple[str, ...],
    batch_size: int,
    device: str,
    metric_names: str | None,
    samples: int,
    seed: int,
    features: str | None,
    sampler: str | None,
    options: tuple[str, ...],
) -> None:
    """Test NLL of RUN in nats (and bits/dim for images), exact or an upper bound; --metrics adds FD, KID, PRDC."""
    from ..artifact import load
    from ..config import parse_assignments, parse_literal
    from ..evaluation import evaluate_metrics

    r = load(run, device=device, **parse_assignments(assignments))
    if metric_names:
        sampler_options = {k: parse_literal(v) for k, v in parse_assignments(options).items()}
        result = evaluate_metrics(
            r,
            metric_names,
            split=split,
            data=data,
            batch_size=batch_size,
            n=samples,
            seed=seed,
            features=features,
            sampler=sampler,
            options=sampler_options,
        )
    else:
        result = r.evaluate(split=split, data=data, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=float))
        return
    kind = {
        "exact": "exact",
        "bound": "upper bound",
        "estimate": "estimate (neither exact nor a bound)",
        "none": "none (this model has no likelihood; judge it by sample quality: --metrics)",
    }[result["likelihood"]]
    click.echo(f"{result['model']} on {result['dataset']} ({split}, {result['n']} examples), likelihood: {kind}")
    skip = (
        "model",
        "dataset",
        "split",
        "n",
        "exact",
        "likelihood",
        "feature_extractor",
        "feature_sha256",
        "n_samples",
        "n_reference",
        "reference",
        "seed",
        "fd",
        "kid",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "class_accuracy",
    )
    for key, value in result.items():
        if key not in skip:
            click.echo(f"  {key:<22} {value:.4f}" if isinstance(value, float) else f"  {key:<22} {value}")
    if metric_names:
        from .metrics import echo_metrics

        click.echo(f"sample quality of {samples} samples (seed {seed}) against {result['reference']}:")
        echo_metrics(result)


@click.command()
@click.argument("run", type=_RUN)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def info(run: str, as_json: bool) -> None:
    """What RUN holds: model, plugin, versions, config, data, progress."""
    from ..artifact import read_run

    rec = read_run(run)
    t = rec.trainer
    n_params = sum(int(v.numel()) for k, v in rec.best.items() if v.is_floating_point())
    doc = {
        "model": rec.model,
        "plugin": rec.plugin,
        "plugin_version": rec.plugin_version,
        "config_class": rec.config_class,
        "config": rec.config,
        "train_config": rec.train_config,
        "data": rec.data,
        "created": rec.created,
        "step": int(t.get("step", 0)),
        "best_step": int(t.get("best_step", 0)),
        "best_validation_score": float(t.get("best_score", float("nan"))),
        "tensors": n_params,
        "has_ema": rec.ema is not None,
        "has_optimizer_state": rec.optimizer is not None,
    }
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for key, value in doc.items():
        click.echo(f"{key:<22} {json.dumps(value) if isinstance(value, dict) else value}")


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--data", "data", default="digits", show_default=True)
@click.option("--budget", type=float, default=60.0, show_default=True, help="Training seconds per model.")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="MODEL.KEY=VALUE|KEY=VALUE",
    help="Option for every model, or for one as MODEL.KEY=VALUE.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--markdown", is_flag=True, help="A Markdown table.")
@click.option("--overhead", is_flag=True, help="Also time the trainer against a minimal hand-written loop.")
@click.option(
    "--speed",
    is_flag=True,
    help="Instead: CPU seconds per training step under fp32, bf16, compile and compile+bf16.",
)
@click.option("--speed-steps", type=int, default=20, show_default=True, help="Timed steps per setting for --speed.")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Keep the run files here.")
@click.option("--metrics", "metric_names", metavar="fd,kid,prdc", help="Also sample-quality columns (docs/metrics.md).")
@click.option("--samples", type=int, default=1000, show_default=True, help="Samples per model for --metrics.")
@click.option("--features", help="Extractor for --metrics: NAME, F.h5 or inception:PATH.")
def bench(
    models: tuple[str, ...],
    data: str,
    budget: float,
    assignments: tuple[str, ...],
    seed: int,
    as_json: bool,
    markdown: bool,
    overhead: bool,
    speed: bool,
    speed_steps: int,
    out_dir: str | None,
    metric_names: str | None,
    samples: int,
    features: str | None,
) -> None:
    """Train each of MODELS for the same wall-clock budget and compare them on the test split."""
    from ..bench import benchmark, format_markdown, format_speed, format_table, speed_options, trainer_overhead

    if speed:
        progress = None if as_json else lambda line: click.echo(line, err=True)
        timed = speed_options(list(models), data, steps=speed_steps, assignments=assignments, progress=progress)
        click.echo(json.dumps({"data": data, "speed": timed}, indent=2) if as_json else format_speed(timed, data))
        return

    if metric_names:
        from ..metrics import parse_metrics

        parse_metrics(metric_names)  # a bad name fails before any training
    rows = benchmark(
        list(models),
        data,
        budget,
        assignments,
        seed=seed,
        out_dir=out_dir,
        progress=None if as_json else lambda line: click.echo(line, err=True),
        sample_metrics=metric_names,
        samples=samples,
        features=features,
    )
    doc: dict[str, Any] = {"data": data, "budget_s": budget, "results": rows}
    if overhead:
        doc["trainer_overhead"] = trainer_overhead(progress=None if as_json else lambda l: click.echo(l, err=True))
    failed = [row for row in rows if "error" in row]
    doc["results"] = [row for row in rows if "error" not in row]
    if failed:
        doc["failed"] = failed
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(format_markdown(doc) if markdown else format_table(doc))
    if failed:
        from ..errors import TrainingError

        raise TrainingError("; ".join(f"{row['model']} failed: {row['error']}" for row in failed))


COMMANDS = [train, sample, evaluate, info, bench]
