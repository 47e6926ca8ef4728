"""Large images: the ``spatial`` latent map, the memory-bounded IWAE pass of ``evaluate`` and the
defaults ``config_for`` / ``defaults_for`` pick for images above 16 x 16 (digits keep theirs)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from gmkit_vae import model as vae_model
from gmkit_vae.heads import RGBMixtureHead
from gmkit_vae.model import VAE
from torch import Tensor, nn

from gmkit_core.data import Batch, DataSpec
from gmkit_core.distributions import Normal
from gmkit_core.errors import ConfigError
from gmkit_core.registry import registry

BIG = DataSpec("big", "image", (3, 16, 16), levels=256)  # 16x16: the latent map is 4x4
PATCHES = DataSpec("patches", "image", (3, 32, 32), levels=256)
DIGITS = DataSpec("d", "image", (1, 8, 8), levels=17)


def _spatial(spec: DataSpec = BIG, **options: object) -> VAE:
    torch.manual_seed(0)
    return registry.get("model", "vae", data=spec, **{"network": "spatial", "latent_dim": 32, "channels": 4, **options})


def _images(n: int, spec: DataSpec = BIG, seed: int = 0) -> Tensor:
    return torch.randint(0, spec.levels or 2, (n, *spec.shape), generator=torch.Generator().manual_seed(seed))


# -- the spatial latent -----------------------------------------------------------------------
def test_spatial_latent_is_a_map_read_locally_by_the_decoder() -> None:
    """z is (B, c * 4 * 4) for a 16x16 image; changing one position of the map changes only the image
    region the decoder's convolutions reach from it (a flat latent would change every pixel)."""
    model = _spatial()
    model.eval()
    x = _images(3)
    q = model.encoder(x)
    assert q.loc.shape == (3, 32)  # 2 channels x 4 x 4
    z = torch.randn(1, 32)
    dz = torch.zeros(1, 2, 4, 4)
    dz[0, 1, 0, 0] = 3.0  # channel 1, top-left position
    with torch.no_grad():
        change = (model.decoder.raw(z + dz.flatten(1)) - model.decoder.raw(z)).abs().amax(dim=(0, 1, 4))  # (16, 16)
    assert change[:4, :4].min() > 0  # the 4x4 pixel block under that position moves
    assert change[12:, :].max() == 0 and change[:, 12:].max() == 0  # far pixels do not
    # the encoder is local too: a change in the bottom-right corner leaves the top-left means alone
    x2 = x.clone()
    x2[:, :, 12:, 12:] = (x2[:, :, 12:, 12:] + 128) % 256
    with torch.no_grad():
        d_loc = (model.encoder(x2).loc - q.loc).view(3, 2, 4, 4).abs()
    assert d_loc[:, :, 0, 0].max() == 0 and d_loc[:, :, 3, 3].min() > 0


def test_spatial_kl_is_the_closed_form_summed_over_the_map() -> None:
    """The model's KL equals sum over channels and positions of 0.5 (s^2 + m^2 - 1 - log s^2), computed
    here from the encoder's map, and agrees with a Monte Carlo estimate from torch.distributions."""
    model = _spatial()
    model.eval()
    x = _images(4)
    with torch.no_grad():
        q = model.encoder(x)
        kl = model.bound(Batch(x), torch.Generator().manual_seed(1)).kl.double()
        m, s = q.loc.double().view(4, 2, 4, 4), q.scale.double().view(4, 2, 4, 4)
        closed = 0.5 * (s.square() + m.square() - 1 - s.square().log()).sum(dim=(1, 2, 3))
        torch.testing.assert_close(kl, closed, rtol=1e-5, atol=1e-4)
        qd = torch.distributions.Normal(m.flatten(1), s.flatten(1))
        pd = torch.distributions.Normal(torch.zeros(32, dtype=torch.float64), torch.ones(32, dtype=torch.float64))
        torch.manual_seed(2)
        z = qd.sample((20000,))  # (n, B, D)
        mc = (qd.log_prob(z) - pd.log_prob(z)).sum(-1)  # (n, B)
        err = mc.std(0) / math.sqrt(20000)
    assert torch.all((mc.mean(0) - closed).abs() < 5 * err + 1e-6)


def test_spatial_model_trains_samples_and_is_conditional_when_asked() -> None:
    model = _spatial()
    x = _images(2)
    out = model.loss(Batch(x))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert all(p.grad is not None for p in model.parameters())
    assert model.sample(2).shape == (2, 3, 16, 16)
    cond = registry.get(
        "model",
        "cvae",
        data=DataSpec("big", "image", (3, 16, 16), levels=256, num_classes=3),
        network="spatial",
        latent_dim=16,
        channels=4,
    )
    assert cond.nll(Batch(x, torch.tensor([0, 2]))).shape == (2,)
    assert cond.sample(2, condition=torch.tensor([1, 1])).shape == (2, 3, 16, 16)


