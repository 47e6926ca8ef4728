"""gmkit-vqvae: the vector-quantised VAE (van den Oord et al., 2017, arXiv:1711.00937).

Modules: :mod:`~gmkit_vqvae.quantizer` (nearest-code quantiser, straight-through
gradient, codebook/commitment losses, EMA codebook, dead-code replacement),
:mod:`~gmkit_vqvae.networks` (convolutional encoder and decoder),
:mod:`~gmkit_vqvae.likelihoods` (decoder likelihoods on the data's levels),
:mod:`~gmkit_vqvae.code_prior` (uniform prior over codes, code-map data sets)
and :mod:`~gmkit_vqvae.model` (the registered model ``vqvae``). Importing the
package does not import torch.
"""

__version__ = "0.1.0"
