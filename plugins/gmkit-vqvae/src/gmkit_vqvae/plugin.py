"""gmkit-vqvae's hook implementations: the model ``vqvae`` and the prior ``uniform_codes``.

Targets are ``"module:attr"`` strings, so loading this module imports neither
torch nor the model code.
"""

from __future__ import annotations

import gmkit_core

GMKIT_API = 2


@gmkit_core.hookimpl
def gmkit_register_models(register):
    register(
        "vqvae",
        "gmkit_vqvae.model:VQVAE",
        family="vqvae",
        description="VQ-VAE: nearest-code quantiser, EMA codebook, PixelCNN prior over codes fitted as stage 2",
    )


@gmkit_core.hookimpl
def gmkit_register_components(register):
    register(
        "prior",
        "uniform_codes",
        "gmkit_vqvae.code_prior:UniformCodes",
        description="uniform prior over a map of discrete codes, `shape` positions with `levels` codes each",
    )