def test_spatial_latent_dim_must_fill_the_map() -> None:
    with pytest.raises(ConfigError, match="multiple of 16"):
        _spatial(latent_dim=20)
    with pytest.raises(ConfigError, match="multiples of 4"):
        registry.get("model", "vae", data=DataSpec("odd", "image", (1, 6, 6), levels=2), network="spatial")


# -- the IWAE pass in bounded memory ----------------------------------------------------------
class _TableDraws:
    """The posterior of a group of examples that hands out, per example, its own fixed latents in order,
    however ``iwae_nll`` splits the examples into groups and the samples into chunks."""

    def __init__(self, q: Normal, table: Tensor):
        self.q, self.table, self.used = q, table, 0  # table (B, k, D): this group's rows

    def rsample(self, generator: torch.Generator | None = None, sample_shape: tuple[int, ...] = ()) -> Tensor:
        c = sample_shape[0]
        out = self.table[:, self.used : self.used + c].transpose(0, 1)  # (c, B, D)
        self.used += c
        return out

    def log_prob(self, z: Tensor) -> Tensor:
        return self.q.log_prob(z)


class _TableEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, x: Tensor, table: Tensor):
        super().__init__()
        self.encoder, self.x, self.table = encoder, x, table

    def forward(self, x: Tensor, condition: Tensor | None = None) -> _TableDraws:
        rows = [int((self.x.flatten(1) == r.flatten()).all(1).nonzero()) for r in x]  # which examples
        return _TableDraws(self.encoder(x, condition), self.table[rows])


