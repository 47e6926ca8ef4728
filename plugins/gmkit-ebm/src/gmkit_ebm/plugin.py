"""gmkit-ebm's hook implementations. Imports neither torch nor the model code."""

from __future__ import annotations

from gmkit_core import hookimpl

GMKIT_API = 2


@hookimpl
def gmkit_register_models(register):
    register(
        "ebm",
        "gmkit_ebm.model:EBM",
        family="energy",
        description="energy-based model p(x) = exp(-E(x))/Z trained by contrastive divergence with Langevin "
        "dynamics (persistent or short-run), denoising score matching or NCE; grid-exact on 2D "
        "vectors, AIS estimate on images",
    )
    register(
        "jem",
        "gmkit_ebm.model:JEM",
        family="energy",
        description="joint energy-based classifier: logits f(x), E(x) = -logsumexp_y f(x)[y], trained by "
        "cross-entropy plus contrastive divergence; reports test accuracy",
    )
