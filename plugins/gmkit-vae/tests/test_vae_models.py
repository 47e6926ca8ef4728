"""Every registered VAE variant: builds from the registry, trains, samples, bounds, the latent protocol, errors."""

from __future__ import annotations

import math
import types

import pytest
import torch
from gmkit_vae.hierarchical import MarkovPosterior, MarkovPrior

from gmkit_core import hookimpl
from gmkit_core.data import Batch, Dataset, DataSpec, load
from gmkit_core.distributions import Normal
from gmkit_core.errors import ConfigError, DataError, NotRegisteredError
from gmkit_core.interfaces import Prior
from gmkit_core.registry import registry

VARIANTS = ["vae", "beta_vae", "cvae", "iwae", "hvae"]
SMALL = {"latent_dim": 4, "hidden": (32,), "iwae_k": 6, "iwae_chunk": 4, "warmup_steps": 10}


@pytest.fixture(scope="module")
def digits():
    return load("digits", "train")


def build(name: str, spec: DataSpec, **over):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return registry.get("model", name, data=spec, **{**SMALL, **over})


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_trains_samples_and_bounds(name: str, digits) -> None:  # type: ignore[no-untyped-def]
    model = build(name, digits.spec)
    assert model.likelihood == "bound" and model.conditional == (name == "cvae")
    batch = digits.batch(slice(0, 16))
    model.step = 5
    out = model.loss(batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    nll = model.nll(batch)
    assert nll.shape == (16,) and torch.all(nll > 0)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x = model.sample(5, generator=g())
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.int64 and 0 <= int(x.min()) and int(x.max()) < 17
    assert torch.equal(x, model.sample(5, generator=g()))
    condition = batch.y if model.conditional else None
    z = model.encode(batch.x, condition)
    assert z.shape == (16, 4)
    assert model.decode(z, condition, generator=g()).shape == batch.x.shape
    test = load("digits", "test")
    small = Dataset(test.x[:40], test.y[:40], test.spec, "test")
    report = model.evaluate(small, batch_size=32)
    assert report["exact"] is False and report["n"] == 40 and report["iwae_k"] == 6
    assert report["bits_per_dim"] == pytest.approx(report["nll_nats"] / (64 * math.log(2)))
    iwae = "conditional_iwae_" if model.conditional else "iwae_"  # cvae: the IWAE bound given the labels
    assert report[f"{iwae}bits_per_dim"] == pytest.approx(report[f"{iwae}nll_nats"] / (64 * math.log(2)))
    if model.conditional:  # headline: -ELBO's log-mean-exp over the 10 labels; given the label: -ELBO
        assert report["conditional"] and report["nll_nats"] != report["conditional_nll_nats"]
    assert report == model.evaluate(small, batch_size=32)  # fixed noise
    assert model.validation_score(small) == pytest.approx(model.validation_score(small))  # fixed noise


def test_iwae_bound_is_tighter_than_the_elbo_on_average(digits) -> None:  # type: ignore[no-untyped-def]
    model = build("vae", digits.spec)
    batch = digits.batch(slice(0, 64))
    g = torch.Generator().manual_seed(0)
    model.eval()
    with torch.no_grad():
        elbo_nll = torch.stack([model.nll(batch, g) for _ in range(10)]).mean()
        iwae_nll = model.iwae_nll(batch, k=50, generator=g).mean()
    assert iwae_nll < elbo_nll


def test_kl_warmup_and_beta() -> None:
    spec = DataSpec("d", "image", (1, 4, 4), levels=17)
    model = build("beta_vae", spec, beta=3.0, warmup_steps=100)
    for step, weight in ((0, 0.0), (50, 1.5), (100, 3.0), (10_000, 3.0)):
        model.step = step
        assert model.kl_weight() == pytest.approx(weight)
    plain = build("vae", spec, warmup_steps=0)
    assert plain.kl_weight() == 1.0


def test_conditional_model_needs_and_uses_labels(digits) -> None:  # type: ignore[no-untyped-def]
    model = build("cvae", digits.spec)
    with pytest.raises(DataError):
        model.loss(Batch(digits.x[:4]))
    with pytest.raises(DataError):
        build("cvae", DataSpec("u", "image", (1, 4, 4), levels=17))
    labels = torch.full((6,), 3)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert model.sample(6, condition=labels, generator=g()).shape == (6, 1, 8, 8)
    assert not torch.equal(
        model.sample(6, condition=labels, generator=g()), model.sample(6, condition=torch.full((6,), 7), generator=g())
    )


def test_vector_data_gets_a_gaussian_decoder() -> None:
    data = load("moons", "train")
    model = build("vae", data.spec)
    batch = data.batch(slice(0, 32))
    assert torch.isfinite(model.loss(batch)["loss"])
    x = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 2) and x.is_floating_point()
    assert "bits_per_dim" not in model.evaluate(load("moons", "test"), batch_size=1000)


