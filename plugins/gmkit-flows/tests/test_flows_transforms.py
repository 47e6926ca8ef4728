"""Every transform: round trips, log-det against autograd Jacobians, inverse log-det, composition."""

from __future__ import annotations

import math

import pytest
import torch
from gmkit_flows.architectures import autoregressive_stack, coupling_stack, glow, multiscale
from gmkit_flows.autoregressive import iaf_layer, maf_layer
from gmkit_flows.coupling import coupling
from gmkit_flows.linear import ActNorm, InvertibleLinear, permutation
from gmkit_flows.pointwise import Logit, ScaleShift, sigmoid
from gmkit_flows.reshape import Reshape, Split, Squeeze
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.transforms import Compose, Inverse

SETTINGS = settings(max_examples=3, deadline=None)


def _randomize(t: torch.nn.Module, seed: int, scale: float = 0.4) -> torch.nn.Module:
    """Random parameters (the zero-initialised output layers would make every layer the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in t.parameters():
            p.copy_(p + scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    for m in t.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    return t.double().eval()


def _vec(d: int) -> tuple[int, ...]:
    return (d,)


# name -> (builder(event, seed), event shape from a size draw, input domain)
def _image(c: int, h: int) -> tuple[int, int, int]:
    return (c, h, h)


TRANSFORMS = {
    "additive_coupling": (lambda s, k: coupling(s[0], "additive", hidden=8), lambda n: _vec(n), "real"),
    "affine_coupling": (lambda s, k: coupling(s[0], "affine", hidden=8), lambda n: _vec(n), "real"),
    "spline_coupling": (lambda s, k: coupling(s[0], "spline", hidden=8, bins=4, bound=2.0), lambda n: _vec(n), "real"),
    "checkerboard_coupling": (
        lambda s, k: coupling(s, "affine", "checkerboard", k % 2, hidden=4, depth=1),
        lambda n: _image(1 + n % 2, 2),
        "real",
    ),
    "channel_coupling": (
        lambda s, k: coupling(s, "affine", "channel", k % 2, hidden=4, depth=1),
        lambda n: _image(2, 2),
        "real",
    ),
    "spline_channel_coupling": (
        lambda s, k: coupling(s, "spline", "channel", 0, hidden=4, depth=1, bins=3, bound=2.0),
        lambda n: _image(2, 2),
        "real",
    ),
    "actnorm": (lambda s, k: ActNorm(s[0]), lambda n: _image(n, 2), "real"),
    "invertible_linear": (lambda s, k: InvertibleLinear(s[0], seed=k), lambda n: _vec(n), "real"),
    "invertible_conv1x1": (lambda s, k: InvertibleLinear(s[0], seed=k), lambda n: _image(n, 2), "real"),
    "permutation": (lambda s, k: permutation(s[0], "random", seed=k), lambda n: _vec(n), "real"),
    "maf_affine": (lambda s, k: maf_layer(s[0], "affine", hidden=8, order="random", seed=k), lambda n: _vec(n), "real"),
    "maf_spline": (lambda s, k: maf_layer(s[0], "spline", hidden=8, bins=4, bound=2.0), lambda n: _vec(n), "real"),
    "iaf_affine": (lambda s, k: iaf_layer(s[0], "affine", hidden=8, order="reverse"), lambda n: _vec(n), "real"),
    "squeeze": (lambda s, k: Squeeze(), lambda n: _image(n, 2), "real"),
    "unsqueeze": (lambda s, k: Inverse(Squeeze()), lambda n: _image(4, 2), "real"),
    "split": (
        lambda s, k: Split(1, coupling((1, 2, 2), "affine", "checkerboard", hidden=4, depth=1)),
        lambda n: _image(2, 2),
        "real",
    ),
    "reshape": (lambda s, k: Reshape(s, (math.prod(s),)), lambda n: _image(n, 2), "real"),
    "logit": (lambda s, k: Logit(0.05 * (k % 3)), lambda n: _vec(n), "unit"),
    "sigmoid": (lambda s, k: sigmoid(0.05 * (k % 3)), lambda n: _vec(n), "real"),
    "scale_shift": (lambda s, k: ScaleShift(-1.5 + k % 3, 0.3), lambda n: _vec(n), "real"),
    "autoregressive_stack": (
        lambda s, k: autoregressive_stack(s[0], 2, "spline", 8, 1, mixer="lu", bins=3, bound=2.0),
        lambda n: _vec(n),
        "real",
    ),
    "coupling_stack": (
        lambda s, k: coupling_stack(s[0], 3, "affine", 8, 1, mixer="reverse"),
        lambda n: _vec(n),
        "real",
    ),
    "multiscale": (lambda s, k: multiscale((1, 4, 4), 2, 1, "affine", 4, 1), lambda n: (1, 4, 4), "real"),
    "glow": (lambda s, k: glow((1, 4, 4), 2, 1, "affine", 4, 1, seed=k), lambda n: (1, 4, 4), "real"),
    # the large-image architectures (three levels of squeeze and factor-out) on a tiny colour image
    "glow_3_levels": (lambda s, k: glow((3, 8, 8), 3, 1, "affine", 4, 1, seed=k), lambda n: (3, 8, 8), "real"),
    "multiscale_3_scales": (
        lambda s, k: multiscale((3, 8, 8), 3, 1, "affine", 4, 1),
        lambda n: (3, 8, 8),
        "real",
    ),
}


#: smaller random parameters for the deepest stacks: at 0.4 their outputs reach 1e6 and the round trip
#: loses digits to conditioning (not to an error in the inverse)
SCALES = {"glow_3_levels": 0.1, "multiscale_3_scales": 0.1}


def _make(name: str, size: int, seed: int, batch: int):
    build, shape_of, domain = TRANSFORMS[name]
    shape = shape_of(size)
    t = _randomize(build(shape, seed), seed, SCALES.get(name, 0.4))
    g = torch.Generator().manual_seed(seed + 1)
    if domain == "unit":
        x = torch.rand((batch, *shape), generator=g, dtype=torch.float64) * 0.98 + 0.01
    else:
        x = 1.5 * torch.randn((batch, *shape), generator=g, dtype=torch.float64)
    return t, x


draws = st.tuples(st.integers(2, 5), st.integers(0, 2**16), st.integers(1, 3))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@SETTINGS
@given(draw=draws)
def test_round_trips_and_inverse_logdet(name: str, draw) -> None:  # noqa: ANN001
    size, seed, batch = draw
    t, x = _make(name, size, seed, batch)
    with torch.no_grad():
        y, ladj = t(x)
        x2, ladj_inv = t.inverse(y)
        y2, _ = t(x2)
    assert ladj.shape == (batch,) and ladj_inv.shape == (batch,)
    assert y.shape[0] == batch and y.numel() == x.numel()
    torch.testing.assert_close(x2, x, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-8, rtol=1e-8)
    # f(f^-1(y)) = y from the other side
    torch.testing.assert_close(y2, y, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
@SETTINGS
@given(draw=draws)
def test_logdet_matches_autograd_jacobian(name: str, draw) -> None:  # noqa: ANN001
    size, seed, _ = draw
    t, x = _make(name, size, seed, 1)
    jac = torch.autograd.functional.jacobian(lambda v: t(v.view_as(x))[0].flatten(), x.flatten(), vectorize=True)
    expected = torch.linalg.slogdet(jac).logabsdet
    _, ladj = t(x)
    torch.testing.assert_close(ladj[0].detach(), expected, atol=1e-7, rtol=1e-7)


@SETTINGS
@given(seed=st.integers(0, 2**16))
def test_logdets_add_under_composition(seed: int) -> None:
    a = _randomize(maf_layer(3, "spline", hidden=8, bins=4, bound=2.0), seed)
    b = _randomize(InvertibleLinear(3, seed=seed), seed + 1)
    c = _randomize(coupling(3, "affine", hidden=8), seed + 2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        y1, l1 = a(x)
        y2, l2 = b(y1)
        y3, l3 = c(y2)
        y, total = Compose(a, b, c)(x)
    torch.testing.assert_close(y, y3)
    torch.testing.assert_close(total, l1 + l2 + l3)


def test_spline_is_identity_outside_its_bound_and_at_zero_parameters() -> None:
    from gmkit_flows.elementwise import RationalQuadraticSpline

    g = RationalQuadraticSpline(bins=5, bound=1.0)
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    y, ladj = g.forward(x, torch.zeros(61, g.params, dtype=torch.float64))
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(ladj, torch.zeros_like(x))
    theta = torch.randn(61, g.params, dtype=torch.float64)
    y, ladj = g.forward(x, theta)
    outside = x.abs() >= 1
    torch.testing.assert_close(y[outside], x[outside])
    assert bool((y[~outside].abs() <= 1).all())
    assert bool((torch.diff(g.forward(x, theta[:1].expand(61, -1))[0]) > 0).all())  # monotone


def test_made_is_autoregressive_in_its_order() -> None:
    from gmkit_flows.nets import MADE

    order = torch.tensor([3, 1, 4, 2])
    made = _randomize(MADE(4, 2, (16, 16), order), 0)
    x = torch.randn(1, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: made(v).sum(-1).flatten(), x)[:, 0, :]  # (D_out, D_in)
    allowed = order[:, None] > order[None, :]
    assert bool((jac[~allowed] == 0).all())
    assert bool((jac[allowed] != 0).all())


def test_actnorm_data_dependent_initialisation() -> None:
    layer = ActNorm(3).double()
    x = 2 + 5 * torch.randn(64, 3, 4, 4, dtype=torch.float64)
    y, _ = layer(x)  # training mode: first call initialises
    assert bool(layer.initialized)
    flat = y.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(flat.std(1, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)
    before = layer.shift.clone()
    layer(x + 1)
    torch.testing.assert_close(layer.shift, before)  # only once
