"""The conformance kit passes a good model and catches each deliberately broken one."""

import pytest

from gmkit_core.testing import ConformanceError, check_model


def test_example_plugin_passes(gmkit_check):
    assert gmkit_check("independent").passed == ["build", "loss", "samples", "nll", "seed", "save_load", "devices"]
    gmkit_check("independent", data="moons")


def test_good_stochastic_model_passes(test_models):
    check_model("test_noisy", data="moons")


@pytest.mark.parametrize(
    "name, data, check",
    [
        ("test_globalrngsampler", "moons", r"\[seed\]"),
        ("test_plaintensor", "moons", r"\[devices\] model.offset is a plain tensor"),
        ("test_stochasticexact", "moons", r"\[nll\] the model says its nll is exact"),
        ("test_floatimages", "digits", r"\[samples\] images must be int64"),
    ],
)
def test_broken_models_are_caught(test_models, name, data, check):
    with pytest.raises(ConformanceError, match=check):
        check_model(name, data=data)


def test_positional_sample_keywords_are_caught(test_models):
    import gmkit_testmodels

    class Positional(gmkit_testmodels.Noisy):
        def sample(self, n, condition=None, generator=None):
            return super().sample(n, condition=condition, generator=generator)

    with pytest.raises(ConformanceError, match=r"\[build\] Positional.sample must take 'condition' as a keyword-only"):
        check_model(Positional, data="moons")
