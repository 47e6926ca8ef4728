"""``gmkit pixelcnn-bench-sampler``: the fast sampler's speed-up over the naive one.

For each image size it builds a PixelCNN with random weights (the cost of
sampling does not depend on the weights), draws ``n`` images with the naive
and with the fast sampler from the same seed, checks that they are identical
and reports both wall-clock and CPU times (the CPU time is what the process
itself used, so it stays meaningful on a shared, loaded machine). torch is imported inside the command only, so
``gmkit --help`` stays light.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

__all__ = ["bench_sampler", "bench_sampler_command"]


def bench_sampler(
    sizes: tuple[int, ...] = (8, 28),
    n: int = 4,
    levels: int = 17,
    arch: str = "gated",
    hidden: int = 32,
    layers: int = 5,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """Time both samplers on ``(1, s, s)`` images for each ``s`` in ``sizes``; returns a JSON-ready dict."""
    import torch

    from gmkit_core.data import DataSpec
    from gmkit_core.registry import registry

    torch.set_num_threads(threads)
    rows = []
    for size in sizes:
        spec = DataSpec(f"bench{size}", "image", (1, size, size), levels=levels)
        torch.manual_seed(seed)
        model = registry.get("model", "pixelcnn", data=spec, arch=arch, hidden=hidden, layers=layers).eval()
        with torch.no_grad():  # warm-up: first-call costs of the convolution kernels are not sampling
            model.net(torch.zeros((n, 1, size, size), dtype=torch.long))
        out: dict[str, Any] = {"size": size}
        samples = {}
        for method in ("naive", "fast"):
            generator = torch.Generator().manual_seed(seed)
            start, cpu = time.perf_counter(), time.process_time()
            samples[method] = model.sample(n, generator=generator, method=method)
            out[f"{method}_s"] = round(time.perf_counter() - start, 4)
            out[f"{method}_cpu_s"] = round(time.process_time() - cpu, 4)
        out["speedup"] = round(out["naive_s"] / out["fast_s"], 2)
        out["cpu_speedup"] = round(out["naive_cpu_s"] / max(out["fast_cpu_s"], 1e-9), 2)
        out["identical"] = bool(torch.equal(samples["naive"], samples["fast"]))
        rows.append(out)
    return {
        "n": n,
        "levels": levels,
        "arch": arch,
        "hidden": hidden,
        "layers": layers,
        "threads": threads,
        "seed": seed,
        "torch": torch.__version__,
        "results": rows,
    }


@click.command("pixelcnn-bench-sampler")
@click.option("--sizes", default="8,28", show_default=True, help="comma-separated image sizes s (images are 1 x s x s)")
@click.option("-n", "n", default=4, show_default=True, help="images drawn per sampler")
@click.option("--levels", default=17, show_default=True, help="levels per pixel")
@click.option("--arch", type=click.Choice(["gated", "plain"]), default="gated", show_default=True)
@click.option("--hidden", default=32, show_default=True, help="features per layer")
@click.option("--layers", default=5, show_default=True, help="masked layers")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help="torch CPU threads")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
def bench_sampler_command(
    sizes: str, n: int, levels: int, arch: str, hidden: int, layers: int, seed: int, threads: int, as_json: bool
) -> None:
    """Speed-up of the cached PixelCNN sampler over the naive one (same seed, same samples)."""
    try:
        size_list = tuple(int(s) for s in sizes.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"expected integers like 8,28, got '{sizes}'", param_hint="--sizes") from None
    if not size_list or min(size_list) < 1 or n < 1:
        raise click.BadParameter("sizes and -n must be positive")
    report = bench_sampler(size_list, n, levels, arch, hidden, layers, seed, threads)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"PixelCNN sampler benchmark: arch={arch} hidden={hidden} layers={layers} levels={levels} "
        f"n={n} threads={threads}"
    )
    click.echo(
        f"{'size':>6} {'naive s':>10} {'fast s':>10} {'speed-up':>9} {'naive cpu s':>12} "
        f"{'fast cpu s':>11} {'identical':>10}"
    )
    for row in report["results"]:
        click.echo(
            f"{row['size']:>3}x{row['size']:<2} {row['naive_s']:>10.3f} {row['fast_s']:>10.3f} "
            f"{row['speedup']:>8.1f}x {row['naive_cpu_s']:>12.3f} {row['fast_cpu_s']:>11.3f} "
            f"{str(row['identical']):>10}"
        )