@pytest.mark.parametrize(
    ("over", "spec"),
    [
        ({"output": "gaussian"}, DataSpec("d", "image", (1, 8, 8), levels=17)),
        ({"output": "bernoulli"}, DataSpec("d", "image", (1, 8, 8), levels=17)),
        ({"output": "categorical"}, DataSpec("v", "vector", (2,))),
        ({"network": "conv"}, DataSpec("d", "image", (1, 6, 6), levels=17)),
        ({"network": "conv"}, DataSpec("v", "vector", (2,))),
        ({"network": "resnet"}, DataSpec("d", "image", (1, 8, 8), levels=17)),
        ({"latent_dim": 0}, DataSpec("d", "image", (1, 8, 8), levels=17)),
        ({"hidden": ()}, DataSpec("d", "image", (1, 8, 8), levels=17)),
    ],
)
def test_bad_options_are_config_errors(over: dict, spec: DataSpec) -> None:
    with pytest.raises(ConfigError):
        build("vae", spec, **over)


def test_unknown_prior_names_the_missing_component() -> None:
    with pytest.raises(NotRegisteredError, match="no-such-prior"):
        build("vae", DataSpec("d", "image", (1, 4, 4), levels=17), prior="no-such-prior")


@pytest.mark.parametrize(
    ("levels", "output"),
    [(2, "auto"), (17, "auto"), (17, "categorical"), (17, "logistic"), (5, "logistic_mixture"), (2, "categorical")],
)
def test_discrete_observations_are_normalised(levels: int, output: str) -> None:
    """Summing P(x = k) over every level of a one-pixel image gives 1 (and auto picks Bernoulli for 2 levels)."""
    spec = DataSpec("px", "image", (1, 1, 1), levels=levels)
    model = build("vae", spec, output=output, mixtures=3)
    obs = model.decoder.observation
    if output == "auto":
        assert obs.name == ("bernoulli" if levels == 2 else "logistic_mixture")
    raw = 3 * torch.randn(4, 1, 1, 1, obs.params, dtype=torch.float64)  # 4 random parameter sets
    dist = obs(raw)
    total = sum(dist.log_prob(torch.full((4, 1, 1, 1), k)).exp() for k in range(levels))
    torch.testing.assert_close(total, torch.ones(4, dtype=torch.float64))


def test_conv_network_is_chosen_for_larger_images() -> None:
    spec = DataSpec("big", "image", (3, 16, 16), levels=256)
    model = build("vae", spec, channels=4)
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    x = torch.randint(0, 256, (2, 3, 16, 16))
    assert model.nll(Batch(x)).shape == (2,)
    assert model.sample(2).shape == (2, 3, 16, 16)
    assert not any(
        isinstance(m, torch.nn.Conv2d) for m in build("vae", DataSpec("s", "image", (1, 8, 8), levels=17)).modules()
    )


