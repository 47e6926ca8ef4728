"""Options of ``ebm`` and ``jem`` (``--set key=value``); ``None`` means the per-data default in the help."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs import validators as v

from gmkit_core.config import option as _opt

__all__ = ["EBMConfig", "JEMConfig"]


def _positive_or_none() -> object:
    return v.optional(v.gt(0.0))


@attrs.frozen
class EBMConfig:
    """Options of the ``ebm`` model."""

    objective: Literal["cd", "dsm", "nce"] | None = _opt(
        None,
        "cd: contrastive divergence with SGLD negatives; dsm: denoising score matching; nce: "
        "noise-contrastive estimation against a Gaussian fitted to the data, with a learned log Z "
        "(default: nce on vectors, cd on images)",
        v.optional(v.in_(("cd", "dsm", "nce"))),
    )
    sampler: Literal["persistent", "short_run"] = _opt(
        "persistent",
        "cd negatives: persistent (replay buffer with restarts) or short_run (fresh chains from noise)",
        v.in_(("persistent", "short_run")),
    )
    sgld_steps: int = _opt(20, "SGLD steps per training step (K)", v.ge(1))
    step_size: float | None = _opt(
        None, "SGLD gradient step epsilon (default: 0.01 vectors, 1.0 images)", _positive_or_none()
    )
    noise: float | None = _opt(
        None, "SGLD noise scale sigma (default: sqrt(2 epsilon) on vectors, 0.01 on images)", v.optional(v.ge(0.0))
    )
    sample_steps: int | None = _opt(
        None, "SGLD steps of sample() from fresh noise (default: 10 K persistent, K short_run)", v.optional(v.ge(1))
    )
    alpha: float | None = _opt(
        None,
        "energy-magnitude penalty alpha * (E(x+)^2 + E(x-)^2) of cd; it caps sample energies near 1/(2 alpha) "
        "(default: 0.1 images, 0.001 vectors)",
        v.optional(v.ge(0.0)),
    )
    spectral_norm: bool = _opt(False, "spectral normalisation of every layer of the energy network")
    buffer_size: int = _opt(10000, "chains in the persistent replay buffer", v.ge(1))
    reinit: float = _opt(0.05, "probability that a buffer chain restarts from uniform noise", [v.ge(0.0), v.le(1.0)])
    dsm_sigma: float = _opt(0.1, "dsm noise level sigma (in data units; images in [-1, 1])", v.gt(0.0))
    dequant_noise: float = _opt(
        0.02, "images: std of the Gaussian noise added to the bin centres in training", v.ge(0.0)
    )
    margin: float = _opt(0.25, "vectors: the box (support and grid) is the training range +- margin * range", v.gt(0.0))
    hidden: int = _opt(128, "vectors: MLP width", v.ge(1))
    depth: int = _opt(3, "vectors: hidden layers of the MLP", v.ge(1))
    channels: int = _opt(32, "images: width of the first convolution", v.ge(1))
    grid: int = _opt(256, "vectors (D <= 2): cells per axis of the coarse grid; Z uses twice as many", v.ge(4))
    ais_chains: int = _opt(64, "AIS chains for log Z (images, vectors with D > 2)", v.ge(2))
    ais_steps: int = _opt(500, "AIS temperatures", v.ge(1))
    ais_step_size: float | None = _opt(
        None, "MALA step of AIS at beta = 1 (default: 1e-3 vectors, 1e-4 images)", _positive_or_none()
    )
    nll_samples: int = _opt(16, "images: uniform draws per bin averaging exp(-E) over the bin in nll", v.ge(1))
    energy_limit: float = _opt(
        1e4, "stop training when the absolute mean energy of data, samples or noise exceeds this", v.gt(0.0)
    )
    saturation: float = _opt(
        0.9, "stop training when this share of the negatives sits on the box bounds", [v.gt(0.0), v.le(1.0)]
    )
    eval_seed: int = _opt(0, "seed of the AIS chains and the bin draws of nll")


@attrs.frozen
class JEMConfig(EBMConfig):
    """Options of ``jem``: those of ``ebm`` (short-run negatives by default) plus the weight of the generative term
    and the translation of the classified images."""

    sampler: Literal["persistent", "short_run"] = _opt(
        "short_run",
        "cd negatives: persistent (replay buffer with restarts) or short_run (fresh chains from noise)",
        v.in_(("persistent", "short_run")),
    )
    shift: int = _opt(
        1,
        "images: the cross-entropy term sees each image moved by up to this many pixels (uniform per image and "
        "axis, filled with level 0); the generative term sees the images as they are (0: off)",
        v.ge(0),
    )
    gen_weight: float = _opt(
        0.3,
        "weight of the generative (cd/dsm/nce) term next to the cross-entropy (1 in Grathwohl et al.; 0.3 here, "
        "see docs/models/ebm.md)",
        v.ge(0.0),
    )
