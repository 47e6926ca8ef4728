"""Pictures: sample grids, loss curves and 2D density maps (PNG).

Grids are tiled with Pillow; curves and scatter plots use matplotlib's
non-interactive Agg backend, imported only when a picture is drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .interfaces import likelihood_of

__all__ = [
    "grid_image",
    "save_samples_png",
    "sample_picture",
    "loss_curve",
    "colour_limit",
    "density_picture",
    "run_pictures",
]


def grid_image(samples: torch.Tensor, levels: int, ncol: int | None = None, cell: int = 48) -> Any:
    """Tile ``(N, C, H, W)`` integer levels into one RGB/greyscale PIL image, each image upscaled to ~``cell`` px."""
    from PIL import Image

    x = samples.detach().cpu().long().clamp(0, levels - 1).numpy()
    n, c, h, w = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    scale = max(1, cell // max(h, w))
    pixels = (x * (255.0 / (levels - 1))).round().astype(np.uint8)
    pad = 2
    canvas = np.full((nrow * (h * scale + pad) + pad, ncol * (w * scale + pad) + pad, c), 40, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        tile = pixels[i].transpose(1, 2, 0).repeat(scale, 0).repeat(scale, 1)
        y0, x0 = pad + r * (h * scale + pad), pad + q * (w * scale + pad)
        canvas[y0 : y0 + h * scale, x0 : x0 + w * scale] = tile
    mode = "L" if c == 1 else "RGB"
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas[..., :3], mode)


def _figure(width: float = 5, height: float = 4) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def save_samples_png(samples: torch.Tensor, spec: Any, path: str | Path, ncol: int | None = None) -> Path:
    """Images as a grid; videos as a frame strip (one row per clip); 2D vectors as a scatter plot."""
    path = Path(path)
    if spec.is_video:
        from .plots_video import frame_strip

        return frame_strip(samples, path, levels=spec.levels)
    if spec.is_image:
        grid_image(samples, spec.levels, ncol).save(path)
        return path
    pts = samples.detach().cpu().float().numpy()
    if pts.shape[1] != 2:
        from .errors import ConfigError

        raise ConfigError(
            f"PNG output draws 2D points; these samples have {pts.shape[1]} dimensions (write .h5 or .npz)"
        )
    plt, fig = _figure(4.5, 4.5)
    ax = fig.add_subplot(111)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color="#1f5fa8", linewidths=0)
    ax.set_aspect("equal")
    ax.set_title(f"{len(pts)} samples")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def sample_picture(model: Any, path: str | Path, seed: int = 0, n: int | None = None) -> Path:
    """A sample grid of ``model`` (one row per class for conditional image models)."""
    device = next(model.parameters(), torch.zeros(())).device
    generator = torch.Generator(device).manual_seed(seed)
    spec = model.data
    with torch.no_grad():
        if spec.is_discrete and model.conditional and spec.num_classes:
            per = 8
            labels = torch.arange(spec.num_classes, device=device).repeat_interleave(per)
            samples = model.sample(len(labels), condition=labels, generator=generator, **model.picture_sample_options)
            return save_samples_png(samples, spec, path, ncol=per)
        samples = model.sample(
            n or (64 if spec.is_discrete else 2000), generator=generator, **model.picture_sample_options
        )
    return save_samples_png(samples, spec, path)


def loss_curve(history: dict[str, Any], path: str | Path, title: str = "") -> Path | None:
    """Training loss and validation score against steps; a fit outside the steps (e.g. EM) as its own curve."""
    train = history.get("train", {})
    val = history.get("validation", {})
    if len(train.get("step", [])) <= 1:  # no steps ran: draw the model's own fit history if it has one
        other = {g: v for g, v in history.items() if g not in ("train", "validation") and len(v) >= 2}
        if other:
            return _fit_curve(other, path, title)
    if len(train.get("step", [])) == 0 and len(val.get("step", [])) == 0:
        return None
    plt, fig = _figure(6, 4)
    ax = fig.add_subplot(111)
    if len(train.get("step", [])):
        ax.plot(np.asarray(train["step"]), np.asarray(train["loss"]), lw=1, label="train loss", color="#1f5fa8")
    if len(val.get("step", [])):
        ax.plot(
            np.asarray(val["step"]),
            np.asarray(val["score"]),
            "o-",
            ms=3,
            lw=1.5,
            label="validation score",
            color="#d2691e",
        )
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _fit_curve(groups: dict[str, Any], path: str | Path, title: str) -> Path:
    """Each group's later keys against its first (e.g. EM log-likelihood against iteration)."""
    plt, fig = _figure(6, 4)
    ax = fig.add_subplot(111)
    for group, values in groups.items():
        (xname, x), *rest = values.items()
        for name, y in rest:
            ax.plot(np.asarray(x), np.asarray(y), "o-", ms=3, lw=1.2, label=f"{group}: {name.replace('_', ' ')}")
        ax.set_xlabel(xname)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def colour_limit(density: np.ndarray, quantile: float = 0.995) -> float | None:
    """The top of a density map's colour scale: the ``quantile`` of its values (None if that is 0), so that a
    few spikes (a density peaked at a corner or a training point) saturate instead of darkening the rest."""
    top = float(np.quantile(density, quantile))
    return top if top > 0 else None


def density_picture(model: Any, data: torch.Tensor, path: str | Path, seed: int = 0, resolution: int = 200) -> Path:
    """For a 2D model with a likelihood: the learned density (colour scale clipped by :func:`colour_limit`)
    beside data and samples."""
    from .data import Batch

    device = next(model.parameters(), torch.zeros(())).device
    pts = data.detach().cpu().float()
    lo, hi = pts.min(0).values, pts.max(0).values
    margin = 0.1 * (hi - lo)
    lo, hi = lo - margin, hi + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(device)
    with torch.no_grad():
        nll = torch.cat([model.nll(Batch(chunk)) for chunk in grid.split(4096)])
        samples = model.sample(len(pts[:2000]), generator=torch.Generator(device).manual_seed(seed)).cpu()
    density = torch.exp(-nll).reshape(resolution, resolution).cpu().numpy()
    plt, fig = _figure(12, 4)
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    for i, (title, pts_) in enumerate((("data", pts[:2000]), ("model density", None), ("samples", samples))):
        ax = fig.add_subplot(1, 3, i + 1)
        if pts_ is None:
            top = colour_limit(density)
            ax.imshow(density, origin="lower", extent=extent, cmap="magma", aspect="auto", vmin=0, vmax=top)
        else:
            ax.scatter(pts_[:, 0], pts_[:, 1], s=2, alpha=0.5, linewidths=0, color="#1f5fa8")
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def run_pictures(run: Any, train: Any) -> list[Path]:
    """The pictures ``gmkit train`` writes beside RUN.h5: loss curve, samples, and a 2D density map."""
    stem = run.path.with_suffix("")
    written = []
    curve = loss_curve(run.record.history, f"{stem}.loss.png", title=run.record.model)
    if curve is not None:
        written.append(curve)
    spec = run.model.data
    if spec.is_discrete or spec.shape == (2,):
        written.append(sample_picture(run.model, f"{stem}.samples.png"))
    if spec.shape == (2,) and not spec.is_image and likelihood_of(run.model) == "exact":  # exp(-bound) is no density
        written.append(density_picture(run.model, train.x, f"{stem}.density.png"))
    return written
