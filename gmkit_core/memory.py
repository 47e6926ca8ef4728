"""Peak memory of a piece of work, for ``gmkit bench``.

On CUDA the peak of torch's allocated memory on the device; on the CPU the
process's peak resident set size (``VmHWM``), which Linux resets when ``5`` is
written to ``/proc/self/clear_refs``. The CPU figure therefore includes what
the process already held (torch itself, the data), and is ``None`` where the
peak cannot be reset (other systems).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["reset_peak", "peak_mib"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak(device: torch.device) -> bool:
    """Start a new peak on ``device``; ``False`` where this system cannot."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    if device.type != "cpu":
        return False
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_mib(device: torch.device) -> float | None:
    """The peak since :func:`reset_peak` in MiB: device memory on CUDA, resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type != "cpu":
        return None
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None
