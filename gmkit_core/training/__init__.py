"""Training: the default trainer, its settings, and ``train`` (what ``gmkit train`` runs)."""

from .config import TrainConfig
from .run import TrainResult, train
from .trainer import DefaultTrainer, Outcome, Snapshot, learning_rate, nested_fit

__all__ = [
    "TrainConfig",
    "DefaultTrainer",
    "Outcome",
    "Snapshot",
    "TrainResult",
    "train",
    "learning_rate",
    "nested_fit",
]