def test_markov_chain_densities_match_a_hand_sum() -> None:
    torch.manual_seed(0)
    model = build("hvae", DataSpec("d", "image", (1, 4, 4), levels=17), layers=3, latent_dim=2)
    q = model.encoder(torch.randint(0, 17, (5, 1, 4, 4)))
    assert isinstance(q, MarkovPosterior) and isinstance(model.prior, MarkovPrior)
    z = q.rsample(sample_shape=(2,))  # (2, 5, 6)
    z1, z2, z3 = z.split(2, dim=-1)
    up, down = model.encoder.links, model.prior.links
    log_q = q.first.log_prob(z1) + up[0](z1).log_prob(z2) + up[1](z2).log_prob(z3)
    torch.testing.assert_close(q.log_prob(z), log_q)
    flat = z.reshape(10, 6)
    a, b, c = flat.split(2, dim=-1)
    std = Normal(torch.zeros(10, 2), torch.ones(10, 2), event_dims=1)
    log_p = std.log_prob(c) + down[1](c).log_prob(b) + down[0](b).log_prob(a)
    torch.testing.assert_close(model.prior.log_prob(flat), log_p)
    assert model.prior.sample(4).shape == (4, 6) and model.encode(torch.randint(0, 17, (5, 1, 4, 4))).shape == (5, 2)


class _ShiftedPrior(Prior):
    """N(1, I): registered under a test-only name to check that priors are found by name and get Monte Carlo KL."""

    def __init__(self, shape: int = 1):
        super().__init__()
        self.dim = shape

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return Normal(torch.ones_like(z), torch.ones_like(z), event_dims=1).log_prob(z)

    def sample(
        self, n: int, *, condition: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return 1 + torch.randn(n, self.dim, generator=generator)


def test_prior_is_built_by_name_with_monte_carlo_kl() -> None:
    if "vae-test-shifted" not in registry.names("prior"):
        plugin = types.ModuleType("gmkit_vae_test_prior")
        plugin.GMKIT_API = 2  # type: ignore[attr-defined]

        @hookimpl
        def gmkit_register_components(register):  # type: ignore[no-untyped-def]
            register("prior", "vae-test-shifted", f"{__name__}:_ShiftedPrior")

        plugin.gmkit_register_components = gmkit_register_components  # type: ignore[attr-defined]
        registry.add_plugin(plugin, "gmkit-vae-tests")
    model = build("vae", DataSpec("d", "image", (1, 4, 4), levels=17), prior="vae-test-shifted")
    assert isinstance(model.prior, _ShiftedPrior)
    x = torch.randint(0, 17, (3, 1, 4, 4))
    model.eval()
    with torch.no_grad():
        q = model.encoder(x)
        kls = model.bound(Batch(x.repeat(4000, 1, 1, 1))).kl.view(4000, 3)  # (S, 3) one-draw estimates
    exact = q.kl(Normal(torch.ones_like(q.loc), torch.ones_like(q.loc), event_dims=1))
    assert torch.all((kls.mean(0) - exact).abs() < 5 * kls.std(0) / math.sqrt(4000))


def test_beta_vae_is_validated_on_its_own_objective(digits) -> None:  # type: ignore[no-untyped-def]
    """Validation scores -(log p(x|z) - beta KL) under fixed noise; beta = 1 is the mean -ELBO."""
    small = Dataset(digits.x[:50], digits.y[:50], digits.spec, "validation")
    spec = digits.spec
    for name, beta in (("vae", 1.0), ("beta_vae", 3.0)):
        model = build(name, spec, **({"beta": beta} if name == "beta_vae" else {}))
        model.eval()
        with torch.no_grad():
            terms = model.bound(Batch(small.x, small.y), torch.Generator().manual_seed(0))
        expected = float(-(terms.reconstruction - beta * terms.kl).double().mean())
        assert model.validation_score(small) == pytest.approx(expected, rel=1e-6)


def test_iwae_is_validated_on_its_training_bound(digits) -> None:  # type: ignore[no-untyped-def]
    small = Dataset(digits.x[:50], digits.y[:50], digits.spec, "validation")
    model = build("iwae", digits.spec, k=3)
    model.eval()
    with torch.no_grad():
        expected = float(model.iwae_nll(Batch(small.x), 3, torch.Generator().manual_seed(0)).double().mean())
    assert model.validation_score(small) == pytest.approx(expected, rel=1e-6)
