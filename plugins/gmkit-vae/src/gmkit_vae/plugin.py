"""gmkit-vae's hooks: the VAE family. Imports neither torch nor model code (targets are strings)."""

from __future__ import annotations

from gmkit_core import hookimpl

GMKIT_API = 2

_MODELS = (
    ("vae", "model:VAE", "VAE, Gaussian latent, discretised likelihood, KL warm-up"),
    ("beta_vae", "model:BetaVAE", "beta-VAE: KL weighted by beta after a linear warm-up"),
    ("cvae", "model:CVAE", "conditional VAE: labels into encoder and decoder"),
    ("iwae", "model:IWAE", "importance-weighted autoencoder trained on the IWAE-k bound"),
    ("hvae", "hierarchical:HVAE", "Markovian hierarchical VAE with L Gaussian latent layers"),
)


@hookimpl
def gmkit_register_models(register):
    for name, target, description in _MODELS:
        register(name, f"gmkit_vae.{target}", family="vae", description=description)
