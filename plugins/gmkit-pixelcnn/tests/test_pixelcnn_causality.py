"""Causality: params at sub-pixel (i, j, c) never depend on (i, j, c) or anything after it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


def order(channels: int, height: int, width: int) -> torch.Tensor:
    """Model-order index ``(iW + j)C + c`` of every sub-pixel, shaped ``(C, H, W)``."""
    i = torch.arange(height)[None, :, None]
    j = torch.arange(width)[None, None, :]
    c = torch.arange(channels)[:, None, None]
    return (i * width + j) * channels + c


def dependence(net, channels, height, width, i, j, c, condition=None) -> torch.Tensor:  # noqa: ANN001
    """``|d params[:, c, i, j] / d e|`` summed per input sub-pixel, ``(C, H, W)``."""
    e = torch.randn(8, channels * net.embed_dim, height, width, dtype=torch.float64, requires_grad=True)
    params = net.from_embedding(e, condition)
    params[:, c, i, j].sum().backward()
    grad = e.grad.abs().sum(0).reshape(channels, net.embed_dim, height, width)
    return grad.sum(1)


@settings(max_examples=40, deadline=None)
@given(
    arch=st.sampled_from(["gated", "plain"]),
    channels=st.integers(1, 3),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    kernel=st.sampled_from([3, 5]),
    first=st.sampled_from([3, 5, 7]),
    layers=st.integers(1, 4),
    output=st.sampled_from(["categorical", "logistic_mixture"]),
    position_bias=st.booleans(),
    data=st.data(),
)
def test_output_ignores_current_and_later_subpixels(
    arch, channels, height, width, kernel, first, layers, output, position_bias, data, build
):  # noqa: ANN001
    i = data.draw(st.integers(0, height - 1))
    j = data.draw(st.integers(0, width - 1))
    c = data.draw(st.integers(0, channels - 1))
    net, _ = build(
        arch,
        channels,
        levels=4,
        output=output,
        kernel_size=kernel,
        first_kernel_size=first,
        layers=layers,
        size=(height, width) if position_bias else None,
    )
    grad = dependence(net, channels, height, width, i, j, c)
    here = (i * width + j) * channels + c
    assert (grad[order(channels, height, width) >= here] == 0).all()
    # Not vacuous: the previous channel of this pixel, or else the pixel to the left, is always seen.
    if c > 0:
        assert grad[c - 1, i, j] > 0
    elif j > 0:
        assert grad[:, i, j - 1].sum() > 0


@pytest.mark.parametrize("kind,size", [("label", 3), ("vector", 2), ("spatial", 2)])
def test_condition_keeps_causality(kind, size, build):  # noqa: ANN001
    net, _ = build("gated", channels=2, condition=(kind, size))
    condition = {
        "label": torch.arange(8) % 3,
        "vector": torch.randn(8, 2, dtype=torch.float64),
        "spatial": torch.randn(8, 2, 4, 4, dtype=torch.float64),
    }[kind]
    grad = dependence(net, 2, 4, 4, 2, 1, 1, condition)
    assert (grad[order(2, 4, 4) >= (2 * 4 + 1) * 2 + 1] == 0).all()


@pytest.mark.parametrize("channels", [1, 2])
def test_gated_stack_sees_every_earlier_subpixel(channels, build):  # noqa: ANN001
    net, _ = build("gated", channels, layers=5, kernel_size=3, first_kernel_size=3)
    for i, j in [(4, 4), (2, 1), (3, 0)]:
        for c in range(channels):
            grad = dependence(net, channels, 5, 5, i, j, c)
            earlier = order(channels, 5, 5) < (i * 5 + j) * channels + c
            assert (grad[earlier] > 0).all(), (i, j, c)


def test_plain_stack_has_a_blind_spot(build):  # noqa: ANN001
    """Up one row and two columns right is never reached by 3x3 masked kernels, however deep."""
    i, j = 3, 1
    plain, _ = build("plain", layers=8, kernel_size=3, first_kernel_size=3)
    gated, _ = build("gated", layers=8, kernel_size=3, first_kernel_size=3)
    grad_plain = dependence(plain, 1, 5, 6, i, j, 0)
    grad_gated = dependence(gated, 1, 5, 6, i, j, 0)
    assert grad_plain[0, i - 1, j + 2] == 0 and grad_plain[0, i - 2, j + 3] == 0
    assert grad_plain[0, i - 1, j + 1] > 0  # the diagonal itself is seen
    assert grad_gated[0, i - 1, j + 2] > 0 and grad_gated[0, i - 2, j + 3] > 0
    earlier = order(1, 5, 6) < i * 6 + j
    assert (grad_gated[earlier] > 0).all()
    assert (grad_plain[earlier] == 0).any()
