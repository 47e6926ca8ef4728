"""Sample-quality metrics: Fréchet distance, KID, precision/recall, density/coverage, class accuracy.

All work on ``(N, d)`` float64 features from a :mod:`gmkit_core.features`
extractor (torch only; no scipy at run time). ``sample_quality(run, ...)``
draws samples from a trained run and compares them with its test split.

Example:
    >>> import torch
    >>> from gmkit_core.metrics import frechet_distance
    >>> x = torch.randn(500, 3, dtype=torch.float64)
    >>> frechet_distance(x, x)
    0.0
"""

from .frechet import frechet_distance, frechet_from_moments, sqrtm_psd
from .kid import kernel_distance, mmd2_unbiased
from .prdc import prdc
from .quality import METRICS, compare_data, feature_metrics, parse_metrics, parse_source_split, sample_quality

__all__ = [
    "METRICS",
    "compare_data",
    "feature_metrics",
    "frechet_distance",
    "frechet_from_moments",
    "kernel_distance",
    "mmd2_unbiased",
    "parse_metrics",
    "parse_source_split",
    "prdc",
    "sample_quality",
    "sqrtm_psd",
]
