"""``gmkit bench``: models trained for the same wall-clock budget, compared on one table.

Also measures the trainer's own overhead: the same model, data and batches
stepped by :class:`~gmkit_core.training.DefaultTrainer` and by a minimal
hand-written PyTorch loop.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import parse_assignments
from .errors import ConfigError, GmkitError
from .interfaces import likelihood_of
from .memory import peak_mib, reset_peak

__all__ = ["benchmark", "trainer_overhead", "speed_options", "format_table", "format_markdown", "format_speed"]


def _per_model(assignments: tuple[str, ...], models: list[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {m: ({}, {}) for m in models}
    for key, value in parse_assignments(assignments).items():
        head, _, rest = key.partition(".")
        targets = [head] if head in out and rest else models
        name = rest if head in out and rest else key
        for m in targets:
            model_opts, train_opts = out[m]
            if name.startswith("train."):
                train_opts[name.removeprefix("train.")] = value
            else:
                model_opts[name] = value
    return out


def benchmark(
    models: list[str],
    data: str,
    budget: float,
    assignments: tuple[str, ...] = (),
    seed: int = 0,
    out_dir: str | None = None,
    progress: Callable[[str], None] | None = None,
    sample_metrics: str | None = None,
    samples: int = 1000,
    features: str | None = None,
) -> list[dict[str, Any]]:
    """Train each model for at most ``budget`` seconds (its default steps otherwise), best on validation kept.

    Each row also holds the CPU seconds of the training call (``train_cpu_s``; all threads, so
    comparable on a loaded machine) and the peak memory of training, evaluation and sampling
    (``peak_mib``: device memory on CUDA, resident set size on the CPU; see :mod:`gmkit_core.memory`).
    ``sample_metrics`` (e.g. ``"fd,kid,prdc"``) adds sample-quality columns: ``samples``
    samples (seed ``seed``) against the test split, in the ``features`` space.
    """
    from .metrics import parse_metrics, sample_quality

    names = parse_metrics(sample_metrics) if sample_metrics else ()
    from .training import train

    if not budget > 0:
        raise ConfigError(f"--budget must be a positive number of seconds, got {budget:g}")
    options = _per_model(assignments, models)
    _check_pairings(models, data, options)  # every name and model/data pairing, before any training
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out_dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in models:
            model_opts, train_opts = options[name]
            if progress:
                progress(f"bench: training {name} on {data} for up to {budget:g}s")
            measured = {
                d: reset_peak(torch.device(d)) for d in ("cpu", "cuda") if d == "cpu" or torch.cuda.is_available()
            }
            cpu_start = time.process_time()
            try:
                result = train(
                    name,
                    data,
                    folder / f"{name}.h5",
                    seed=seed,
                    overrides=model_opts,
                    force=True,
                    train_overrides={**train_opts, "max_minutes": budget / 60},
                    quiet=True,
                    pictures=False,
                )
            except GmkitError as exc:  # keep what finished; the CLI reports this row's error
                rows.append({"model": name, "error": str(exc)})
                continue
            model, outcome = result.run.model, result.outcome
            train_cpu_s = time.process_time() - cpu_start
            metrics = result.run.evaluate("test")
            device = next(model.parameters()).device
            generator = torch.Generator(device).manual_seed(seed)
            start = time.perf_counter()
            with torch.no_grad():
                model.sample(64, generator=generator)
            sample_s = time.perf_counter() - start
            peak = peak_mib(device) if measured.get(device.type) else None
            quality: dict[str, Any] = {}
            if names:
                if progress:
                    progress(f"bench: {', '.join(names)} of {name} from {samples} samples")
                quality = sample_quality(result.run, names, n=samples, seed=seed, features=features)
            rows.append(
                {
                    "model": name,
                    "steps": outcome.step,
                    "best_step": outcome.best_step,
                    "train_s": round(outcome.seconds, 1),
                    "train_cpu_s": round(train_cpu_s, 1),
                    "nll_nats": metrics.get("nll_nats"),
                    "bits_per_dim": metrics.get("bits_per_dim"),
                    "likelihood": likelihood_of(result.run.model),
                    "train_examples_per_s": round(outcome.examples / outcome.seconds) if outcome.seconds else None,
                    "sample_64_s": round(sample_s, 3),
                    "peak_mib": round(peak) if peak is not None else None,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    **{k: v for k, v in metrics.items() if k.startswith("iwae_")},
                    **{k: v for k, v in quality.items() if k not in ("seed", "reference")},
                }
            )
    return rows


def _check_pairings(models: list[str], data: str, options: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Build every model (and its trainer settings) on ``data``'s spec: unknown names and bad pairings fail here."""
    from .config import make_config
    from .data import load
    from .registry import registry
    from .training import TrainConfig

    spec = load(data, "train").spec
    for name in models:
        model_opts, train_opts = options[name]
        cls = registry.entry("model", name).load()
        try:
            cls(cls.configure(spec, model_opts, owner=f"model '{name}'"), spec)
        except GmkitError as exc:
            raise ConfigError(f"{name} cannot be benchmarked on {data}: {exc}") from None
        make_config(TrainConfig, {**cls.defaults_for(spec), **train_opts}, owner=f"trainer of '{name}'")


