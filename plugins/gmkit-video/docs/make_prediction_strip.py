"""Frame-prediction strip of a trained videogpt run: docs/models/video-prediction.png.

    python plugins/gmkit-video/docs/make_prediction_strip.py RUN.h5 docs/models/video-prediction.png [TEMPERATURE ...]

Rows come in groups for the first 4 test clips of moving_digits: the true clip; its
reconstruction (the decoder's mode given the clip's own codes: the most a prediction could show);
then the model's continuation after priming with its first 4 frames (frames 0-3 are the given
ones, 4-7 predicted, decoder mode, seed 0) for each prior temperature given (default: 1 only), in
the order given.
"""

from __future__ import annotations

import sys

import torch

import gmkit_core as gm
from gmkit_core.plots_video import frame_strip


def main(run_path: str, out: str, temperatures: tuple[float, ...] = (1.0,), clips: int = 4, frames: int = 4) -> None:
    model = gm.load(run_path).model.eval()
    truth = gm.data.load("moving_digits", "test").x[:clips]
    rows = [truth, model.decode(model.encode(truth), mode=True).cpu()]
    for temperature in temperatures:
        predicted = model.sample(
            clips,
            generator=torch.Generator().manual_seed(0),
            prime=truth,
            frames=frames,
            decode="mode",
            temperature=temperature,
        )
        rows.append(predicted.cpu())
    grouped = torch.stack(rows, dim=1).reshape(len(rows) * clips, *truth.shape[1:])
    frame_strip(grouped, out, levels=model.data.levels)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], tuple(float(a) for a in sys.argv[3:]) or (1.0,))
