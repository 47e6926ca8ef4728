"""The figures of docs/models/vqvae.md from a trained run.

    python plugins/gmkit-vqvae/docs/make_figures.py vq.h5 plugins/gmkit-vqvae/docs

writes vqvae_digits_reconstructions.png (rows alternate: 8 test images, their
reconstructions = the decoder's mode at the quantised code map),
vqvae_digits_samples_mode.png (prior samples decoded with decode=mode) and
vqvae_digits_samples_uniform_codes.png (codes drawn uniformly instead of from
the fitted prior, for contrast). Seeded: the same run gives the same pictures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import torch

import gmkit_core as gm
from gmkit_core.data import load
from gmkit_core.plots import save_samples_png


def main(run_path: str, out: str) -> None:
    model = gm.load(run_path).model.eval()
    folder = Path(out)
    x = load("digits", "test").x[:32]
    recon = model.reconstruct(x)
    rows = torch.cat([torch.cat([x[i : i + 8], recon[i : i + 8]]) for i in range(0, 32, 8)])
    print(save_samples_png(rows, model.data, folder / "vqvae_digits_reconstructions.png", ncol=8))
    model.config = attrs.evolve(model.config, decode="mode")  # the same codes, each pixel at its mode
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    print(save_samples_png(samples, model.data, folder / "vqvae_digits_samples_mode.png", ncol=8))
    model.prior_fitted.fill_(0)  # back to the uniform prior over codes
    samples = model.sample(64, generator=torch.Generator().manual_seed(0))
    print(save_samples_png(samples, model.data, folder / "vqvae_digits_samples_uniform_codes.png", ncol=8))


if __name__ == "__main__":
    main(*sys.argv[1:3])
