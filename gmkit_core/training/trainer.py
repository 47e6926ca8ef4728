"""The default trainer: one loop for every family.

Per step: draw a global batch from a seeded epoch permutation (each process
takes its slice under DDP), accumulate gradients over ``accumulate``
micro-batches of mean losses, clip, step the optimiser at the scheduled
learning rate, update the EMA. A model that owns its step
(:meth:`~gmkit_core.interfaces.GenerativeModel.train_step`) gets one optimiser
per named group and calls ``step.update(name, loss)`` itself; everything else
(EMA, validation, checkpoints of every optimiser, resume, DDP, the NaN guard,
progress) is the same. Every ``eval_every`` steps the evaluation
weights (EMA if on) are scored on the validation split under a forked RNG, so
evaluation never perturbs the training stream; the best weights are kept and
are what the run hands out. Checkpoints capture weights, EMA, optimiser, data
order and RNG states, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import nn

from ..data import Batch, Dataset
from ..errors import ConfigError, TrainingError
from ..interfaces import GenerativeModel, OptimizerGroup, Trainer
from .config import TrainConfig
from .distributed import World, world
from .ema import EMA

__all__ = ["Snapshot", "Outcome", "DefaultTrainer", "learning_rate", "default_threads"]


@attrs.define
class Snapshot:
    """Everything a checkpoint holds; ``trainer`` and ``history`` are plain trees."""

    weights: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, dict[str, Any]]  # optimiser state by group name
    trainer: dict[str, Any]
    history: dict[str, Any]


@attrs.define
class Outcome:
    """How the last ``fit`` ended."""

    step: int = 0
    best_step: int = 0
    best_score: float = math.inf
    interrupted: bool = False
    stopped_early: bool = False
    out_of_time: bool = False
    seconds: float = 0.0
    examples: int = 0


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then constant or cosine decay to 0."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.schedule == "cosine":
        span = max(config.steps - config.warmup, 1)
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(step - config.warmup, span) / span))
    return config.lr


def default_threads() -> int:
    """CPU threads for one process: the CPUs it may use, divided among the processes on this node (torchrun).

    torch's own default ignores other processes, which on a shared or multi-process
    machine oversubscribes the cores (runs many times slower).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


class _Compiled:
    """``torch.compile(module)`` that falls back to the eager module, with one message, if compiling fails.

    Random operations (dropout, noise) run as in eager mode (inductor's ``fallback_random``), so the
    compiled step draws the numbers the eager one draws. Under CPU autocast the C++ kernels are not
    vectorised (``cpp.simdlen=1``): torch 2.13's vectorised bf16 kernels gave NaN for a gated
    PixelCNN layer with dropout (docs/benchmarks.md, "Speed options").
    """

    def __init__(self, module: nn.Module, quiet: bool, cpu_autocast: bool):
        self.module, self.quiet = module, quiet
        options: dict[str, Any] = {"fallback_random": True}
        if cpu_autocast:
            options["cpp.simdlen"] = 1
        self.compiled: Any = torch.compile(module, options=options)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as exc:  # the compiler's failures are many and version-specific
                self.compiled = None
                if not self.quiet:
                    _stderr(
                        f"train.compile: cannot compile this model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); training eagerly"
                    )
        return self.module(*args)

    def no_sync(self) -> Any:
        return self.module.no_sync()  # type: ignore[operator]


def _clone(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class _LossModule(nn.Module):
    """``forward(x, y) = model.loss(Batch(x, y))``, so DDP sees a forward call."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return self.model.loss(Batch(x, y))


def _make_optimizer(config: TrainConfig, group: OptimizerGroup) -> torch.optim.Optimizer:
    params = list(group.params)
    lr = config.lr if group.lr is None else group.lr
    decay = config.weight_decay if group.weight_decay is None else group.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=decay, betas=group.betas or (0.9, 0.999))


class _OwnedStep:
    """The :class:`~gmkit_core.interfaces.Step` a model's ``train_step`` drives."""

    def __init__(self, loop: _Loop):
        self.loop = loop
        self.index = loop.step

    def update(self, name: str, loss: torch.Tensor) -> None:
        loop = self.loop
        if name not in loop.optimizers:
            raise KeyError(f"no optimizer group '{name}'; groups: {', '.join(loop.optimizers)}")
        optimizer, params = loop.optimizers[name], loop.groups[name]
        for p in params:
            p.grad = None
        loss.backward(inputs=params)  # gradients reach this group's parameters only
        if loop.world.distributed:
            _average_gradients(params, loop.world.size)
        if loop.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, loop.config.grad_clip)
        factor = learning_rate(loop.config, loop.step) / loop.config.lr
        for group, base in zip(optimizer.param_groups, loop.base_lr[name], strict=True):
            group["lr"] = base * factor
        optimizer.step()

    def next_batch(self) -> Batch:
        return self.loop._next_batch()


