"""Defaults by kind of data: vector trainer settings and options whose unset value depends on the data.

The figures they give are measured in docs/models/flows.md (2D toys); here: that they are the ones in force.
"""

from __future__ import annotations

import pytest
from gmkit_flows.autoregressive import MaskedAutoregressive
from gmkit_flows.elementwise import RationalQuadraticSpline
from gmkit_flows.linear import InvertibleLinear
from gmkit_flows.mixture import GaussianMixture, MADEMoG

from gmkit_core.data import DataSpec
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
