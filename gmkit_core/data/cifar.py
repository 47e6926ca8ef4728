"""``cifar:FOLDER``: CIFAR-10 in its binary format (Krizhevsky, 2009).

The folder (or its ``cifar-10-batches-bin`` sub-folder, as the archive
unpacks) holds ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
``test_batch.bin``. Each file is a run of 3073-byte records: one label byte
(0-9), then 3072 bytes of a 32x32 colour image, the red plane, then green,
then blue, each row-major. So a record reshapes to ``(3, 32, 32)`` as is.

Splits: the five data batches in order form the training pool; its last tenth
is the validation split (records 45000-49999 of the real set, 5000 images),
the rest is train (45000); test is ``test_batch.bin`` (10000).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .spec import SPLITS, DataSpec

__all__ = ["cifar", "read_batch", "RECORD", "TRAIN_FILES", "TEST_FILE"]

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
VALIDATION_FRACTION = 10  # the last 1/10 of the training pool


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` uint8."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(
            f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
            "(1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary"
        )
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0]
    if int(labels.max()) > 9:
        raise DataError(f"{path}: label byte {int(labels.max())} is not a class 0-9; not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _folder(arg: str | None) -> Path:
    if not arg:
        raise DataError("cifar needs a folder, e.g. --data cifar:cifar-10-batches-bin")
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder (cifar:FOLDER wants the folder of data_batch_*.bin and test_batch.bin)"
        )
    nested = root / "cifar-10-batches-bin"
    return nested if not (root / TEST_FILE).exists() and nested.is_dir() else root


def cifar(arg: str | None, split: str) -> Dataset:
    """One split of CIFAR-10: ``(3, 32, 32)`` RGB, 256 levels, labels 0-9."""
    if split not in SPLITS:
        raise DataError(f"cifar: unknown split '{split}'; splits: {', '.join(SPLITS)}")
    root = _folder(arg)
    names = (TEST_FILE,) if split == "test" else TRAIN_FILES
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)} (CIFAR-10 binary version)")
    parts = [read_batch(root / name) for name in names]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if split != "test":
        cut = len(x) - len(x) // VALIDATION_FRACTION
        x, y = (x[:cut], y[:cut]) if split == "train" else (x[cut:], y[cut:])
    spec = DataSpec("cifar10", "image", (3, 32, 32), levels=256, num_classes=10)
    return Dataset(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64)), spec, split)
