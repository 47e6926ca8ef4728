"""gmkit hook implementations of gmkit-flows. Imports neither torch nor model code."""

from __future__ import annotations

from gmkit_core import hookimpl

GMKIT_API = 2

_PKG = "gmkit_flows"

_BOUND = "exact on vector data; an upper bound (dequantisation) on discrete images"


@hookimpl
def gmkit_register_models(register):
    register(
        "realnvp",
        f"{_PKG}.models:RealNVP",
        family="flow",
        description=f"RealNVP/NICE coupling flow, multi-scale on images; {_BOUND}",
    )
    register(
        "glow",
        f"{_PKG}.models:Glow",
        family="flow",
        description="Glow: ActNorm, LU 1x1 conv, affine coupling, multi-scale; images, dequantisation bound",
    )
    register(
        "maf",
        f"{_PKG}.models:MAF",
        family="flow",
        description=f"masked autoregressive flow (vectors, flattened images); {_BOUND}",
    )
    register(
        "nsf",
        f"{_PKG}.models:NSF",
        family="flow",
        description=f"neural spline flow, autoregressive or coupling; {_BOUND}",
    )


@hookimpl
def gmkit_register_components(register):
    for name, attr, text in (
        ("maf", "maf_prior", "MAF flow prior over latents of shape `shape`; base: any prior by name"),
        ("nsf", "nsf_prior", "autoregressive rational-quadratic spline flow prior; base: any prior by name"),
        ("realnvp", "realnvp_prior", "affine coupling flow prior; base: any prior by name"),
    ):
        register("prior", name, f"{_PKG}.flow:{attr}", description=text)
    for name, target, text in (
        (
            "coupling",
            "coupling:coupling",
            "coupling layer: additive (NICE), affine (RealNVP) or spline; half, checkerboard or channel mask",
        ),
        ("maf", "autoregressive:maf_layer", "masked autoregressive layer (MADE): affine, additive or spline"),
        ("iaf", "autoregressive:iaf_layer", "inverse autoregressive layer: the inverse of `maf`"),
        ("actnorm", "linear:ActNorm", "per-channel affine with data-dependent initialisation"),
        ("invertible_linear", "linear:InvertibleLinear", "LU-parameterised invertible 1x1 convolution / dense layer"),
        ("permutation", "linear:permutation", "fixed channel permutation: reverse or random"),
        ("squeeze", "reshape:Squeeze", "space-to-depth (B, C, H, W) -> (B, 4C, H/2, W/2)"),
        ("split", "reshape:Split", "multi-scale split: factor out channels, transform the rest"),
        ("reshape", "reshape:Reshape", "reshape the event, log-det 0"),
        ("logit", "pointwise:Logit", "logit(alpha + (1 - 2 alpha) x) on (0, 1)"),
        ("sigmoid", "pointwise:sigmoid", "the inverse of logit"),
        ("scale_shift", "pointwise:ScaleShift", "fixed elementwise affine a x + b"),
    ):
        register("transform", name, f"{_PKG}.{target}", description=text)
