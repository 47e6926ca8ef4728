"""2D density pictures: the colour scale is set by the bulk of the map, not by its largest value."""

import numpy as np
import pytest
import torch

from gmkit_core import plots
from gmkit_core.data import load
from gmkit_core.registry import registry


def test_colour_limit_lets_a_spike_saturate() -> None:
    density = np.full((50, 50), 0.1)
    density[3, 4] = 1000.0  # one spike: a linear scale up to it would show the rest as black
    assert plots.colour_limit(density) == pytest.approx(0.1)
    assert plots.colour_limit(np.linspace(0.0, 1.0, 10_001)) == pytest.approx(0.995, abs=1e-4)
    assert plots.colour_limit(np.zeros((4, 4))) is None


def test_density_picture_draws_the_map_with_that_limit(tmp_path, monkeypatch) -> None:
    import matplotlib.axes

    train = load("moons:200", "train")
    torch.manual_seed(0)
    model = registry.get("model", "independent", data=train.spec)
    with torch.no_grad():  # as the trainer calls it
        model.prepare(train)
    seen: list[tuple[int, ...]] = []
    monkeypatch.setattr(plots, "colour_limit", lambda d: seen.append(d.shape) or 0.125)
    limits: list[object] = []
    imshow = matplotlib.axes.Axes.imshow
    monkeypatch.setattr(
        matplotlib.axes.Axes, "imshow", lambda ax, *a, **k: limits.append(k.get("vmax")) or imshow(ax, *a, **k)
    )
    path = plots.density_picture(model.eval(), train.x, tmp_path / "d.png", resolution=24)
    assert seen == [(24, 24)] and limits == [0.125] and path.stat().st_size > 1000
