"""The core's own plugin: built-in datasets and the standard-normal prior.

It is registered through the same entry point group as every other plugin.
"""

from __future__ import annotations

from ._version import API_VERSION
from .hookspecs import hookimpl

GMKIT_API = API_VERSION

_DATA = "gmkit_core.data"


@hookimpl
def gmkit_register_datasets(register):  # type: ignore[no-untyped-def]
    register("digits", f"{_DATA}.builtin:digits", description="scikit-learn 8x8 digits, 17 levels, labels 0-9")
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
    register("png", f"{_DATA}.files:png", description="png:FOLDER, PNGs of one size, labels from sub-folders", kind="file")
    register("idx", f"{_DATA}.files:idx", description="idx:IMAGES[,LABELS], MNIST IDX files", kind="file")


@hookimpl
def gmkit_register_components(register):  # type: ignore[no-untyped-def]
    register("prior", "standard_normal", "gmkit_core.distributions:StandardNormal",
             description="N(0, I) over a latent of shape `shape`")
