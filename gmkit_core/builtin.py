"""The core's own plugin: built-in datasets, the standard-normal prior and the feature extractors.

It is registered through the same entry point group as every other plugin.
"""

from __future__ import annotations

from ._version import API_VERSION
from .hookspecs import hookimpl

GMKIT_API = API_VERSION

_DATA = "gmkit_core.data"


@hookimpl
def gmkit_register_datasets(register):
    register("digits", f"{_DATA}.builtin:digits", description="scikit-learn 8x8 digits, 17 levels, labels 0-9")
    register(
        "digits32",
        f"{_DATA}.builtin:digits32",
        description="the digits upsampled to 32x32 (bilinear, rounded), 17 levels, labels 0-9",
    )
    register(
        "patches32",
        f"{_DATA}.photos:patches32",
        description="32x32 RGB crops of scikit-learn's two photos, splits from disjoint bands, 256 levels",
    )
    register(
        "moving_digits",
        f"{_DATA}.moving_digits:moving_digits",
        description="video: 8 frames 16x16 of a digit bouncing around, 17 levels, labels 0-9",
        kind="video",
    )
    for name, attr, text in (
        ("moons", "moons", "two interleaved half circles"),
        ("circles", "circles", "two concentric rings"),
        ("checkerboard", "checkerboard", "uniform on the black squares of a 4x4 board"),
        ("8gaussians", "eight_gaussians", "eight Gaussians on a circle"),
        ("spiral", "spiral", "two interleaved spirals"),
        ("pinwheel", "pinwheel", "five curved arms"),
    ):
        register(name, f"{_DATA}.builtin:{attr}", description=f"2D toy: {text}", kind="vector")
    register("npz", f"{_DATA}.files:npz", description="npz:PATH, arrays x_<split>/y_<split> or x/y", kind="file")
    register("h5", f"{_DATA}.files:h5", description="h5:PATH, datasets x_<split>/y_<split> or x/y", kind="file")
    register(
        "png", f"{_DATA}.files:png", description="png:FOLDER, PNGs of one size, labels from sub-folders", kind="file"
    )
    register("idx", f"{_DATA}.files:idx", description="idx:IMAGES[,LABELS], MNIST IDX files", kind="file")
    register(
        "frames",
        f"{_DATA}.files:frames",
        description="frames:FOLDER, video: one sub-folder of PNG frames per clip",
        kind="file",
    )
    register(
        "cifar",
        f"{_DATA}.cifar:cifar",
        description="cifar:FOLDER, CIFAR-10 binary batches (data_batch_1-5.bin, test_batch.bin)",
        kind="file",
    )


@hookimpl
def gmkit_register_components(register):
    register(
        "prior",
        "standard_normal",
        "gmkit_core.distributions:StandardNormal",
        description="N(0, I) over a latent of shape `shape`",
    )
    register(
        "feature",
        "points",
        "gmkit_core.features.points:Points",
        description="vector data: the features are the points themselves",
    )
    register(
        "feature",
        "digits",
        "gmkit_core.features.classifier:digits",
        description="digits (1x8x8, 17 levels): shipped conv classifier, 64-d penultimate features, logits",
    )
    register(
        "feature",
        "pixels",
        "gmkit_core.features.pixels:Pixels",
        description="any image data: levels scaled to [0, 1], averaged in blocks down to at most 8 x 8 per channel",
    )
    register(
        "feature",
        "inception",
        "gmkit_core.features.inception:InceptionFeatures",
        description="inception:PATH, FID Inception-v3 pool features (2048-d) from a local weights file",
    )
    for name, cls, text in (
        ("euler", "Euler", "Euler on the probability-flow ODE (DDIM, eta=0)"),
        ("heun", "Heun", "Heun, second order (Karras et al. 2022)"),
        ("dpmpp_2m", "DPMSolverPP2M", "DPM-Solver++(2M), multistep in log-SNR"),
    ):
        register(
            "sampler",
            name,
            f"gmkit_core.solvers:{cls}",
            description=f"{text}, any model with path()/denoise(); nfe=20, guidance=",
        )
    register(
        "trainer",
        "default",
        "gmkit_core.training.trainer:DefaultTrainer",
        description="one loop for every family: EMA, best-on-validation, checkpoints, resume, DDP",
    )
