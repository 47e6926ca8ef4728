"""A small convolutional classifier as a feature extractor, stored in HDF5 without pickle.

The network maps images of levels ``x`` in ``[0, L)`` to ``u = x / (L - 1) - 1/2``,
then three 3x3 convolutions (one 2x2 max-pool), an adaptive average pool to
4x4, a linear layer to ``feature_dim`` units with ReLU (the *features*, the
penultimate layer), dropout while training, and a linear layer to the class logits.

File layout (``.h5``): group ``weights`` holds one float32 dataset per state-dict
key; the root attributes hold ``format`` (``"gmkit-features"``), ``version``,
the architecture (``channels``, ``height``, ``width``, ``levels``,
``num_classes``, ``width_channels``, ``feature_dim``), the data it was trained
on, ``weights_sha256`` (sha256 over the sorted keys and little-endian float32
bytes), ``test_accuracy`` and the training settings. Loading reads arrays
only: no code runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import DataSpec
from ..errors import DataError
from .base import FIT_HINT, FeatureExtractor, batched, check_images, file_sha256

__all__ = [
    "ConvClassifier",
    "ClassifierFeatures",
    "save_classifier",
    "weights_sha256",
    "digits",
    "DIGITS_FILE",
    "DIGITS_SHA256",
]

FORMAT = "gmkit-features"
VERSION = 1
DIGITS_FILE = Path(__file__).with_name("digits_cnn.h5")
#: sha256 of the shipped file, written by scripts/train_digits_features.py (also in docs/metrics.md).
DIGITS_SHA256 = "788168eb90c1c6916428cf459f9a8c9e3780e3339c2f9b7cc9f0baa66f58f114"


class ConvClassifier(nn.Module):
    """Images ``(N, C, H, W)`` of ``levels`` levels -> logits ``(N, K)``; :meth:`features` -> ``(N, feature_dim)``."""

    def __init__(
        self, channels: int, levels: int, num_classes: int, width: int = 32, feature_dim: int = 64, dropout: float = 0.0
    ):
        super().__init__()
        self.levels = levels
        self.body = nn.Sequential(
            nn.Conv2d(channels, width // 2, 3, padding=1),
            nn.ReLU(),  # (N, w/2, H, W)
            nn.Conv2d(width // 2, width, 3, padding=1),
            nn.ReLU(),  # (N, w, H, W)
            nn.MaxPool2d(2, ceil_mode=True),  # (N, w, H/2, W/2)
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),  # (N, w, H/2, W/2)
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # (N, 16 w)
            nn.Linear(16 * width, feature_dim),
            nn.ReLU(),  # (N, feature_dim)
        )
        self.dropout = nn.Dropout(dropout)  # training only
        self.head = nn.Linear(feature_dim, num_classes)  # (N, K)

    def features(self, x: Tensor) -> Tensor:
        u = x.float() / (self.levels - 1) - 0.5
        return self.body(u)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))


def weights_sha256(state: dict[str, Tensor]) -> str:
    """sha256 over sorted keys and their little-endian float32 bytes."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes())
    return digest.hexdigest()


def save_classifier(path: str | Path, net: ConvClassifier, spec: DataSpec, info: dict[str, Any]) -> str:
    """Write ``net`` and its description to ``path`` (no timestamps, so equal weights give equal bytes).

    Returns the sha256 of the written file.
    """
    import h5py

    state = {k: v.detach().cpu().to(torch.float32) for k, v in net.state_dict().items()}
    arch = {
        "channels": spec.shape[0],
        "height": spec.shape[1],
        "width": spec.shape[2],
        "levels": spec.levels,
        "num_classes": net.head.out_features,
        "width_channels": net.body[2].out_channels,
        "feature_dim": net.head.in_features,
    }
    with h5py.File(path, "w", track_order=True) as f:
        group = f.create_group("weights", track_order=True)
        for key in sorted(state):
            group.create_dataset(key, data=state[key].numpy(), track_times=False)
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        for key, value in {**arch, **info}.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        f.attrs["weights_sha256"] = weights_sha256(state)
    return file_sha256(path)


class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features and logits of a :class:`ConvClassifier` read from an ``.h5`` file.

    Arguments:
        path: the file written by ``gmkit features fit`` or ``save_classifier``.
        name: what results call it (default: ``"conv classifier (file NAME)"``).
        expected_sha256: refuse the file unless its sha256 is this.
    """

    def __init__(
        self, path: str | Path, name: str | None = None, expected_sha256: str | None = None, batch_size: int = 1024
    ):
        import h5py

        path = Path(path)
        if not path.is_file():
            raise DataError(f"feature weights file {path} does not exist; {FIT_HINT}")
        self.sha256 = file_sha256(path)
        if expected_sha256 and self.sha256 != expected_sha256:
            raise DataError(
                f"{path}: sha256 {self.sha256} differs from the recorded {expected_sha256}; the file was "
                "changed; reinstall gmkit-core or rebuild it with scripts/train_digits_features.py"
            )
        try:
            with h5py.File(path, "r") as f:
                attrs = dict(f.attrs)
                if attrs.get("format") != FORMAT:
                    raise DataError(f"{path}: not a gmkit feature file (no format mark '{FORMAT}'); {FIT_HINT}")
                state = {k: torch.from_numpy(f["weights"][k][()]) for k in f["weights"]}
        except OSError as exc:
            raise DataError(f"{path}: cannot read feature weights ({exc})") from None
        self.attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in attrs.items()}
        a = self.attrs
        self.shape = (int(a["channels"]), int(a["height"]), int(a["width"]))
        self.levels = int(a["levels"])
        self.num_classes = int(a["num_classes"])
        self.dim = int(a["feature_dim"])
        self.net = ConvClassifier(self.shape[0], self.levels, self.num_classes, int(a["width_channels"]), self.dim)
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(
                f"{path}: weights do not fit the recorded architecture ({str(exc).splitlines()[0]})"
            ) from None
        if weights_sha256(state) != a.get("weights_sha256"):
            raise DataError(f"{path}: weights do not match their recorded weights_sha256; the file is damaged")
        self.net.eval()
        self.name = name or f"conv classifier (file {path.name})"
        self.batch_size = batch_size

    @property
    def test_accuracy(self) -> float | None:
        value = self.attrs.get("test_accuracy")
        return None if value is None else float(value)

    def check(self, spec: DataSpec) -> None:
        if spec.kind != "image" or tuple(spec.shape) != self.shape or spec.levels != self.levels:
            got = f"{spec.kind} {tuple(spec.shape)}" + (f" with {spec.levels} levels" if spec.levels else "")
            raise DataError(
                f"feature extractor {self.name} takes images {self.shape} with {self.levels} levels, "
                f"got {spec.name}: {got}; {FIT_HINT}"
            )

    def features(self, x: Tensor) -> Tensor:
        check_images(x, self.name, (self.shape,), self.levels)
        return batched(self.net.features, x.cpu(), self.batch_size)

    def logits(self, x: Tensor) -> Tensor:
        check_images(x, self.name, (self.shape,), self.levels)
        return batched(self.net, x.cpu(), self.batch_size)


def digits() -> ClassifierFeatures:
    """The shipped extractor for ``digits`` (1 x 8 x 8, 17 levels): see docs/metrics.md for how it was made."""
    if not DIGITS_FILE.is_file():
        raise DataError(
            f"the shipped digits feature file {DIGITS_FILE} is missing; reinstall gmkit-core "
            "(or rebuild it with python scripts/train_digits_features.py)"
        )
    return ClassifierFeatures(DIGITS_FILE, name="digits-cnn", expected_sha256=DIGITS_SHA256 or None)
