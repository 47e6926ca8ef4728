"""gmkit hook implementations of gmkit-score (imports neither torch nor model code)."""

from __future__ import annotations

import gmkit_core

GMKIT_API = 2

_PKG = "gmkit_score"


@gmkit_core.hookimpl
def gmkit_register_models(register):  # noqa: ANN001, ANN201 - pluggy hook
    register(
        "vdm",
        f"{_PKG}.vdm:VDM",
        family="diffusion",
        description="variational diffusion in continuous time: learned log-SNR, Fourier features, "
        "discrete decoder; nll = the full variational bound",
    )
    register(
        "score_sde",
        f"{_PKG}.sde:ScoreSDE",
        family="diffusion",
        description="denoising score matching for VP, sub-VP and VE SDEs; reverse-SDE, predictor-corrector "
        "and probability-flow ODE sampling; nll by the ODE",
    )
    register(
        "flow_matching",
        f"{_PKG}.flow:FlowMatching",
        family="flow",
        description="conditional flow matching on the linear path, minibatch OT coupling, reflow; nll by the ODE",
    )