def test_bounded_iwae_pass_is_the_same_bound_in_any_grouping(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the latents fixed per example, ``iwae_nll`` under a tiny memory budget (many groups of
    examples, chunks of samples) equals the unbounded pass and a brute-force log-mean of the weights."""
    model, k, n = _spatial(), 7, 5
    model.eval()
    x = _images(n, seed=3)
    with torch.no_grad():
        q = model.encoder(x)
        table = q.rsample(torch.Generator().manual_seed(4), (k,)).transpose(0, 1).contiguous()  # (n, k, D)
        # brute force, one latent at a time, in float64 where it is summed
        log_w = torch.empty(n, k, dtype=torch.float64)
        for b in range(n):
            for i in range(k):
                zi = table[b, i : i + 1]
                log_px = model.decoder(zi).log_prob(x[b : b + 1]).double()
                log_pz = -0.5 * (zi.double().square() + math.log(2 * math.pi)).sum()
                s = q.scale[b].double()
                log_q = (-0.5 * ((zi[0].double() - q.loc[b].double()) / s).square() - s.log()).sum()
                log_w[b, i] = log_px + log_pz - (log_q - 0.5 * math.log(2 * math.pi) * zi.shape[1])
        expected = -(torch.logsumexp(log_w, 1) - math.log(k))
        model.encoder = _TableEncoder(model.encoder, x, table)
        whole = model.iwae_nll(Batch(x), k)
        assert model.iwae_plan(n, k) == (k, n)  # the default budget: one pass
        values = 16 * 16 * 3 * model.head_params
        monkeypatch.setattr(vae_model, "IWAE_VALUES", 3 * values)  # 3 decoder rows a pass
        assert model.iwae_plan(n, k) == (3, 1)
        bounded = model.iwae_nll(Batch(x), k)
        monkeypatch.setattr(vae_model, "IWAE_VALUES", 14 * values)  # chunks of 7 samples, pairs of examples
        assert model.iwae_plan(n, k) == (7, 2)
        paired = model.iwae_nll(Batch(x), k)
    for got in (whole, bounded, paired):
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-3)


def test_iwae_plan_bounds_the_decoder_output_for_large_images() -> None:
    model = registry.get("model", "vae", data=PATCHES, latent_dim=64, channels=4)
    for examples in (1, 16, 256, 1000):
        chunk, group = model.iwae_plan(examples, 100)
        assert 1 <= chunk <= 100 and 1 <= group <= examples
        assert chunk * group * PATCHES.dims * model.head_params <= vae_model.IWAE_VALUES
    assert model.iwae_plan(256, 100)[0] == 100  # the chunk the config asks for still fits


# -- the rgb_mixture head ---------------------------------------------------------------------
def _hand_rgb_prob(raw: Tensor, x: tuple[int, ...], levels: int, k: int) -> float:
    """P(pixel = x) from the formula, one component and channel at a time, with sigmoids (float64)."""
    raw = raw.double()
    c_n = len(x)
    logits = sum(raw[c, :k] for c in range(c_n))
    weights = torch.softmax(logits, 0)
    u = [2 * v / (levels - 1) - 1 for v in x]
    slot = {(1, 0): 1, (2, 0): 0, (2, 1): 2}
    total = 0.0
    for j in range(k):
        p = float(weights[j])
        for c in range(c_n):
            mean = float(raw[c, k + j]) + sum(math.tanh(float(raw[slot[(c, e)], 3 * k + j])) * u[e] for e in range(c))
            s = math.exp(max(float(raw[c, 2 * k + j]), -7.0))
            hi = 1.0 if x[c] == levels - 1 else 1 / (1 + math.exp(-(u[c] + 1 / (levels - 1) - mean) / s))
            lo = 0.0 if x[c] == 0 else 1 / (1 + math.exp(-(u[c] - 1 / (levels - 1) - mean) / s))
            p *= hi - lo
        total += p
    return total


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_rgb_mixture_is_normalised_and_matches_the_formula(channels: int) -> None:
    levels, k = 4, 3
    head = RGBMixtureHead(levels, k)
    raw = 2 * torch.randn(2, channels, 1, 1, head.params, generator=torch.Generator().manual_seed(channels))
    raw = raw.double()
    colours = list(itertools.product(range(levels), repeat=channels))
    probs = torch.stack(
        [head(raw).log_prob(torch.tensor(c).view(1, channels, 1, 1).expand(2, -1, 1, 1)).exp() for c in colours]
    )  # (colours, 2)
    torch.testing.assert_close(probs.sum(0), torch.ones(2, dtype=torch.float64))
    for i, c in enumerate(colours):
        assert float(probs[i, 1]) == pytest.approx(_hand_rgb_prob(raw[1, :, 0, 0], c, levels, k), rel=1e-9, abs=1e-12)


def test_rgb_mixture_samples_follow_its_probabilities() -> None:
    levels, k, n = 3, 2, 40000
    head = RGBMixtureHead(levels, k)
    raw = torch.randn(1, 3, 1, 1, head.params, generator=torch.Generator().manual_seed(5)).double()
    draws = head(raw.expand(n, -1, -1, -1, -1)).sample(torch.Generator().manual_seed(6))  # (n, 3, 1, 1)
    assert draws.dtype == torch.int64 and draws.min() >= 0 and draws.max() < levels
    codes = (draws[:, 0, 0, 0] * levels + draws[:, 1, 0, 0]) * levels + draws[:, 2, 0, 0]
    freq = torch.bincount(codes, minlength=levels**3).double() / n
    for i, c in enumerate(itertools.product(range(levels), repeat=3)):
        p = _hand_rgb_prob(raw[0, :, 0, 0], c, levels, k)
        assert abs(float(freq[i]) - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4


def test_rgb_mixture_output_trains_and_refuses_other_data() -> None:
    model = _spatial(output="rgb_mixture")
    out = model.loss(Batch(_images(2)))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.sample(2).shape == (2, 3, 16, 16)
    with pytest.raises(ConfigError, match="rgb_mixture"):
        registry.get("model", "vae", data=DataSpec("v", "vector", (4,)), output="rgb_mixture")
    with pytest.raises(ConfigError, match="rgb_mixture"):
        registry.get("model", "vae", data=DataSpec("m", "image", (4, 8, 8), levels=16), output="rgb_mixture")


# -- defaults -------------------------------------------------------------------------------
def test_large_image_defaults_and_digits_defaults() -> None:
    cls = VAE
    assert cls.config_for(DIGITS) == {}
    assert cls.defaults_for(DIGITS) == cls.train_defaults
    large = cls.configure(PATCHES)
    assert large.network == "spatial" and large.latent_dim % 64 == 0
    assert large.iwae_subset > 0  # the IWAE figure on a fixed subset, with its standard error
    train = cls.defaults_for(PATCHES)
    assert train["steps"] < cls.train_defaults["steps"]
    assert large.warmup_steps < train["steps"]  # the KL reaches full weight within training
    assert cls.configure(PATCHES, {"network": "conv", "latent_dim": 100}).latent_dim == 100  # options win

    assert large.output == "rgb_mixture" and large.warmup_steps > 0
    grey = cls.configure(DataSpec("g", "image", (1, 28, 28), levels=2))
    assert grey.network == "spatial" and grey.latent_dim == 4 * 7 * 7 and grey.output == "auto"


@pytest.mark.parametrize("name", ["vae", "beta_vae", "cvae", "iwae", "hvae"])
def test_every_variant_runs_with_the_large_image_defaults(name: str) -> None:
    spec = DataSpec("patches", "image", (3, 32, 32), levels=256, num_classes=2)
    torch.manual_seed(0)
    model = registry.get("model", name, data=spec, channels=4)
    batch = Batch(_images(2, spec), torch.tensor([0, 1]))
    out = model.loss(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.nll(batch).shape == (2,)
    assert model.sample(2).shape == (2, 3, 32, 32)
