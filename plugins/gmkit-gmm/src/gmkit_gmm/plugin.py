"""gmkit-gmm's hook implementations. Imports neither torch nor the model code."""

from __future__ import annotations

from gmkit_core import hookimpl

GMKIT_API = 2


@hookimpl
def gmkit_register_models(register):
    register(
        "gmm",
        "gmkit_gmm.model:GMM",
        family="mixture",
        description="Gaussian mixture (full/diag/spherical) fitted by EM or gradient descent; "
        "exact on vectors, dequantisation bound on images",
    )


@hookimpl
def gmkit_register_components(register):
    register(
        "prior",
        "gmm",
        "gmkit_gmm.prior:MixturePrior",
        description="learned Gaussian mixture prior p(z) = sum_k pi_k N(z; mu_k, Sigma_k) over `shape`",
    )
    register(
        "sampler",
        "gmm",
        "gmkit_gmm.sampler:LatentGMMSampler",
        description="post-hoc: fit a GMM to a trained model's latent codes, sample it and decode",
    )