def _average_gradients(params: list[nn.Parameter], size: int) -> None:
    """All-reduce the gradients of ``params`` to their mean over processes (one flat buffer)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()


class DefaultTrainer(Trainer):
    """``fit(model, {"train": ds, "validation": ds}, TrainConfig)`` -> the model with its best weights.

    ``checkpoint(snapshot)`` is called (on rank 0) every ``checkpoint_every``
    steps, at the end and on Ctrl-C; ``samples(step, module)`` every
    ``sample_every`` steps. ``self.outcome`` tells how the run ended.
    """

    def __init__(
        self,
        checkpoint: Callable[[Snapshot], None] | None = None,
        samples: Callable[[int, GenerativeModel], None] | None = None,
    ):
        self.checkpoint = checkpoint
        self.samples = samples
        self.outcome = Outcome()

    def fit(
        self, model: GenerativeModel, data: dict[str, Dataset], config: Any, resume: Snapshot | None = None
    ) -> GenerativeModel:
        return _Loop(self, model, data, config, resume).run()


class _Loop:
    def __init__(
        self,
        owner: DefaultTrainer,
        model: GenerativeModel,
        data: dict[str, Dataset],
        config: TrainConfig,
        resume: Snapshot | None,
    ):
        self.owner, self.model, self.config, self.resume = owner, model, config, resume
        self.train, self.validation = data["train"], data.get("validation")
        self.data = data
        self.world: World = world(config.device)
        self.device = self.world.device(config.device)
        n = len(self.train)
        if config.batch_size % self.world.size:
            raise ConfigError(
                f"train.batch_size={config.batch_size} must be divisible by the {self.world.size} processes"
            )
        if n < config.batch_size:
            raise ConfigError(f"train.batch_size={config.batch_size} exceeds the {n} training examples")

    # -- set-up ----------------------------------------------------------------------
    def _setup(self) -> None:
        config, model = self.config, self.model
        self.threads = config.threads or default_threads()
        torch.set_num_threads(self.threads)
        torch.manual_seed(config.seed)
        self.order = torch.Generator().manual_seed(config.seed)
        self.perm = torch.randperm(len(self.train), generator=self.order)
        self.cursor = 0
        model.to(self.device)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
        if config.data_on_device and self.device.type != "cpu" and self._fits(self.train):
            self.train = Dataset(
                self.train.x.to(self.device),
                None if self.train.y is None else self.train.y.to(self.device),
                self.train.spec,
                self.train.split,
            )
        if self.resume is None:
            with torch.no_grad():
                model.prepare(self.train)
        self.owned = type(model).owns_step()
        if self.owned and config.accumulate > 1:
            raise ConfigError(
                f"train.accumulate={config.accumulate}: {type(model).__name__} runs its own "
                "training step, which does not accumulate micro-batches"
            )
        if self.owned and config.compile:
            raise ConfigError(
                f"train.compile: {type(model).__name__} runs its own training step; compiling applies "
                "to models trained through their loss"
            )
        if self.owned and config.precision == "fp16":
            raise ConfigError(
                f"train.precision=fp16: {type(model).__name__} runs its own training step, which "
                "has no loss scaling; use train.precision=bf16"
            )
        self.scaler = torch.amp.GradScaler(self.device.type) if config.precision == "fp16" else None
        self.groups = {name: list(group.params) for name, group in model.optimizer_groups().items() if group.params}
        self.optimizers = {
            name: _make_optimizer(config, group) for name, group in model.optimizer_groups().items() if group.params
        }
        self.base_lr = {name: [g["lr"] for g in opt.param_groups] for name, opt in self.optimizers.items()}
        self.params = [p for params in self.groups.values() for p in params]
        self.ema = EMA(model, config.ema) if config.ema > 0 else None
        self.step, self.best_score, self.best_step, self.bad_evals = 0, math.inf, 0, 0
        self.best: dict[str, torch.Tensor] | None = None
        self.history: dict[str, dict[str, list[float]]] = {"train": {}, "validation": {"step": [], "score": []}}
        if self.resume is not None:
            self._restore(self.resume)
        wrapped: nn.Module = _LossModule(model)
        if self.world.distributed and self.owned:
            import torch.distributed as dist

            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, 0)  # every process starts from rank 0's weights, as DDP does
        elif self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            unused = bool(getattr(type(model), "ddp_find_unused_parameters", False))
            wrapped = DistributedDataParallel(wrapped, device_ids=ids, find_unused_parameters=unused)
        cpu_autocast = self.device.type == "cpu" and _autocast_dtype(config.precision) is not None
        self.wrapped: Any = _Compiled(wrapped, config.quiet, cpu_autocast) if config.compile else wrapped

    def _fits(self, data: Dataset) -> bool:
        """The split takes at most a quarter of the device's free memory."""
        if self.device.type != "cuda":
            return False
        free, _ = torch.cuda.mem_get_info(self.device)
        size = data.x.numel() * data.x.element_size() + (0 if data.y is None else data.y.numel() * 8)
        return size <= free // 4

    def _autocast(self) -> Any:
        dtype = _autocast_dtype(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _header(self) -> None:
        if self.config.quiet or not self.world.is_main:
            return
        c = self.config
        plural = "s" if self.threads != 1 else ""
        where = f"{self.device}" + (f", {self.threads} CPU thread{plural}" if self.device.type == "cpu" else "")
        procs = f", {self.world.size} processes" if self.world.distributed else ""
        extras = "".join(f", {x}" for x, on in (("compiled", c.compile), ("channels-last", c.channels_last)) if on)
        _stderr(
            f"training {self.model.describe()} on {self.train.describe()}: {where}{procs}, {c.precision}{extras}, "
            f"batch {c.batch_size}, steps {self.step} -> {c.steps}"
        )

    def _restore(self, snap: Snapshot) -> None:
        self.model.load_state_dict(snap.weights)
        if self.ema is not None:
            self.ema.module.load_state_dict(snap.ema if snap.ema is not None else snap.weights)
        for name, state in (snap.optimizer or {}).items():
            if name not in self.optimizers:
                raise ConfigError(f"the checkpoint holds optimizer '{name}', which this model does not have")
            self.optimizers[name].load_state_dict(state)
        t = snap.trainer
        self.step, self.cursor = int(t["step"]), int(t["cursor"])
        self.best_score, self.best_step, self.bad_evals = (
            float(t["best_score"]),
            int(t["best_step"]),
            int(t["bad_evals"]),
        )
        self.best = snap.best
        self.perm = torch.as_tensor(t["perm"]).long()
        self.order.set_state(torch.as_tensor(t["order_rng"]).to(torch.uint8))
        torch.set_rng_state(torch.as_tensor(t["cpu_rng"]).to(torch.uint8))
        if self.scaler is not None and "loss_scaler" in t:
            self.scaler.load_state_dict(
                {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in t["loss_scaler"].items()}
            )
        if self.device.type == "cuda" and "cuda_rng" in t:
            torch.cuda.set_rng_state(torch.as_tensor(t["cuda_rng"]).to(torch.uint8), self.device)
        self.history = {
            group: {k: list(map(float, v)) for k, v in values.items()} for group, values in snap.history.items()
        }
        self.history.setdefault("validation", {"step": [], "score": []})
        self.history.setdefault("train", {})

    # -- the loop --------------------------------------------------------------------
    def run(self) -> GenerativeModel:
        self._setup()
        self._header()
        config, outcome = self.config, Outcome()
        self.owner.outcome = outcome
        start = time.perf_counter()
        self._sums: torch.Tensor | None = None
        self._keys: list[str] = []
        self._count = 0
        bar = self._progress()
        examples = 0
        try:
            while self.step < config.steps:
                self._train_step()
                examples += config.batch_size * config.accumulate
                self.step += 1
                if self.step % config.log_every == 0 or self.step == config.steps:
                    self._log(bar, examples / max(time.perf_counter() - start, 1e-9))
                if config.eval_every and self.step % config.eval_every == 0:
                    if self._evaluate(bar) and config.patience and self.bad_evals >= config.patience:
                        outcome.stopped_early = True
                        break
                if config.checkpoint_every and self.step % config.checkpoint_every == 0 and self.step < config.steps:
                    self._checkpoint()
                if config.sample_every and self.step % config.sample_every == 0:
                    self._samples()
                if config.max_minutes and time.perf_counter() - start > 60 * config.max_minutes:
                    outcome.out_of_time = True
                    break
        except KeyboardInterrupt:
            outcome.interrupted = True
        finally:
            if bar is not None:
                bar.close()
        outcome.seconds, outcome.examples = time.perf_counter() - start, examples
        if not outcome.interrupted and (self.best is None or self.history["validation"]["step"][-1:] != [self.step]):
            self._evaluate(None)
        outcome.step, outcome.best_step, outcome.best_score = self.step, self.best_step, self.best_score
        return self._finish(outcome)

    def _train_step(self) -> None:
        config, model = self.config, self.model
        model.train()
        model.step = self.step
        if not self.optimizers:
            return
        if self.owned:
            with self._autocast():
                out = model.train_step(self._next_batch(), _OwnedStep(self))
            self._accumulate(out, 1)
            self._after_update()
            return
        optimizer = self.optimizers["model"]
        lr = learning_rate(config, self.step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for micro in range(config.accumulate):
            batch = self._next_batch()
            sync = micro == config.accumulate - 1 or not self.world.distributed
            context = self.wrapped.no_sync() if not sync else contextlib.nullcontext()
            with context:
                with self._autocast():
                    out = self.wrapped(batch.x, batch.y)
                    loss = out["loss"].float() / config.accumulate
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            self._accumulate(out, config.accumulate)
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)  # clip the true gradients
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)  # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self._after_update()

    def _after_update(self) -> None:
        if self.ema is not None:
            self.ema.update(self.model)
        self._count += 1

    def _accumulate(self, out: dict[str, torch.Tensor], accumulate: int) -> None:
        """Running sums of the logged scalars: one stacked tensor, no host sync per step."""
        if not self._keys:
            self._keys = list(out)
        values = torch.stack([out[k].detach().float().reshape(()) for k in self._keys]) / accumulate
        self._sums = values if self._sums is None else self._sums + values

    def _next_batch(self) -> Batch:
        size = self.config.batch_size
        if self.cursor + size > len(self.perm):
            self.perm = torch.randperm(len(self.train), generator=self.order)
            self.cursor = 0
        index = self.perm[self.cursor : self.cursor + size]
        self.cursor += size
        if self.world.distributed:
            index = index[self.world.rank :: self.world.size]
        return self.train.batch(index).to(self.device)

    def _log(self, bar: Any, rate: float) -> None:
        if self._sums is None:
            return
        sums, count = self._sums.tolist(), self._count
        self._sums, self._count = None, 0
        lr = learning_rate(self.config, self.step - 1)
        values = {k: v / count for k, v in zip(self._keys, sums, strict=True)}
        if not all(math.isfinite(v) for v in values.values()):
            bad = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
            raise TrainingError(
                f"training diverged at step {self.step} ({bad}); the last good checkpoint is kept; "
                "try a lower learning rate (--set train.lr=...) or gradient clipping (--set train.grad_clip=1)"
            )
        hist = self.history["train"]
        hist.setdefault("step", []).append(float(self.step))
        for key, value in {**values, "lr": lr}.items():
            hist.setdefault(key, []).append(value)
        if bar is not None:
            bar.set_postfix_str(_postfix(values, rate), refresh=False)
            bar.update(self.step - bar.n)

    def _eval_module(self) -> GenerativeModel:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def _forked(self) -> Any:
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _evaluate(self, bar: Any) -> bool:
        """Score the evaluation weights on validation; True if a score was taken."""
        module = self._eval_module()
        if self.validation is None:
            self.best, self.best_step = _clone(module), self.step
            return False
        module.eval()
        with self._forked(), torch.no_grad():
            torch.manual_seed(self.config.seed + 1)
            score = float(module.validation_score(self.validation, self.config.eval_batch_size))
        self.history["validation"]["step"].append(float(self.step))
        self.history["validation"]["score"].append(score)
        improved = score < self.best_score or self.best is None
        if improved:
            self.best_score, self.best_step, self.bad_evals = score, self.step, 0
            self.best = _clone(module)
        else:
            self.bad_evals += 1
        if self.world.is_main and not self.config.quiet:
            line = f"step {self.step}: validation {score:.5g}" + (
                " (best)" if improved else f" (best {self.best_score:.5g} at {self.best_step})"
            )
            (bar.write if bar is not None else _stderr)(line)
        return True

    def _progress(self) -> Any:
        if self.config.quiet or not self.world.is_main:
            return None
        if not sys.stderr.isatty():
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.steps, initial=self.step, unit="step", dynamic_ncols=True, desc=type(self.model).__name__
        )

    # -- files -----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        t: dict[str, Any] = {
            "step": self.step,
            "cursor": self.cursor,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "perm": self.perm.clone(),
            "order_rng": self.order.get_state(),
            "cpu_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            t["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.scaler is not None:
            t["loss_scaler"] = self.scaler.state_dict()
        history = {
            g: {k: torch.tensor(v, dtype=torch.float64) for k, v in vals.items()} for g, vals in self.history.items()
        }
        return Snapshot(
            weights=_clone(self.model),
            best=self.best if self.best is not None else _clone(self._eval_module()),
            ema=_clone(self.ema.module) if self.ema is not None else None,
            optimizer={name: opt.state_dict() for name, opt in self.optimizers.items()},
            trainer=t,
            history=history,
        )

    def _checkpoint(self, snap: Snapshot | None = None) -> None:
        if self.owner.checkpoint is not None and self.world.is_main:
            self.owner.checkpoint(snap or self.snapshot())

    def _samples(self) -> None:
        if self.owner.samples is None or not self.world.is_main:
            return
        module = self._eval_module()
        module.eval()
        with self._forked(), torch.no_grad():
            self.owner.samples(self.step, module)

    def _finish(self, outcome: Outcome) -> GenerativeModel:
        snap = self.snapshot()
        model = self.model
        model.load_state_dict(snap.best)
        model.eval()
        if type(model).finish is not GenerativeModel.finish and not outcome.interrupted:
            model.finish(self.data, nested_fit(self.config))
            snap.best = _clone(model)
        for group, values in model.fit_history().items():
            snap.history[group] = {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
        self._checkpoint(snap)
        return model


def nested_fit(parent: TrainConfig) -> Callable[..., GenerativeModel]:
    """``fit(model, data, **overrides)`` for a model's extra stage: same trainer, in memory.

    Overrides are validated and converted like ``--set train.KEY=VALUE`` (strings allowed).
    """
    from ..config import config_to_dict, make_config

    def fit(model: GenerativeModel, data: dict[str, Dataset], **overrides: Any) -> GenerativeModel:
        settings = {
            **config_to_dict(parent),
            "checkpoint_every": 0,
            "sample_every": 0,
            "max_minutes": 0,
            **type(model).defaults_for(model.data),
            **overrides,
        }
        return DefaultTrainer().fit(model, data, make_config(TrainConfig, settings, owner="stage trainer"))

    return fit


def _postfix(values: dict[str, float], rate: float, most: int = 6) -> str:
    """The progress bar's figures: the loss, then up to ``most - 1`` more logged scalars, then the rate."""
    shown = ["loss", *[k for k in values if k != "loss"][: most - 1]]
    return "  ".join(f"{k} {values[k]:.4g}" for k in shown if k in values) + f"  {rate:,.0f} ex/s"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
