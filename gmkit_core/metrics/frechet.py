r"""Fréchet distance between Gaussians fitted to two sets of features.

.. math::
    \mathrm{FD} = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
                  - 2 \operatorname{tr}\bigl(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}\bigr)^{1/2}

the squared 2-Wasserstein distance between :math:`N(\mu_1, \Sigma_1)` and
:math:`N(\mu_2, \Sigma_2)` (Dowson and Landau 1982); with Inception-v3 pool
features it is the FID of Heusel et al. 2017 (arXiv:1706.08500). The trace of
the square root is taken from the eigenvalues of the symmetric positive
semi-definite matrix :math:`\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2}` (which has the
eigenvalues of :math:`\Sigma_1 \Sigma_2`), so no non-symmetric square root and
no complex parts appear. Everything in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError

__all__ = ["frechet_distance", "frechet_from_moments", "sqrtm_psd", "mean_and_covariance"]


def sqrtm_psd(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD ``(d, d)`` matrix; round-off negative eigenvalues become 0."""
    sym = (matrix + matrix.T) / 2
    eigenvalues, vectors = torch.linalg.eigh(sym)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def mean_and_covariance(features: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, d)`` -> mean ``(d,)`` and unbiased covariance ``(d, d)``, float64."""
    f = features.double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise DataError(f"the Fréchet distance needs at least 2 feature vectors (N, d), got shape {tuple(f.shape)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def frechet_from_moments(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """FD between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``: means ``(d,)``, covariances ``(d, d)``."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    root1 = sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1  # (d, d), symmetric PSD
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_root
    return max(float(value), 0.0)


def frechet_distance(features1: Tensor, features2: Tensor) -> float:
    """FD between the Gaussians fitted (mean, unbiased covariance) to ``(N1, d)`` and ``(N2, d)`` features."""
    if features1.shape[1:] != features2.shape[1:]:
        raise DataError(f"feature dimensions differ: {tuple(features1.shape[1:])} and {tuple(features2.shape[1:])}")
    return frechet_from_moments(*mean_and_covariance(features1), *mean_and_covariance(features2))
