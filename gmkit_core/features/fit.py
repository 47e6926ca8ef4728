"""Training a :class:`~gmkit_core.features.classifier.ConvClassifier` on labelled images, reproducibly.

Cross-entropy, Adam with a cosine learning-rate decay, random shifts of up to ``shift`` pixels (zero padding) as
the only augmentation, dropout before the last layer; the weights with the least
validation cross-entropy are kept.
Runs on one CPU thread with ``torch.use_deterministic_algorithms(True)`` and
its own seeded generators, so the same data, settings and torch version give
bit-identical weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import Dataset
from ..errors import DataError
from .classifier import ConvClassifier, save_classifier

__all__ = ["train_classifier", "accuracy", "fit_file"]

NO_LABELS = (
    "{name} has no labels, so no classifier can be trained on it: give labelled data (npz/h5 arrays y, "
    "or PNG sub-folders per class), or use --features inception:/path/to/pt_inception-2015-12-05.pth "
    "(a local copy of the FID Inception-v3 weights)"
)


def accuracy(net: ConvClassifier, data: Dataset, batch_size: int = 1024) -> float:
    """Fraction of ``data`` whose arg-max logit is its label."""
    return _scores(net, data, batch_size)[0]


def _scores(net: ConvClassifier, data: Dataset, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy in nats) of ``net`` on labelled ``data``."""
    if data.y is None:
        raise DataError(NO_LABELS.format(name=data.spec.name))
    net.eval()
    right, nats = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            x, y = data.x[start : start + batch_size], data.y[start : start + batch_size]
            logits = net(x)
            right += int((logits.argmax(1) == y).sum())
            nats += float(F.cross_entropy(logits, y, reduction="sum"))
    return right / max(len(data), 1), nats / max(len(data), 1)


def _shift(x: Tensor, shift: int, generator: torch.Generator) -> Tensor:
    """Each image ``(N, C, H, W)`` moved by (dy, dx) uniform in [-shift, shift]^2, zero filled."""
    if shift == 0:
        return x
    h, w = x.shape[-2:]
    padded = F.pad(x, (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (x.shape[0], 2), generator=generator)
    out = torch.empty_like(x)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            pick = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
            out[pick] = padded[pick, :, dy : dy + h, dx : dx + w]
    return out


def train_classifier(
    train: Dataset,
    validation: Dataset | None = None,
    *,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    shift: int = 1,
    width: int = 64,
    feature_dim: int = 64,
    dropout: float = 0.3,
    eval_every: int = 50,
) -> tuple[ConvClassifier, dict[str, Any]]:
    """Fit a classifier; returns it (best validation weights) and a description of the fit."""
    spec = train.spec
    if spec.kind != "image" or spec.levels is None:
        raise DataError(
            f"{spec.name}: feature classifiers are trained on images; vector data uses the "
            "'points' extractor (its features are the points themselves)"
        )
    if train.y is None or spec.num_classes is None:
        raise DataError(NO_LABELS.format(name=spec.name))
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):  # weights and dropout from the seed; the caller's RNG untouched
            torch.manual_seed(seed)
            net = ConvClassifier(spec.shape[0], spec.levels, spec.num_classes, width, feature_dim, dropout)
            best_score, best_step = _optimise(net, train, validation, steps, batch_size, lr, seed, shift, eval_every)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    net.eval()
    info = {
        "data": spec.name,
        "train_examples": len(train),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "shift": shift,
        "dropout": dropout,
        "best_step": best_step,
        "validation_accuracy": best_score,
        "torch_version": torch.__version__.split("+")[0],
    }
    return net, info


def _optimise(
    net: ConvClassifier,
    train: Dataset,
    validation: Dataset | None,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    shift: int,
    eval_every: int,
) -> tuple[float, int]:
    """The training loop; loads the weights of least validation cross-entropy.

    Returns (validation accuracy of those weights, or -1 without validation data; their step).
    """
    order = torch.Generator().manual_seed(seed + 1)
    augment = torch.Generator().manual_seed(seed + 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    best: tuple[float, float, int, dict[str, Tensor]] = (math.inf, -1.0, steps, {})
    assert train.y is not None  # checked by train_classifier
    perm, cursor = torch.randperm(len(train), generator=order), 0
    for step in range(1, steps + 1):
        if cursor + batch_size > len(perm):
            perm, cursor = torch.randperm(len(train), generator=order), 0
        index = perm[cursor : cursor + batch_size]
        cursor += batch_size
        for group in optimizer.param_groups:  # cosine decay to 0
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))
        net.train()
        loss = F.cross_entropy(net(_shift(train.x[index], shift, augment)), train.y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if validation is not None and (step % eval_every == 0 or step == steps):
            right, nats = _scores(net, validation)
            if nats < best[0]:
                best = (nats, right, step, {k: v.clone() for k, v in net.state_dict().items()})
    if best[3]:
        net.load_state_dict(best[3])
    return best[1], best[2]


def fit_file(source: str, out: str | Path, *, steps: int = 1000, seed: int = 0, **settings: Any) -> dict[str, Any]:
    """Train on ``source``'s train split (validation split for the checkpoint), score on test, write ``out``."""
    from ..data import load

    train = load(source, "train")
    try:
        validation: Dataset | None = load(source, "validation")
    except DataError:
        validation = None
    net, info = train_classifier(train, validation, steps=steps, seed=seed, **settings)
    test = load(source, "test")
    info["data"] = source
    info["test_accuracy"] = accuracy(net, test)
    info["test_examples"] = len(test)
    info["sha256"] = save_classifier(out, net, train.spec, info)
    return info
