"""The transformer is causal: the output at sub-pixel p depends only on sub-pixels before p."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import DataSpec
from gmkit_core.registry import registry


def build(scramble, shape: tuple[int, int, int], levels: int, positions: str = "learned", **options):
    spec = DataSpec("tiny", "image", shape, levels=levels)
    model = registry.get(
        "model", "transformer", data=spec, dim=8, layers=2, heads=2, dropout=0.0, positions=positions, **options
    )
    scramble(model, 0.5)
    return model.eval()


@settings(max_examples=12, deadline=None)
@given(
    c=st.integers(1, 3),
    h=st.integers(1, 3),
    w=st.integers(1, 3),
    levels=st.integers(2, 4),
    positions=st.sampled_from(["learned", "sinusoidal"]),
    seed=st.integers(0, 100),
)
def test_gradients_to_later_inputs_are_exactly_zero(scramble, c, h, w, levels, positions, seed):
    model = build(scramble, (c, h, w), levels, positions)
    n = c * h * w
    x = torch.randint(levels, (2, c, h, w), generator=torch.Generator().manual_seed(seed))
    leaf = {}

    def swap(_module, _inputs, out):  # the token embeddings become a leaf we differentiate against
        leaf["e"] = out.detach().requires_grad_(True)
        return leaf["e"]

    handle = model.net.token.register_forward_hook(swap)
    try:
        logits = model.logits(x)  # (2, N, L); input position q holds sub-pixel q-1
    finally:
        handle.remove()
    for p in range(n):
        (grad,) = torch.autograd.grad(logits[:, p].sum(), leaf["e"], retain_graph=True)  # (2, N, d)
        assert torch.count_nonzero(grad[:, p + 1 :]) == 0, f"output {p} sees a later input"
        assert torch.count_nonzero(grad[:, : p + 1]) > 0, f"output {p} sees none of its inputs"


@settings(max_examples=10, deadline=None)
@given(c=st.integers(1, 2), h=st.integers(1, 3), w=st.integers(2, 3), seed=st.integers(0, 100))
def test_changing_a_subpixel_leaves_earlier_logits_unchanged(scramble, c, h, w, seed):
    model = build(scramble, (c, h, w), 3)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, (1, c, h, w), generator=g)
    p = int(torch.randint(c * h * w, (1,), generator=g))
    s = model.to_sequence(x).clone()
    s[0, p] = (s[0, p] + 1) % 3
    y = model.to_image(s)
    a, b = model.logits(x), model.logits(y)
    assert torch.equal(a[:, : p + 1], b[:, : p + 1])  # sub-pixels 0..p are predicted without x_p
    if p + 1 < c * h * w:
        assert not torch.equal(a[:, p + 1 :], b[:, p + 1 :])  # ... and the change reaches later ones


def test_raster_order_with_channels_inner(scramble):
    model = build(scramble, (2, 2, 3), 4)
    x = torch.arange(12).view(1, 2, 2, 3) % 4
    s = model.to_sequence(x)
    c, i, j = 1, 1, 2
    assert s[0, (i * 3 + j) * 2 + c] == x[0, c, i, j]
    assert torch.equal(model.to_image(s), x)
