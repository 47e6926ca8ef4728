"""gmkit-transformer: an autoregressive transformer over image sub-pixels and the two-stage ``latent`` model."""

__version__ = "0.1.0"
