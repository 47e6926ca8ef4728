"""gmkit-vae: variational autoencoders for gmkit (vae, beta_vae, cvae, iwae, hvae).

Models are built through the registry, e.g.
``gmkit_core.registry.get("model", "vae", data=spec, latent_dim=16)``.
"""

__version__ = "0.1.0"
