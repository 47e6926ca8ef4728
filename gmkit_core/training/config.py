"""Trainer settings: a frozen attrs class, overridable with ``--set train.KEY=VALUE``."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs.validators import ge, gt, in_

__all__ = ["TrainConfig"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.frozen
class TrainConfig:
    """How a model is fitted. A model's ``train_defaults`` replace these defaults;
    the user's overrides replace both."""

    steps: int = attrs.field(default=5000, validator=ge(0), metadata=_help("total optimisation steps of the run"))
    batch_size: int = attrs.field(
        default=128, validator=gt(0), metadata=_help("examples per step (global, over all processes)")
    )
    lr: float = attrs.field(default=1e-3, validator=gt(0), metadata=_help("peak learning rate"))
    optimizer: Literal["adam", "adamw", "sgd"] = attrs.field(
        default="adam", validator=in_(("adam", "adamw", "sgd")), metadata=_help("optimiser")
    )
    weight_decay: float = attrs.field(default=0.0, validator=ge(0), metadata=_help("weight decay"))
    schedule: Literal["constant", "cosine"] = attrs.field(
        default="constant",
        validator=in_(("constant", "cosine")),
        metadata=_help("learning-rate schedule after warm-up"),
    )
    warmup: int = attrs.field(default=0, validator=ge(0), metadata=_help("linear warm-up steps"))
    grad_clip: float = attrs.field(
        default=0.0, validator=ge(0), metadata=_help("clip the gradient norm to this (0: off)")
    )
    accumulate: int = attrs.field(default=1, validator=gt(0), metadata=_help("micro-batches accumulated per step"))
    ema: float = attrs.field(
        default=0.0,
        validator=[ge(0), attrs.validators.lt(1)],
        metadata=_help("EMA decay of the weights used for evaluation and sampling (0: off)"),
    )
    eval_every: int = attrs.field(
        default=250, validator=ge(0), metadata=_help("steps between validation checks (0: only at the end)")
    )
    eval_batch_size: int = attrs.field(default=512, validator=gt(0), metadata=_help("batch size for validation"))
    patience: int = attrs.field(
        default=0, validator=ge(0), metadata=_help("stop after this many checks without improvement (0: never)")
    )
    checkpoint_every: int = attrs.field(
        default=1000, validator=ge(0), metadata=_help("steps between checkpoints (0: only at the end)")
    )
    sample_every: int = attrs.field(
        default=0, validator=ge(0), metadata=_help("steps between sample grids written beside the run (0: off)")
    )
    log_every: int = attrs.field(
        default=10, validator=gt(0), metadata=_help("steps between history records and loss checks")
    )
    max_minutes: float = attrs.field(
        default=0.0, validator=ge(0), metadata=_help("wall-clock budget in minutes (0: none)")
    )
    seed: int = attrs.field(default=0, metadata=_help("seed of weights, data order and noise"))
    device: str = attrs.field(default="auto", metadata=_help("cpu, cuda, cuda:N, mps or auto"))
    threads: int = attrs.field(
        default=0,
        validator=ge(0),
        metadata=_help(
            "CPU threads for torch (0: the CPUs this process may use, divided among "
            "the processes on this node; 1 is best on a busy machine)"
        ),
    )
    precision: Literal["fp32", "bf16", "fp16"] = attrs.field(
        default="fp32",
        validator=in_(("fp32", "bf16", "fp16")),
        metadata=_help(
            "training arithmetic: fp32, or mixed precision (autocast) in bf16 or fp16 with loss scaling; "
            "validation and evaluation stay in full precision"
        ),
    )
    compile: bool = attrs.field(
        default=False,
        metadata=_help("torch.compile the training step (falls back to eager with a message where it cannot compile)"),
    )
    channels_last: bool = attrs.field(default=False, metadata=_help("channels-last memory format for conv nets"))
    data_on_device: bool = attrs.field(
        default=True,
        metadata=_help("keep the training split on the device when it fits in a quarter of its free memory"),
    )
    quiet: bool = attrs.field(default=False, metadata=_help("no progress bar"))
    trainer: str = attrs.field(
        default="default", metadata=_help("registered trainer that fits the model (gmkit plugins lists them)")
    )
