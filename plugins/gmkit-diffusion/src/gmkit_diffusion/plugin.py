"""gmkit hook implementations of gmkit-diffusion (imports neither torch nor model code)."""

from __future__ import annotations

import gmkit_core

GMKIT_API = 2

_PKG = "gmkit_diffusion"


@gmkit_core.hookimpl
def gmkit_register_models(register):
    register(
        "ddpm",
        f"{_PKG}.model:DDPM",
        family="diffusion",
        description="denoising diffusion (U-Net, DiT or MLP denoiser), DDPM/DDIM sampling, "
        "classifier-free guidance; nll = the full variational bound",
    )


@gmkit_core.hookimpl
def gmkit_register_components(register):
    register(
        "schedule",
        "linear",
        f"{_PKG}.schedules:LinearSchedule",
        description="betas linear from beta_start=1e-4 to beta_end=0.02 over T=1000 steps",
    )
    register(
        "schedule",
        "cosine",
        f"{_PKG}.schedules:CosineSchedule",
        description="cosine abar (s=0.008), betas clipped at max_beta=0.999, T=1000",
    )
    register(
        "schedule",
        "loglinear",
        f"{_PKG}.schedules:LogLinearSchedule",
        description="log-SNR evenly spaced from logsnr_max=9.2 to logsnr_min=-10 over T=1000 (tightest bound)",
    )
    register("schedule", "custom", f"{_PKG}.schedules:CustomSchedule", description="user-given betas in (0, 1)")
    register(
        "network",
        "unet",
        f"{_PKG}.unet:UNet",
        description="U-Net denoiser: time embedding, residual blocks, attention at low resolution",
    )
    register(
        "network",
        "dit",
        f"{_PKG}.dit:DiT",
        description="diffusion transformer: patchify, adaLN-Zero blocks on (t, class), unpatchify",
    )
    register("network", "mlp", f"{_PKG}.mlp:MLP", description="residual MLP denoiser for vector data")
    register(
        "sampler",
        "ddpm",
        f"{_PKG}.samplers:DDPMSampler",
        description="ancestral DDPM sampling over all T steps (guidance=)",
    )
    register(
        "sampler", "ddim", f"{_PKG}.samplers:DDIMSampler", description="DDIM sampling (steps=50, eta=0.0, guidance=)"
    )
