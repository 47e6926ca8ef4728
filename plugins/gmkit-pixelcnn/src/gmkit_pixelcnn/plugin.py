"""gmkit hooks of gmkit-pixelcnn: models, components and a benchmark command.

Targets are ``"module:attr"`` strings, so this module imports neither torch
nor the model code.
"""

from __future__ import annotations

from gmkit_core import hookimpl

GMKIT_API = 2

_PKG = "gmkit_pixelcnn"


@hookimpl
def gmkit_register_models(register):
    register(
        "pixelcnn",
        f"{_PKG}.model:PixelCNN",
        family="autoregressive",
        description="Gated PixelCNN over discrete images, exact likelihood, cached fast sampler",
    )
    register(
        "cpixelcnn",
        f"{_PKG}.model:ConditionalPixelCNN",
        family="autoregressive",
        description="Class-conditional gated PixelCNN (sample with --label)",
    )


@hookimpl
def gmkit_register_components(register):
    register(
        "prior",
        "pixelcnn",
        f"{_PKG}.prior:PixelCNNPrior",
        description="Autoregressive prior over discrete code maps: shape=(H, W), levels=K, optional condition",
    )
    register(
        "sampler",
        "pixelcnn_fast",
        f"{_PKG}.sampling:FastSampler",
        description="PixelCNN ancestral sampling with cached activations (one pixel of work per step)",
    )
    register(
        "sampler",
        "pixelcnn_naive",
        f"{_PKG}.sampling:NaiveSampler",
        description="PixelCNN ancestral sampling with a full forward pass per sub-pixel (reference)",
    )


@hookimpl
def gmkit_register_commands(cli):
    from .bench import bench_sampler_command

    cli.add_command(bench_sampler_command)
