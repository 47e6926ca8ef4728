"""gmkit-score: continuous-time diffusion models (VDM, score SDEs, flow matching) for gmkit."""

__version__ = "0.1.0"
