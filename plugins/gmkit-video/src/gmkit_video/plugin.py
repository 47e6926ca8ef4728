"""gmkit hooks of gmkit-video. Targets are ``"module:attr"`` strings: this module imports no torch."""

from __future__ import annotations

from collections.abc import Callable

from gmkit_core import hookimpl

GMKIT_API = 2


@hookimpl
def gmkit_register_models(register: Callable[..., None]) -> None:
    register(
        "videogpt",
        "gmkit_video.model:VideoGPT",
        family="vqvae",
        description="VideoGPT: 3D-convolutional VQ-VAE over clips (EMA codebook) and a causal transformer "
        "prior over the code volume fitted as stage 2; pixel bound; frame prediction (prime=)",
    )
