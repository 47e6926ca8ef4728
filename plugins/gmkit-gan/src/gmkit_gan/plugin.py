"""gmkit-gan's hooks: the GAN family. Imports neither torch nor model code (targets are strings)."""

from __future__ import annotations

from collections.abc import Callable

from gmkit_core import hookimpl

GMKIT_API = 2

_MODELS = (
    (
        "gan",
        "model:GAN",
        "GAN (DCGAN conv or MLP): non-saturating, hinge, least-squares or WGAN-GP loss; no likelihood",
    ),
    ("cgan", "model:CGAN", "label-conditional GAN: conditional batch norm generator, projection discriminator"),
)


@hookimpl
def gmkit_register_models(register: Callable[..., None]) -> None:
    for name, target, description in _MODELS:
        register(name, f"gmkit_gan.{target}", family="gan", description=description)
