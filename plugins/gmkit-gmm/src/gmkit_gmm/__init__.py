"""Gaussian mixture models for gmkit: the ``gmm`` model, the ``gmm`` prior and the ``gmm`` latent sampler."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
