"""The bound of a trained ddpm run on patches32, split by log-SNR band, in bits/dim.

``python plugins/gmkit-diffusion/scripts/bound_by_logsnr.py RUN.h5 N K``: the first ``N`` test
images, ``K`` stratified steps (one per stratum of ``round(linspace(1, T, K+1))`` per image, as in
the sampled bound), plus ``L_0`` and ``L_T``; the conditional bound (the marginal adds ``log 2`` nats).
"""

from __future__ import annotations

import math
import sys

import torch
from gmkit_diffusion import bound

from gmkit_core.artifact import load
from gmkit_core.data import load as load_data

BANDS = [(11, 99), (8, 11), (4, 8), (0, 4), (-4, 0), (-99, -4)]


def main(path: str, n: int, k: int) -> None:
    torch.set_num_threads(1)
    model = load(path).model.eval()
    data = load_data("patches32", "test")
    x, y = data.x[:n], (data.y[:n] if model.num_classes is not None else None)
    T, g = model.schedule.T, torch.Generator().manual_seed(0)
    edges = torch.linspace(1, T, k + 1).round().long()
    abar = model.schedule.alphas_cumprod
    logsnr = torch.log(abar / (1 - abar))
    per_band = dict.fromkeys(BANDS, 0.0)
    with torch.no_grad():
        for j in range(k):
            lo, hi = int(edges[j]) + 1, int(edges[j + 1])
            t = torch.randint(lo, hi + 1, (n,), generator=g)
            term = model.terms(x, y, t, torch.randn(x.shape, generator=g))[0].double() * (hi - lo + 1)
            for step, value in zip(t.tolist(), term.tolist(), strict=True):
                band = next(b for b in BANDS if b[0] <= float(logsnr[step - 1]) < b[1])
                per_band[band] += value / n
        first = torch.ones(n, dtype=torch.long)
        l0 = float(model.terms(x, y, first, torch.randn(x.shape, generator=g))[0].double().mean())
        lt = float(bound.prior_term(model.schedule, model.to_model_space(x)).double().mean())
    f = 1 / (data.spec.dims * math.log(2))
    print(f"L_0 {l0 * f:.4f} bits/dim, L_T {lt * f:.5f}")
    for b in BANDS:
        print(f"log SNR in [{b[0]}, {b[1]}): {per_band[b] * f:.4f} bits/dim")
    print(f"total {(l0 + lt + sum(per_band.values())) * f:.4f} (conditional)")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
