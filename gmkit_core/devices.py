"""One rule for ``--device`` in ``train``, ``sample`` and ``eval``: ``auto`` picks the best available.

``auto`` is CUDA (this process's GPU under torchrun), then Apple's MPS (single
process), then the CPU. An explicit device that this machine or this torch
build cannot use is a :class:`~gmkit_core.errors.ConfigError` that lists what is
available, never torch's own assertion.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["available", "resolve_device"]


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available() -> list[str]:
    """The devices this process can use, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps():
        names.append("mps")
    return names


def resolve_device(
    requested: str | torch.device | None = "auto", local_rank: int = 0, distributed: bool = False
) -> torch.device:
    """``requested`` -> a usable :class:`torch.device`; ``"cuda"`` means this rank's GPU."""
    if requested is None or str(requested) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if _mps() and not distributed:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {requested}: unknown device; available here: {', '.join(available())}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(
                f"--device {requested}: {why} (torch {torch.__version__}); available here: {', '.join(available())}"
            )
        index = local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {requested}: there are {torch.cuda.device_count()} CUDA devices; "
                f"available here: {', '.join(available())}"
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps():
        raise ConfigError(f"--device {requested}: MPS is not available; available here: {', '.join(available())}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"--device {requested}: gmkit runs on cpu, cuda or mps; available here: {', '.join(available())}"
        )
    return device
