"""Defaults by kind of data: vector trainer settings and options whose unset value depends on the data.

The figures they give are measured in docs/models/flows.md (2D toys); here: that they are the ones in force.
"""

from __future__ import annotations

import pytest
import torch
from gmkit_flows.autoregressive import MaskedAutoregressive
from gmkit_flows.elementwise import RationalQuadraticSpline
from gmkit_flows.linear import InvertibleLinear
from gmkit_flows.mixture import GaussianMixture, MADEMoG
from gmkit_flows.reshape import Squeeze

from gmkit_core.data import Dataset, DataSpec
from gmkit_core.registry import registry

VECTOR = DataSpec("toy", "vector", (2,))
IMAGE = DataSpec("img", "image", (1, 4, 4), levels=17)


def _splines(model) -> list[RationalQuadraticSpline]:
    maps = [getattr(m, "elementwise", None) for m in model.modules()]
    return [g for g in maps if isinstance(g, RationalQuadraticSpline)]


@pytest.mark.parametrize(("spec", "bins", "bound"), [(VECTOR, 16, 3.0), (IMAGE, 8, 5.0)])
def test_nsf_spline_defaults_depend_on_the_data(spec: DataSpec, bins: int, bound: float) -> None:
    model = registry.get("model", "nsf", data=spec, layers=1, hidden=8)
    splines = _splines(model)
    assert splines and all((s.bins, s.bound) == (bins, bound) for s in splines)
    explicit = registry.get("model", "nsf", data=spec, layers=1, hidden=8, bins=5, bound=2.0)
    assert all((s.bins, s.bound) == (5, 2.0) for s in _splines(explicit))


def test_vector_trainer_settings() -> None:
    for name in ("maf", "nsf", "realnvp"):
        cls = registry.entry("model", name).load()
        vector, image = cls.defaults_for(VECTOR), cls.defaults_for(IMAGE)
        assert vector["batch_size"] == 256 and vector["patience"] == 0 and vector["max_minutes"] == 0
        assert image == cls.train_defaults and image["batch_size"] == 64
    assert registry.entry("model", "nsf").load().defaults_for(VECTOR)["lr"] == 2e-3
    maf = registry.entry("model", "maf").load().defaults_for(VECTOR)
    assert (maf["lr"], maf["steps"]) == (2e-3, 12000)


@pytest.mark.parametrize(("spec", "layers", "rotations"), [(VECTOR, 5, True), (IMAGE, 10, False)])
def test_maf_depth_and_mixer_defaults_depend_on_the_data(spec: DataSpec, layers: int, rotations: bool) -> None:
    model = registry.get("model", "maf", data=spec, hidden=8)
    assert sum(isinstance(m, MaskedAutoregressive) for m in model.modules()) == layers
    assert any(isinstance(m, InvertibleLinear) for m in model.modules()) == rotations
    explicit = registry.get("model", "maf", data=spec, hidden=8, layers=3, mixer="none")
    assert sum(isinstance(m, MaskedAutoregressive) for m in explicit.modules()) == 3
    assert not any(isinstance(m, InvertibleLinear) for m in explicit.modules())


@pytest.mark.parametrize(
    ("name", "kind", "components", "options"),
    [("maf", MADEMoG, 20, {"layers": 1}), ("realnvp", GaussianMixture, 10, {})],
)
def test_mixture_bases_on_vectors_only(name: str, kind: type, components: int, options: dict) -> None:
    """Vectors get a mixture base, images the `base` prior; components=0 turns it off."""
    vector = registry.get("model", name, data=VECTOR, hidden=8, **options)
    assert isinstance(vector.base, kind) and vector.base.components == components
    assert not isinstance(registry.get("model", name, data=IMAGE, hidden=8, **options).base, kind)
    assert not isinstance(registry.get("model", name, data=VECTOR, hidden=8, components=0, **options).base, kind)


LARGE = DataSpec("patches", "image", (3, 32, 32), levels=256)


@pytest.mark.parametrize(("shape", "levels"), [((3, 32, 32), 3), ((1, 28, 28), 2), ((1, 20, 20), 2)])
def test_glow_levels_on_large_images(shape: tuple[int, int, int], levels: int) -> None:
    """As many levels (at most three) as halve the sides evenly; four steps each; small images keep the Config."""
    cls = registry.entry("model", "glow").load()
    assert cls.config_for(DataSpec("big", "image", shape, levels=256)) == {"levels": levels, "steps": 4, "dropout": 0.0}
    assert cls.config_for(IMAGE) == {} and cls.config_for(DataSpec("d", "image", (1, 8, 8), levels=17)) == {}
    model = registry.get("model", "glow", data=DataSpec("big", "image", shape, levels=256), hidden=4, blocks=1)
    assert sum(isinstance(m, Squeeze) for m in model.modules()) == 2 * levels  # squeeze and unsqueeze per level
    assert model.dropout == 0.0


def test_large_image_trainer_settings_and_options() -> None:
    for name in ("realnvp", "glow", "maf", "nsf"):
        cls = registry.entry("model", name).load()
        large = cls.defaults_for(LARGE)
        assert (large["batch_size"], large["steps"], large["patience"], large["max_minutes"]) == (32, 900, 0, 0)
        assert cls.defaults_for(IMAGE) == cls.train_defaults  # 8x8 digits: unchanged
    realnvp = registry.get("model", "realnvp", data=LARGE)
    assert (realnvp.config.scales, realnvp.config.steps, realnvp.config.hidden, realnvp.dropout) == (3, 2, 32, 0.0)
    explicit = registry.get("model", "glow", data=LARGE, levels=1, steps=1, hidden=4, dropout=0.1)
    assert (explicit.config.levels, explicit.config.steps, explicit.dropout) == (1, 1, 0.1)


def test_validation_on_large_images_takes_one_seeded_draw() -> None:
    """Large images validate on the one-draw bound (deterministic); small images on ``nll`` (K draws)."""
    torch.manual_seed(0)
    spec = DataSpec("big", "image", (1, 18, 18), levels=4)
    x = torch.randint(0, 4, (6, 1, 18, 18))
    data = Dataset(x, None, spec, "validation")
    model = registry.get("model", "glow", data=spec, levels=1, steps=1, hidden=4, blocks=1).eval()
    score = model.validation_score(data, batch_size=4)
    assert score == model.validation_score(data, batch_size=4)
    generator = torch.Generator().manual_seed(model.config.seed)
    with torch.no_grad():
        one_draw = torch.cat([model._nll(x[:4], 1, generator), model._nll(x[4:], 1, generator)])
    assert score == pytest.approx(float(one_draw.double().mean()), rel=1e-6)
    small = DataSpec("small", "image", (1, 4, 4), levels=4)
    model = registry.get("model", "glow", data=small, levels=1, steps=1, hidden=4, blocks=1).eval()
    data = Dataset(torch.randint(0, 4, (5, 1, 4, 4)), None, small, "validation")
    with torch.no_grad():
        nll = model.nll(data.batch(slice(0, 5)))
    assert model.validation_score(data) == pytest.approx(float(nll.double().mean()))
