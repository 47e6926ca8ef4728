"""gmkit-gan: generative adversarial networks for gmkit (models ``gan`` and ``cgan``)."""

__version__ = "0.1.0"
