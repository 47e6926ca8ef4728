"""The latent model's pixel bound: a valid bound on tiny spaces, and the plain VAE's -ELBO under N(0, I)."""

import math

import numpy as np
import pytest
import torch

from gmkit_core.data import Batch, Dataset, DataSpec
from gmkit_core.distributions import StandardNormal
from gmkit_core.interfaces import GenerativeModel
from gmkit_core.registry import registry
from gmkit_core.training import TrainConfig, nested_fit

TINY = DataSpec("tiny", "image", (1, 2, 2), levels=3)
STAGE1 = ("latent_dim=1", "hidden=16", "dropout=0.0")
STAGE2 = {
    "nsf": ("layers=1", "hidden=8", "bins=4"),
    "ddpm": ("network=mlp", "hidden=16", "depth=1", "T=50", "schedule=linear"),
}


def latent_model(stage2: str, **options) -> GenerativeModel:
    torch.manual_seed(0)
    return registry.get(
        "model",
        "latent",
        data=TINY,
        stage1_options=STAGE1,
        stage2=stage2,
        stage2_options=STAGE2.get(stage2, ()),
        **options,
    )


def narrow_posterior(model: GenerativeModel, shrink: float = 0.05, log_var: float = -6.0) -> None:
    """Make q(z|x) narrow (log sigma^2 = ``log_var``) and its means close together (weights times ``shrink``),
    so stage two, fitted to them, is dense there."""
    last = model.stage1.encoder.head[-1]
    d = model.stage1.config.latent_dim
    with torch.no_grad():
        last.weight[:d] *= shrink
        last.weight[d:] = 0.0
        last.bias[:d] = 0.0  # centred, as stage two models may scale but not shift
        last.bias[d:] = log_var


def fit_stage_two(model: GenerativeModel, xs: torch.Tensor, steps: int) -> None:
    data = {split: Dataset(xs, None, TINY, split) for split in ("train", "validation")}
    parent = TrainConfig(steps=steps, threads=1, quiet=True, device="cpu", eval_every=0)
    model.eval()
    model.finish(data, nested_fit(parent))


def expected_bound(model: GenerativeModel, xs: torch.Tensor, draws: int, drop_entropy: bool = False) -> torch.Tensor:
    """Monte Carlo E_q[bound] per image ``(N,)`` from ``draws`` posterior draws each (the model's own terms)."""
    model.eval()
    rep = xs.repeat(draws, 1, 1, 1)
    with torch.no_grad():
        t = model.terms(rep, torch.Generator().manual_seed(1))
    bound = t["bound"] + (t["entropy"] if drop_entropy else 0.0)
    return bound.view(draws, -1).mean(0)


