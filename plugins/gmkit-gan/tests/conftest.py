"""Fixtures shared by the gmkit-gan tests."""

import pytest
import torch


@pytest.fixture
def float64_default():
    """float64 as torch's default dtype for one test's math, restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
