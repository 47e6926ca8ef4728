"""Drawing samples from a run: seeded, optionally conditional, with any registered sampler."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .config import make_config
from .errors import ConfigError
from .registry import registry

__all__ = ["draw", "ConfiguredSampler"]


class ConfiguredSampler:
    """Base of registered samplers whose options are an attrs ``Options`` class.

    ``Sampler(**options)`` validates ``options`` like model options
    (:func:`~gmkit_core.config.make_config`): an unknown key or a bad value is a
    :class:`ConfigError` naming it. Numbers and booleans are read as the text a
    user would type, so ``steps=2.5`` for an int option is refused rather than
    truncated. Subclasses set ``name``, ``Options``, ``needs_data`` and
    :meth:`applies_to`, and implement ``__call__(model, n, *, condition, generator, data)``.
    """

    name: ClassVar[str] = "sampler"
    Options: ClassVar[type]
    needs_data: ClassVar[bool] = False

    def __init__(self, **options: Any):
        text = {k: str(v) if isinstance(v, (bool, int, float)) else v for k, v in options.items()}
        self.options = make_config(self.Options, text, owner=f"sampler '{self.name}'")

    @staticmethod
    def applies_to(model: Any) -> str | None:
        """None when this sampler can draw from ``model``, else one line saying why not."""
        return None


def draw(
    run: Any,
    n: int,
    label: int | None = None,
    seed: int = 0,
    sampler: str | None = None,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """``n`` samples from ``run.model``; ``sampler`` names a registered sampler component.

    A sampler is built from ``options`` (validated by its ``Options`` class or
    signature: a bad value is a :class:`ConfigError` naming the option), then asked
    ``applies_to(model)``; a reason not to apply is a :class:`ConfigError` too.
    Without ``sampler``, ``options`` go to ``model.sample`` as keyword arguments.
    """
    model, options = run.model, dict(options or {})
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    device = next(model.parameters(), torch.zeros(())).device
    generator = torch.Generator(device).manual_seed(seed)
    condition = None
    if label is not None:
        if not model.conditional:
            if type(model).conditional and model.data.num_classes is None:
                raise ConfigError(
                    f"--label: this run's data ({model.data.name}) had no labels, so model "
                    f"'{run.record.model}' was trained unconditionally; sample without --label"
                )
            raise ConfigError(f"model '{run.record.model}' is not conditional; --label needs a conditional model")
        classes = model.data.num_classes
        if classes is not None and not 0 <= label < classes:
            raise ConfigError(f"--label {label} is out of range; this run's data has labels 0..{classes - 1}")
        condition = torch.full((n,), label, dtype=torch.long, device=device)
    with torch.no_grad():
        if sampler is None:
            return _sample_with_options(model, n, condition, generator, options, run.record.model)
        draw_fn = registry.get("sampler", sampler, **options)
        check = getattr(draw_fn, "applies_to", None)
        why = check(model) if callable(check) else None
        if why:
            raise ConfigError(f"sampler '{sampler}' cannot draw from model '{run.record.model}': {why}")
        data = None
        if getattr(draw_fn, "needs_data", False):
            from .data import load

            data = load(run.data_source, "train")
        return draw_fn(model, n, condition=condition, generator=generator, data=data)


def _sample_with_options(
    model: Any, n: int, condition: Any, generator: Any, options: dict[str, Any], name: str
) -> torch.Tensor:
    import inspect

    params = inspect.signature(model.sample).parameters
    extra = [k for k in options if k not in params or k in ("n", "condition", "generator")]
    if extra:
        allowed = ", ".join(k for k in params if k not in ("n", "condition", "generator")) or "none"
        raise ConfigError(f"model '{name}' sampling has no option {', '.join(map(repr, extra))}; options: {allowed}")
    return model.sample(n, condition=condition, generator=generator, **options)