def trainer_overhead(
    model: str = "vae",
    data: str = "digits",
    steps: int = 1500,
    batch_size: int = 128,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Median time ratio (trainer loop) / (hand-written loop) over ``repeats`` alternating runs."""
    from .data import load
    from .registry import registry
    from .training import DefaultTrainer, TrainConfig

    train_ds = load(data, "train")
    config = TrainConfig(
        steps=steps, batch_size=batch_size, eval_every=0, checkpoint_every=0, quiet=True, device="cpu", lr=1e-3
    )

    def fresh() -> Any:
        torch.manual_seed(0)
        return registry.get("model", model, data=train_ds.spec)

    def by_hand() -> float:
        net = fresh()
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        order = torch.Generator().manual_seed(0)
        perm, cursor = torch.randperm(len(train_ds), generator=order), 0
        net.train()
        start = time.perf_counter()
        for _ in range(steps):
            if cursor + batch_size > len(perm):
                perm, cursor = torch.randperm(len(train_ds), generator=order), 0
            batch = train_ds.batch(perm[cursor : cursor + batch_size])
            cursor += batch_size
            loss = net.loss(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    def by_trainer() -> float:
        trainer = DefaultTrainer()
        trainer.fit(fresh(), {"train": train_ds}, config)
        return trainer.outcome.seconds

    ratios, hand_times, trainer_times = [], [], []
    for i in range(repeats):
        hand, ours = by_hand(), by_trainer()
        hand_times.append(hand)
        trainer_times.append(ours)
        ratios.append(ours / hand)
        if progress:
            progress(f"bench: overhead run {i + 1}/{repeats}: trainer {ours:.2f}s, hand loop {hand:.2f}s")
    return {
        "model": model,
        "data": data,
        "steps": steps,
        "batch_size": batch_size,
        "hand_loop_s": round(statistics.median(hand_times), 3),
        "trainer_s": round(statistics.median(trainer_times), 3),
        "ratio": round(statistics.median(ratios), 4),
        "threads": torch.get_num_threads(),
    }


#: The trainer's speed settings that ``speed_options`` compares, each against the first.
SPEED_SETTINGS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "compile": {"compile": True},
    "compile+bf16": {"compile": True, "precision": "bf16"},
}


def speed_options(
    models: list[str],
    data: str,
    steps: int = 20,
    warmup: int = 3,
    assignments: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
    settings: tuple[str, ...] = tuple(SPEED_SETTINGS),
) -> list[dict[str, Any]]:
    """CPU seconds per training step of each model under each of ``settings`` (:data:`SPEED_SETTINGS`).

    A step's cost is ``(t(warmup + steps) - t(warmup)) / steps`` from two fresh runs of
    the trainer after a discarded run of ``warmup`` steps (which fills the compiler's
    cache), so compilation and the first steps' allocations cancel; ``t`` is the
    process's CPU time (all threads), which a loaded machine does not inflate as it
    does wall-clock time. The trainer's defaults for the model apply (its batch size),
    with no validation or checkpoints.
    """
    from .data import load

    if steps < 1 or warmup < 1:
        raise ConfigError(f"speed comparison needs steps >= 1 and warmup >= 1, got {steps} and {warmup}")
    options = _per_model(assignments, models)
    _check_pairings(models, data, options)
    train_ds = load(data, "train")
    rows: list[dict[str, Any]] = []
    for name in models:
        model_opts, train_opts = options[name]
        base = None
        for label in settings:
            setting = SPEED_SETTINGS[label]
            if progress:
                progress(f"bench: {name} on {data}, {label}: {warmup} + {steps} steps")
            try:
                _train_cpu_s(name, train_ds, model_opts, {**train_opts, **setting, "steps": warmup})
                runs = [
                    _train_cpu_s(name, train_ds, model_opts, {**train_opts, **setting, "steps": n})
                    for n in (warmup + steps, warmup)
                ]
                per_step = (runs[0] - runs[1]) / steps
            except GmkitError as exc:
                rows.append({"model": name, "setting": label, "error": str(exc)})
                continue
            base = per_step if label == "fp32" else base
            rows.append(
                {
                    "model": name,
                    "setting": label,
                    "cpu_s_per_step": round(per_step, 4),
                    "speedup": round(base / per_step, 3) if base and per_step > 0 else None,
                }
            )
    return rows


def _train_cpu_s(name: str, train_ds: Any, model_opts: dict[str, Any], train_opts: dict[str, Any]) -> float:
    """CPU seconds of one fresh training run of ``name`` (no validation, no checkpoints)."""
    from .config import make_config
    from .registry import registry
    from .training import DefaultTrainer, TrainConfig

    torch.manual_seed(0)
    model = registry.get("model", name, data=train_ds.spec, **model_opts)
    cls = registry.entry("model", name).load()
    fixed = {"eval_every": 0, "checkpoint_every": 0, "quiet": True, "patience": 0}
    config = make_config(TrainConfig, {**cls.defaults_for(train_ds.spec), **train_opts, **fixed})
    start = time.process_time()
    DefaultTrainer().fit(model, {"train": train_ds}, config)
    return time.process_time() - start


def format_speed(rows: list[dict[str, Any]], data: str) -> str:
    """A Markdown table of :func:`speed_options`' rows."""
    lines = [
        f"Training-step cost on `{data}` (CPU seconds per step after warm-up); "
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| model | setting | CPU s / step | speed-up over fp32 |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['setting']} | failed: {r['error']} | |")
        else:
            lines.append(f"| {r['model']} | {r['setting']} | {r['cpu_s_per_step']:.4f} | {_fmt(r['speedup'], '.3f')} |")
    return "\n".join(lines)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec or ".4f")
    return f"{value:,}" if isinstance(value, int) else str(value)


