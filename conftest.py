"""Repository-wide test guards (core and plugin suites run in the same workers)."""

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    import torch

    if torch.get_default_dtype() != torch.float32:
        raise pytest.UsageError(
            "a test module changed torch's default dtype when imported; set it in a fixture that restores it"
        )
