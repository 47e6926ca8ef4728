"""Shared builders for the PixelCNN tests (float64 networks with random weights)."""

from __future__ import annotations

import pytest
import torch
from gmkit_pixelcnn.config import PixelCNNConfig
from gmkit_pixelcnn.network import PixelCNNNet

from gmkit_core.heads import make_head


def _build(
    arch: str = "gated",
    channels: int = 1,
    levels: int = 5,
    output: str = "categorical",
    condition: tuple[str, int] | None = None,
    size: tuple[int, int] | None = None,
    **options,
):  # noqa: ANN003, ANN201
    """A float64 network and its output head, with small defaults; ``size`` adds a random position bias."""
    options = {
        "position_bias": size is not None,
        "hidden": 8 * channels,
        "layers": 3,
        "embed_dim": 3,
        "first_kernel_size": 3,
        **options,
    }
    config = PixelCNNConfig(arch=arch, output=output, **options)
    out = make_head(output, levels, config.mixtures)
    kind, condition_size = condition if condition else (None, 0)
    torch.manual_seed(0)
    net = PixelCNNNet(config, channels, levels, out.params, kind, condition_size, size).double().eval()
    for p in net.parameters():  # larger weights than the default init: sharper, less uniform laws
        p.data.mul_(2.0)
    if net.position_bias is not None:
        net.position_bias.data.normal_()
    return net, out


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def build():  # noqa: ANN201
    """The network builder above (test modules cannot import conftest under --import-mode=importlib)."""
    return _build
