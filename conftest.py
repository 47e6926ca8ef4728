"""Repository-wide test settings and guards (core and plugin suites run in the same workers)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per process: the test workers run side by side, and oversubscribed threads are ~3x slower."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_finish(session: pytest.Session) -> None:
    import torch

    if torch.get_default_dtype() != torch.float32:
        raise pytest.UsageError(
            "a test module changed torch's default dtype when imported; set it in a fixture that restores it"
        )
