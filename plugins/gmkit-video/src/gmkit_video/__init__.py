"""gmkit-video: VideoGPT (a 3D VQ-VAE and a causal transformer prior over its code volume)."""

__version__ = "0.1.0"
