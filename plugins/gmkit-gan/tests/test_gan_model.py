"""gan and cgan: data space, the two optimisers, n_critic, training health, errors, validation score."""

from __future__ import annotations

import warnings

import pytest
import torch
from gmkit_gan.model import GAN, DiscriminatorDominanceWarning
from hypothesis import given, settings
from hypothesis import strategies as st

from gmkit_core.data import Batch, DataSpec, load
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.registry import registry

DIGITS = DataSpec("digits", "image", (1, 8, 8), levels=17, num_classes=10)
SMALL_CONV = {"channels": 8, "features": 16, "latent_dim": 4}


class RecordingStep:
    """A Step with real Adam optimisers that records which parameters each update changed."""

    def __init__(self, model: GAN, batches: list[Batch]):
        self.index = 0
        self.model = model
        self.groups = {name: list(g.params) for name, g in model.optimizer_groups().items()}
        self.optimizers = {name: torch.optim.Adam(params, lr=1e-2) for name, params in self.groups.items()}
        self.batches = iter(batches)
        self.changed: list[tuple[str, set[str]]] = []
        self.drawn = 0

    def update(self, name: str, loss: torch.Tensor) -> None:
        before = {k: p.detach().clone() for k, p in self.model.named_parameters()}
        for p in self.groups[name]:
            p.grad = None
        loss.backward(inputs=self.groups[name])
        self.optimizers[name].step()
        after = dict(self.model.named_parameters())
        self.changed.append((name, {k for k, v in before.items() if not torch.equal(v, after[k].detach())}))

    def next_batch(self) -> Batch:
        self.drawn += 1
        return next(self.batches)


def _digits_batches(n: int, size: int = 16) -> list[Batch]:
    data = load("digits", "train")
    return [data.batch(slice(i * size, (i + 1) * size)) for i in range(n)]


@pytest.mark.parametrize("name", ["gan", "cgan"])
def test_each_update_steps_only_its_own_network(name: str) -> None:
    torch.manual_seed(0)
    model = registry.get("model", name, data=DIGITS, n_critic=3, loss="wgan_gp", r1_gamma=1.0, **SMALL_CONV)
    groups = model.optimizer_groups()
    g_names = {f"generator.{k}" for k, _ in model.generator.named_parameters()}
    d_names = {f"discriminator.{k}" for k, _ in model.discriminator.named_parameters()}
    assert {id(p) for p in groups["generator"].params} == {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in groups["discriminator"].params} == {id(p) for p in model.discriminator.parameters()}
    assert g_names | d_names == {k for k, _ in model.named_parameters()} and not g_names & d_names
    batches = _digits_batches(4)
    step = RecordingStep(model, batches[1:])
    out = model.train_step(batches[0], step)
    assert [n for n, _ in step.changed] == ["discriminator"] * 3 + ["generator"]
    assert step.drawn == 2  # n_critic - 1 extra batches
    for group, changed in step.changed:
        own = g_names if group == "generator" else d_names
        assert changed and changed <= own, (group, changed - own)
    assert set(out) >= {"loss", "d_loss", "d_real_acc", "d_fake_acc", "g_grad_norm", "d_grad_norm", "gp", "r1"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())


@pytest.mark.parametrize("options", [{}, {"spectral_norm": True, "augment": "color,translation,cutout"}])
def test_owned_step_under_the_core_trainer(options: dict) -> None:
    from gmkit_core.data import Dataset
    from gmkit_core.training import TrainConfig
    from gmkit_core.training.trainer import DefaultTrainer

    torch.manual_seed(0)
    train = load("moons", "train")
    small = Dataset(train.x[:256], None, train.spec, "train")
    model = registry.get(
        "model", "gan", data=train.spec, hidden=(16, 16), latent_dim=2, **({} if options.get("augment") else options)
    )
    config = TrainConfig(steps=5, batch_size=64, lr=1e-3, threads=1, quiet=True, eval_every=0, checkpoint_every=0)
    trainer = DefaultTrainer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.fit(model, {"train": small}, config)
    assert trainer.outcome.step == 5
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith("generator"))


@settings(max_examples=25, deadline=None)
@given(st.floats(-1.2, 1.2), st.integers(2, 256))
def test_samples_are_the_level_whose_bin_holds_the_output(y: float, levels: int) -> None:
    spec = DataSpec("t", "image", (1, 8, 8), levels=levels)
    model = GAN(GAN.Config(**SMALL_CONV), spec)
    k = int(model.from_model_space(torch.tensor([y])))
    centres = torch.linspace(-1, 1, levels, dtype=torch.float64)
    assert 0 <= k < levels
    assert abs(centres[k] - y) <= (centres - y).abs().min() + 1e-6  # the nearest bin centre (float32 ties)


def test_real_images_are_bin_centres_plus_noise_within_the_bin() -> None:
    model = GAN(GAN.Config(**SMALL_CONV), DIGITS)
    x = torch.randint(0, 17, (64, 1, 8, 8))
    centres = 2 * x.double() / 16 - 1
    model.eval()
    assert torch.allclose(model.to_model_space(x).double(), centres, atol=1e-6)
    model.train()
    y = model.to_model_space(x).double()
    assert float((y - centres).abs().max()) <= 1 / 16 + 1e-6 and float((y - centres).abs().max()) > 0.5 / 16
    assert torch.equal(model.from_model_space(y), x)  # the noise never leaves the bin
    no_noise = GAN(GAN.Config(dequantize=False, **SMALL_CONV), DIGITS).train()
    assert torch.allclose(no_noise.to_model_space(x).double(), centres, atol=1e-6)