_COLUMNS = [
    ("model", "model", ""),
    ("bits_per_dim", "bits/dim", ".4f"),
    ("nll_nats", "NLL (nats)", ".2f"),
    ("likelihood", "exact/bound", ""),
    ("iwae_bits_per_dim", "IWAE bits/dim", ".4f"),
    ("steps", "steps", ""),
    ("train_s", "train s", ".1f"),
    ("train_cpu_s", "train CPU s", ".1f"),
    ("train_examples_per_s", "train ex/s", ""),
    ("sample_64_s", "sample 64 (s)", ".3f"),
    ("peak_mib", "peak MiB", ""),
    ("parameters", "parameters", ""),
    ("fd", "FD", ".3f"),
    ("kid", "KID", ".4f"),
    ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"),
    ("density", "density", ".3f"),
    ("coverage", "coverage", ".3f"),
    ("class_accuracy", "class acc.", ".3f"),
]


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [c for c in _COLUMNS if any(r.get(c[0]) is not None for r in rows)]


def format_table(doc: dict[str, Any]) -> str:
    rows = doc["results"]
    cols = _columns(rows)
    cells = [[h for _, h, _ in cols]] + [[_fmt(r.get(k), f) for k, _, f in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"{doc['data']}, test split, training budget {doc['budget_s']:g}s per model"
    text = "\n".join([head, *lines])
    if "trainer_overhead" in doc:
        o = doc["trainer_overhead"]
        text += f"\ntrainer overhead: {o['ratio']:.3f}x a hand-written loop ({o['model']}, {o['steps']} steps)"
    return text


def format_markdown(doc: dict[str, Any]) -> str:
    rows = doc["results"]
    cols = _columns(rows)
    lines = [
        f"Data `{doc['data']}`, test split, up to {doc['budget_s']:g} s of training per model; "
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| " + " | ".join(h for _, h, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_fmt(r.get(k), f) for k, _, f in cols) + " |" for r in rows]
    if "trainer_overhead" in doc:
        o = doc["trainer_overhead"]
        lines += [
            "",
            f"Trainer overhead: **{o['ratio']:.3f}x** a hand-written loop "
            f"({o['model']}, {o['steps']} steps of batch {o['batch_size']}; "
            f"trainer {o['trainer_s']} s, hand loop {o['hand_loop_s']} s, median of runs).",
        ]
    return "\n".join(lines)
