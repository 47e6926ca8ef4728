r"""Mode coverage and sample quality on a mixture of isotropic Gaussians (the ``8gaussians`` toy).

Each sample is assigned to its nearest centre :math:`\mu_k`; it is *high
quality* when within ``radius`` standard deviations of it,
:math:`\lVert x - \mu_k\rVert \le r\sigma`. A mode is *covered* when it holds at
least ``min_count`` high-quality samples. This is the measure of Srivastava et
al. (VEEGAN, 2017, arXiv:1705.07761) and Metz et al. (Unrolled GANs, 2017,
arXiv:1611.02163): modes covered and the fraction of high-quality samples.

``8gaussians`` (gmkit_core.data): centres :math:`\tfrac{4}{\sqrt2}(\cos\tfrac{2\pi k}{8}, \sin\tfrac{2\pi k}{8})`,
standard deviation :math:`0.5/\sqrt2` per coordinate.

From the shell, on a trained run: ``python -m gmkit_gan.modes RUN.h5 [-n 10000] [--seed 0]``
prints one JSON line (modes covered, the fewest high-quality samples at a mode, the
high-quality fraction, the per-mode counts).

Example:
    >>> import torch
    >>> x = eight_gaussian_centres().repeat_interleave(10, 0)
    >>> r = mode_report(x)
    >>> r.modes_covered, r.high_quality
    (8, 1.0)
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

__all__ = ["ModeReport", "mode_report", "eight_gaussian_centres", "EIGHT_GAUSSIANS_STD", "main"]

#: Per-coordinate standard deviation of each component of ``8gaussians``.
EIGHT_GAUSSIANS_STD = 0.5 / math.sqrt(2)


def eight_gaussian_centres() -> Tensor:
    """``(8, 2)`` float64 centres of ``8gaussians``, counter-clockwise from angle 0."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return 4.0 / math.sqrt(2) * torch.stack([angles.cos(), angles.sin()], 1)


@attrs.frozen
class ModeReport:
    """``counts[k]``: high-quality samples at mode k; ``high_quality``: their fraction of all samples."""

    counts: tuple[int, ...]
    high_quality: float
    n: int

    @property
    def modes_covered(self) -> int:
        return sum(c > 0 for c in self.counts)

    def covered(self, min_count: int) -> int:
        """Modes holding at least ``min_count`` high-quality samples."""
        return sum(c >= min_count for c in self.counts)


def mode_report(
    x: Tensor, centres: Tensor | None = None, std: float = EIGHT_GAUSSIANS_STD, radius: float = 3.0
) -> ModeReport:
    """Assign ``x`` ``(N, 2)`` to the nearest of ``centres`` ``(K, 2)`` (default: ``8gaussians``); count within ``radius * std``."""
    centres = eight_gaussian_centres() if centres is None else centres.double()
    d = torch.cdist(x.double(), centres)  # (N, K)
    nearest, k = d.min(dim=1)  # (N,), (N,)
    good = nearest <= radius * std
    counts = torch.bincount(k[good], minlength=centres.shape[0])
    return ModeReport(tuple(int(c) for c in counts), float(good.double().mean()) if len(x) else 0.0, len(x))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gmkit_gan.modes RUN.h5``: the mode report of ``n`` seeded samples of a run on ``8gaussians``."""
    import gmkit_core as gm

    parser = argparse.ArgumentParser(prog="python -m gmkit_gan.modes", description=main.__doc__)
    parser.add_argument("run")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = mode_report(gm.load(args.run).sample(args.n, seed=args.seed))
    print(
        json.dumps(
            {
                "run": args.run,
                "n": report.n,
                "modes_covered": report.modes_covered,
                "min_count": min(report.counts),
                "high_quality": report.high_quality,
                "counts": list(report.counts),
            }
        )
    )


if __name__ == "__main__":
    main()
