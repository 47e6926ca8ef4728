"""gmkit hooks of gmkit-transformer. Targets are ``"module:attr"`` strings: this module imports no torch."""

from __future__ import annotations

from gmkit_core import hookimpl

GMKIT_API = 2

_PKG = "gmkit_transformer"


@hookimpl
def gmkit_register_models(register):
    register(
        "transformer",
        f"{_PKG}.model:Transformer",
        family="autoregressive",
        description="causal decoder-only transformer over sub-pixels in raster order, exact likelihood, "
        "key/value-cached sampling; also a VQ-VAE code prior (prior=transformer)",
    )
    register(
        "ctransformer",
        f"{_PKG}.model:ConditionalTransformer",
        family="autoregressive",
        description="class-conditional transformer p(x|y) (sample with --label)",
    )
    register(
        "latent",
        f"{_PKG}.latent:Latent",
        family="two-stage",
        description="two-stage model: a registered density over a trained VAE's or VQ-VAE's latents; pixel-level bound",
    )


@hookimpl
def gmkit_register_components(register):
    register(
        "sampler",
        "latent",
        f"{_PKG}.latent:LatentSampler",
        description="latent model: stage two's latents drawn with its own sample options or a registered "
        "sampler (--option sampler=ddim), then decoded by stage one",
    )
