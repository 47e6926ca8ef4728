"""Core transforms: the logit preprocessing against autograd Jacobians; composition and inversion."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gmkit_core.errors import ConfigError
from gmkit_core.transforms import Compose, Inverse, Logit


@given(st.sampled_from([0.0, 0.05, 0.3]), st.integers(0, 1000))
def test_logit_log_det_matches_the_autograd_jacobian_and_inverts(alpha, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 2, 2, generator=g, dtype=torch.float64).clamp(1e-3, 1 - 1e-3)
    t = Logit(alpha)
    y, ladj = t(x)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: t(v.reshape(1, 2, 2))[0].flatten(), x[b].flatten())
        torch.testing.assert_close(ladj[b], torch.linalg.slogdet(jac)[1])
    back, inv_ladj = t.inverse(y)
    torch.testing.assert_close(back, x)
    torch.testing.assert_close(inv_ladj, -ladj)


def test_compose_and_inverse_sum_the_log_dets():
    x = torch.rand(4, 3, dtype=torch.float64).clamp(0.01, 0.99)
    f = Compose(Logit(0.05), Inverse(Logit(0.0)))
    y, ladj = f(x)
    y1, l1 = Logit(0.05)(x)
    y2, l2 = Logit(0.0).inverse(y1)
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(ladj, l1 + l2)
    torch.testing.assert_close(f.inverse(y)[0], x)


def test_logit_alpha_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="alpha"):
        Logit(0.5)