def test_vectors_are_standardised_and_mapped_back() -> None:
    train = load("8gaussians", "train")
    model = GAN(GAN.Config(hidden=(8,)), train.spec)
    model.prepare(train)
    z = model.to_model_space(train.x)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=1e-4) and torch.allclose(z.std(0), torch.ones(2), atol=1e-4)
    assert torch.allclose(model.from_model_space(z), train.x, atol=1e-5)


def test_dominance_warning_once_after_patience() -> None:
    model = GAN(GAN.Config(health_patience=100, **SMALL_CONV), DIGITS)
    one, low = torch.tensor(1.0), torch.tensor(0.9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(150):  # broken streak: no warning
            model._track_health(one, one if i % 60 else low, i)
        assert not caught
        for i in range(150, 400):
            model._track_health(one, one, i)
    assert len(caught) == 1 and issubclass(caught[0].category, DiscriminatorDominanceWarning)
    text = str(caught[0].message)
    assert "spectral_norm=true" in text and "r1_gamma" in text and "d_lr" in text
    assert int(model.dominated_steps) == 29 + 250  # a buffer: saved and resumed
    assert "dominated_steps" in model.state_dict()


def test_user_errors_are_clear() -> None:
    moons = load("moons", "train").spec
    with pytest.raises(DataError, match="cgan needs labelled data"):
        registry.get("model", "cgan", data=moons)
    with pytest.raises(ConfigError, match="DiffAugment applies to images"):
        registry.get("model", "gan", data=moons, augment="color")
    with pytest.raises(ConfigError, match="network=conv needs images"):
        registry.get("model", "gan", data=moons, network="conv")
    with pytest.raises(ConfigError, match="augment"):
        registry.get("model", "gan", data=DIGITS, augment="flip")
    with pytest.raises(ConfigError, match="g_betas"):
        registry.get("model", "gan", data=DIGITS, g_betas="0.5")
    with pytest.raises(ConfigError, match="loss"):
        registry.get("model", "gan", data=DIGITS, loss="minimax")


def test_defaults_follow_the_data() -> None:
    assert GAN.defaults_for(load("moons", "train").spec)["batch_size"] == 256
    assert GAN.defaults_for(DIGITS)["batch_size"] == 64
    assert registry.get("model", "gan", data=DIGITS).network == "conv"
    assert registry.get("model", "gan", data=DataSpec("t", "image", (1, 6, 6), levels=2)).network == "mlp"
    assert GAN.likelihood_kind(DIGITS) == "none"


def test_no_likelihood() -> None:
    model = GAN(GAN.Config(**SMALL_CONV), DIGITS)
    batch = _digits_batches(1)[0]
    with pytest.raises(NotImplementedError):
        model.nll(batch)
    result = model.evaluate(load("digits", "test"))
    assert result["likelihood"] == "none" and "nll_nats" not in result


def test_validation_score_is_a_fixed_seed_frechet_distance() -> None:
    from gmkit_core.metrics import frechet_distance

    torch.manual_seed(0)
    val = load("moons", "validation")
    model = GAN(GAN.Config(hidden=(8,), eval_samples=300), val.spec).eval()
    state = torch.get_rng_state()
    a = model.validation_score(val, batch_size=128)
    assert torch.equal(torch.get_rng_state(), state)  # draws from its own generator only
    assert a == model.validation_score(val, batch_size=100)  # chunking does not change the draws
    x = model.sample(300, generator=torch.Generator().manual_seed(0))
    assert a == pytest.approx(frechet_distance(val.x.double(), x.double()), rel=1e-9)
    assert frechet_distance(val.x.double(), load("moons", "test").x.double()) < a


def test_validation_score_on_images_without_a_shipped_extractor_uses_pixels() -> None:
    """Images the digits classifier refuses (here 16 x 16 colour) are scored in block-averaged pixel features."""
    from gmkit_core.data import Dataset
    from gmkit_core.features import resolve
    from gmkit_core.metrics import frechet_distance

    torch.manual_seed(0)
    spec = DataSpec("rgb16", "image", (3, 16, 16), levels=256)
    val = Dataset(torch.randint(0, 256, (64, 3, 16, 16)), None, spec, "validation")
    model = GAN(GAN.Config(**SMALL_CONV, eval_samples=64), spec).eval()
    score = model.validation_score(val, batch_size=32)
    pixels = resolve("pixels", spec)
    x = model.sample(64, generator=torch.Generator().manual_seed(0))
    assert score == pytest.approx(frechet_distance(pixels(val.x), pixels(x)), rel=1e-9)


def test_dominance_warning_in_a_real_run(tmp_path) -> None:
    """A frozen generator (g_lr ~ 0) against a fast discriminator: the warning is raised during training."""
    from gmkit_core.training import train

    options = {
        "hidden": (32, 32),
        "latent_dim": 2,
        "g_lr": 1e-12,
        "d_lr": 1e-2,
        "r1_gamma": 0.0,
        "health_patience": 20,
        "eval_samples": 20,
    }
    with pytest.warns(DiscriminatorDominanceWarning, match="lower d_lr"):
        train(
            "gan",
            "moons:512",
            tmp_path / "r.h5",
            steps=101,
            overrides=options,
            quiet=True,
            pictures=False,
            train_overrides={"batch_size": 64, "threads": 1, "eval_every": 0},
        )
