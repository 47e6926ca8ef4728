"""gmkit-diffusion: denoising diffusion probabilistic models for gmkit.

Registered through :mod:`gmkit_diffusion.plugin`: the model ``ddpm``, the
schedules ``linear``, ``cosine`` and ``custom``, the networks ``unet``, ``dit``
and ``mlp`` and the samplers ``ddpm`` and ``ddim``. Reference: Ho et al.,
Denoising Diffusion Probabilistic Models (2020, arXiv:2006.11239).
"""

__version__ = "0.1.0"
