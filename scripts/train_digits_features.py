"""Train the digits feature extractor shipped in gmkit_core/features/digits_cnn.h5.

A small conv classifier (gmkit_core.features.classifier.ConvClassifier) on the
digits TRAIN split only, the validation split choosing the checkpoint, fixed
seeds, one thread, torch.use_deterministic_algorithms(True): re-running gives
the same weights bit for bit (same torch version, same CPU kind: torch's CPU
capability AVX512 for the shipped file). Prints the test accuracy and the
file's sha256; the shipped file's sha256 is recorded in
gmkit_core/features/classifier.py (DIGITS_SHA256) and docs/metrics.md.

    python scripts/train_digits_features.py                 # rewrites the shipped file
    python scripts/train_digits_features.py --out /tmp/d.h5  # anywhere else
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gmkit_core.features.classifier import DIGITS_FILE
from gmkit_core.features.fit import fit_file

#: the settings of the shipped file
SETTINGS = {
    "steps": 1000,
    "seed": 0,
    "batch_size": 64,
    "lr": 2e-3,
    "shift": 1,
    "width": 64,
    "feature_dim": 64,
    "dropout": 0.3,
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DIGITS_FILE, help="where to write the .h5 file")
    args = parser.parse_args(argv)
    info = fit_file("digits", args.out, **SETTINGS)
    print(json.dumps(info, indent=2))
    return info


if __name__ == "__main__":
    main()
