"""gmkit-pixelcnn: autoregressive models of discrete images with masked convolutions.

``p(x) = prod_i p(x_i | x_<i)`` in raster order (channels R -> G -> B within a
pixel), with the gated PixelCNN (van den Oord et al., 2016, arXiv:1606.05328)
or the plain masked stack (arXiv:1601.06759). Registered as the models
``pixelcnn`` and ``cpixelcnn``, the prior ``pixelcnn`` and the samplers
``pixelcnn_naive`` and ``pixelcnn_fast``. Importing this package does not import torch.
"""

__version__ = "0.1.0"
