"""``gmkit plugins``, ``gmkit models``, ``gmkit datasets``: what is installed.

``plugins`` and ``datasets`` import no torch; ``models`` imports the model
classes, which declare their likelihood kind and conditionality.
"""

from __future__ import annotations

import json
from typing import Any

import click

from ..registry import registry

__all__ = ["COMMANDS"]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def plugins(as_json: bool) -> None:
    """Installed plugins: name, version, what each registers, load errors."""
    infos = registry.plugins()
    rows = [
        [
            p.name,
            p.version,
            f"{len(p.registers)} {'entry' if len(p.registers) == 1 else 'entries'}",
            p.error
            or (f"ok; refused (also claimed by another plugin): {', '.join(p.conflicts)}" if p.conflicts else "ok"),
        ]
        for p in infos
    ]
    _emit(as_json, [p.to_json() for p in infos], _table(rows, ["plugin", "version", "registers", "status"]))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def models(as_json: bool) -> None:
    """Registered models: name, plugin, family, likelihood (exact|bound|estimate|none), conditional."""
    entries = registry.entries("model")
    listed = [e.to_json() for e in entries]
    rows = [
        [
            e["name"],
            e["plugin"],
            e["family"],
            e["likelihood"],
            "yes" if e["conditional"] else "no",
            e.get("error", e["description"]),
        ]
        for e in listed
    ]
    text = (
        _table(rows, ["model", "plugin", "family", "likelihood", "conditional", "description"])
        if rows
        else "no models installed: pip install gmkit-vae (or another gmkit-* plugin)"
    )
    _emit(as_json, listed, text)


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def datasets(ctx: click.Context, as_json: bool) -> None:
    """Registered datasets and file loaders (see also: gmkit datasets export)."""
    if ctx.invoked_subcommand is not None:
        return
    entries = registry.entries("dataset")
    rows = [[e.name, e.data_kind, e.plugin, e.description] for e in entries]
    _emit(as_json, [e.to_json() for e in entries], _table(rows, ["dataset", "kind", "plugin", "description"]))


@datasets.command("export")
@click.argument("source")
@click.option(
    "--split",
    default="all",
    show_default=True,
    type=click.Choice(["all", "train", "validation", "test"]),
    help="Which split to write.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="FILE.npz or FILE.h5")
def export(source: str, split: str, out: str) -> None:
    """Write SOURCE's splits in the documented layout (docs/data.md) that the loaders read back."""
    from ..data import SPLITS, load
    from ..data.files import export as write

    chosen = SPLITS if split == "all" else (split,)
    path = write([load(source, s) for s in chosen], out)
    click.echo(f"wrote {path} ({', '.join(chosen)})")


@click.command("options")
@click.argument("model")
@click.option("--data", help="Show the defaults MODEL takes on this data (NAME[:ARG] or a file): some depend on it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def options(model: str, data: str | None, as_json: bool) -> None:
    """Config options of MODEL (for --set key=value) and its trainer defaults."""
    from ..config import describe_options
    from ..training.config import TrainConfig

    cls = registry.entry("model", model).load()
    rows = describe_options(cls.Config)
    train_defaults = dict(cls.train_defaults)
    if data is not None:
        from ..data import load

        spec = load(data, "train").spec
        config = cls.configure(spec, owner=f"model '{model}'")
        rows = [{**r, "default": getattr(config, r["name"])} for r in rows]
        train_defaults = cls.defaults_for(spec)
    trainer = [
        {**r, "name": f"train.{r['name']}", "default": train_defaults.get(r["name"], r["default"])}
        for r in describe_options(TrainConfig)
    ]
    text = _table(
        [[r["name"], str(r["default"]), "|".join(map(str, r["choices"] or [])), r["help"]] for r in rows + trainer],
        ["option", "default", "choices", "help"],
    )
    _emit(as_json, {"model": rows, "train": trainer}, text)


COMMANDS = [plugins, models, datasets, options]