def quadrature_bound(model: GenerativeModel, xs: torch.Tensor, nodes: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """E_q[-log p(x|z) - log p2(z)] and H[q] per image by Gauss-Hermite quadrature over the 1-D latent."""
    t, w = (torch.from_numpy(a).to(torch.get_default_dtype()) for a in np.polynomial.hermite.hermgauss(nodes))
    with torch.no_grad():
        q = model.stage1.encoder(xs, None)  # loc, scale (N, 1)
        z = q.loc + math.sqrt(2) * q.scale * t  # (N, nodes)
        flat = z.reshape(-1, 1)
        rep = xs.repeat_interleave(nodes, 0)
        f = -model.stage1.decoder(flat, None).log_prob(rep) + model.stage2.nll(Batch(flat))
    return (f.view(-1, nodes) * w / math.sqrt(math.pi)).sum(1), q.entropy()


def exact_nll(model: GenerativeModel, xs: torch.Tensor, lo: float = -8.0, hi: float = 8.0) -> torch.Tensor:
    """-log P(x) = -log int p(x|z) p2(z) dz by the trapezoid rule (1-D latent, exact stage two)."""
    z = torch.linspace(lo, hi, 8001).unsqueeze(1)
    with torch.no_grad():
        log_p2 = -model.stage2.nll(Batch(z))
        log_px = torch.stack([model.stage1.decoder(z, None).log_prob(x.expand(len(z), *x.shape)) for x in xs])
        log_w = torch.full((len(z),), math.log(float(z[1, 0] - z[0, 0])))
        log_w[[0, -1]] -= math.log(2)
        return -torch.logsumexp(log_px + log_p2 + log_w, dim=1)


@pytest.mark.parametrize("stage2", ["nsf", "ddpm"])
def test_probabilities_under_the_bound_sum_to_at_most_one(every_image, stage2):
    # float64, except ddpm, whose model space is float32 (its to_model_space casts with .float())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if stage2 == "nsf" else torch.float32)
    try:
        check_sum_below_one(every_image(TINY), stage2)
    finally:
        torch.set_default_dtype(previous)


def check_sum_below_one(xs: torch.Tensor, stage2: str) -> None:
    torch.manual_seed(0)
    model = registry.get(
        "model",
        "latent",
        data=TINY,
        stage1_options=STAGE1,
        stage2=stage2,
        stage2_options=STAGE2[stage2],
        stage2_train=("steps=30", "eval_every=0", "batch_size=64", "ema=0", "warmup=0"),
    )
    narrow_posterior(model)
    fit_stage_two(model, xs, 30)
    assert bool(model.stage2_fitted)
    model.eval()
    assert model.stage1.training is False
    cross, entropy = quadrature_bound(model, xs)
    bound = cross - entropy  # E_q[bound], exact up to quadrature
    assert 0.0 < float(torch.exp(-bound).sum()) <= 1.0
    if stage2 == "nsf":  # an exact density of z (ddpm's nll is itself a stochastic bound)
        # the model's one-draw terms estimate the same expectation
        mc = expected_bound(model, xs, 200)
        assert torch.allclose(mc, bound, atol=0.25), float((mc - bound).abs().max())
        # Jensen's inequality image by image, against quadrature of P(x) = int p(x|z) p2(z) dz
        assert bool((bound >= exact_nll(model, xs) - 1e-6).all())
    # without the entropy term (the density of z taken for a probability) the sum exceeds one: the check can fail
    assert float(torch.exp(-cross).sum()) > 1.0


class StandardNormalModel(GenerativeModel):
    """A stage two with exactly N(0, I): nll = -log N(z; 0, I) in nats."""

    Config = object
    likelihood = "exact"

    def __init__(self, dim: int):
        super().__init__(None, DataSpec("latents", "vector", (dim,)))
        self.prior = StandardNormal(dim)

    def loss(self, batch):
        return {"loss": self.nll(batch).mean()}

    def nll(self, batch):
        return -self.prior.log_prob(batch.x)

    def sample(self, n, *, condition=None, generator=None):
        return self.prior.sample(n, generator=generator)


def test_standard_normal_stage_two_gives_the_vae_elbo(float64_default):
    model = latent_model("nsf")
    model.stage2 = StandardNormalModel(1)
    vae = model.stage1.eval()
    x = torch.randint(3, (5, *TINY.shape), generator=torch.Generator().manual_seed(0))
    draws = 4000
    rep = x.repeat(draws, 1, 1, 1)
    with torch.no_grad():
        ours = model.terms(rep, torch.Generator().manual_seed(3))
        theirs = vae.bound(Batch(rep), torch.Generator().manual_seed(3))  # closed-form KL
    assert torch.allclose(ours["recon"], -theirs.reconstruction)  # the same posterior draws
    diff = (ours["bound"] - (-theirs.elbo)).view(draws, -1)  # (draws, 5): zero mean
    se = diff.std(0) / math.sqrt(draws)
    assert bool((diff.mean(0).abs() < 4 * se + 1e-9).all())
    # dropping the entropy term is detected by the same comparison
    wrong = (ours["bound"] + ours["entropy"] - (-theirs.elbo)).view(draws, -1)
    assert bool((wrong.mean(0).abs() > 10 * se).all())
    # the model's own nll is the one-draw estimate of the same bound, with its fixed noise
    assert torch.allclose(model.nll(Batch(x)), model.terms(x, model._generator(x.device))["bound"])


def test_iwae_is_a_tighter_bound_than_the_elbo(float64_default):
    model = latent_model("nsf").eval()  # untrained: a broad posterior, a visible ELBO gap
    x = torch.randint(3, (6, *TINY.shape), generator=torch.Generator().manual_seed(0))
    exact = exact_nll(model, x)
    elbo = quadrature_bound(model, x)[0] - quadrature_bound(model, x)[1]
    with torch.no_grad():
        k = model.iwae_nll(x.repeat(10, 1, 1, 1), 200, torch.Generator().manual_seed(2)).view(10, -1).mean(0)
    assert float((elbo - exact).mean()) > 0.02  # the gap this test measures exists
    assert bool((k >= exact - 0.01).all())  # IWAE-k is still a bound (up to Monte Carlo error)
    assert float((k - exact).mean()) < 0.2 * float((elbo - exact).mean())  # and much tighter than the ELBO


def test_code_map_bound_is_reconstruction_plus_code_nll(float64_default, every_image):
    spec = DataSpec("tiny", "image", (1, 2, 2), levels=3)
    torch.manual_seed(0)
    model = registry.get(
        "model",
        "latent",
        data=spec,
        stage1_model="vqvae",
        stage1_options=(
            "prior=uniform",
            "hidden=8",
            "codebook_size=4",
            "code_dim=2",
            "downsample=2",
            "decoder=categorical",
        ),
        stage2="transformer",
        stage2_options=("dim=8", "layers=1", "heads=2"),
    )
    xs = every_image(spec)
    model.prepare(Dataset(xs, None, spec, "train"))  # the codebook starts from encoder outputs
    model.eval()
    with torch.no_grad():
        codes = model.stage1.encode_codes(xs)
        recon = -model.stage1.decode(codes).log_prob(xs)
        code_nll = model.stage2.nll(Batch(codes.unsqueeze(1)))
        bound = model.nll(Batch(xs))
    assert torch.allclose(bound, recon + code_nll)
    assert float(torch.exp(-bound).sum()) <= 1.0  # a deterministic-encoder bound: checkable exactly
    used = codes.unique().numel()
    assert used > 1 and float(torch.exp(-recon).sum()) > 1.0  # without the code cost it is not a bound
