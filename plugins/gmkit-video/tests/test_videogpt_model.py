"""VideoGPT on moving_digits-shaped clips: conformance, causal encoder, stage two, priming, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gmkit_video.model import PRIOR_TRAIN
from gmkit_video.prior import volume_to_image

from gmkit_core.config import parse_assignments, parse_literal
from gmkit_core.data import Batch, Dataset
from gmkit_core.data import load as load_data
from gmkit_core.errors import ConfigError, DataError
from gmkit_core.registry import registry
from gmkit_core.testing import check_model

SMALL = {
    "codebook_size": "8",
    "code_dim": "4",
    "hidden": "8",
    "res_blocks": "1",
    "prior_options": "dim=16,layers=1,heads=2",
}


@pytest.fixture(scope="module")
def clips() -> Dataset:
    ds = load_data("moving_digits", "train")
    return Dataset(ds.x[:24], ds.y[:24], ds.spec, "train")


def _model(spec, **options: str):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return registry.get("model", "videogpt", data=spec, **{**SMALL, **options})


@pytest.mark.parametrize("options", [{}, {"temporal": "false", "time_downsample": "1", "decoder": "categorical"}])
def test_conformance_on_moving_digits(options: dict[str, str]) -> None:
    report = check_model("videogpt", data="moving_digits", n_train=16, **SMALL, **options)
    assert report.passed[-1] == "devices" and "nll" in report.passed


@pytest.mark.parametrize("time_kernel", [1, 3])
@pytest.mark.parametrize("time_downsample", [1, 2, 4])
def test_encoder_is_causal_in_time(clips: Dataset, time_downsample: int, time_kernel: int) -> None:
    model = _model(
        clips.spec, time_downsample=str(time_downsample), time_kernel=str(time_kernel), downsample="4"
    ).eval()
    x = clips.x[:4]

    def volume(clip: torch.Tensor) -> torch.Tensor:  # encoder outputs as (B, t, h, w, D), in either layout
        return model.encoder(model._frames_first(clip)).permute(0, 2, 3, 4, 1).reshape(4, *model.volume, -1)

    with torch.no_grad():
        z = volume(x)
        for k in range(1, 8):
            changed = x.clone()
            changed[:, k:] = torch.randint(17, changed[:, k:].shape, generator=torch.Generator().manual_seed(k))
            other = volume(changed)
            fixed = k // time_downsample
            assert torch.allclose(other[:, :fixed], z[:, :fixed], atol=1e-6), f"frames >= {k} leak"
            assert not torch.allclose(other[:, fixed:], z[:, fixed:]), "later code steps must see the frames"


def test_finish_fits_the_prior_on_time_major_code_images(clips: Dataset) -> None:
    model = _model(clips.spec)
    model.prepare(clips)
    seen = {}

    def fit(prior, data, **overrides):  # type: ignore[no-untyped-def]
        seen.update(data=data, overrides=overrides)
        return prior

    model.finish({"train": clips, "validation": clips}, fit)
    model.eval()
    assert bool(model.prior_fitted)
    assert seen["overrides"] == {k: parse_literal(v) for k, v in parse_assignments(PRIOR_TRAIN).items()}
    assert seen["overrides"]["steps"] == 600 and seen["overrides"]["batch_size"] == 32
    images = seen["data"]["train"].x  # one row per time step (8 of them), its 4x4 codes in raster order
    assert images.shape == (24, 1, 8, 4 * 4) and seen["data"]["train"].spec.levels == 8
    assert torch.equal(images, volume_to_image(model.encode(clips.x)))
    with torch.no_grad():
        codes = model.encode(clips.x[:3])
        expected = model.recon_nats(clips.x[:3], codes) + model.prior_model.nll(Batch(volume_to_image(codes)))
        assert torch.allclose(model.nll(Batch(clips.x[:3])), expected)
    metrics = model.evaluate(clips, batch_size=8)
    assert metrics["prior"] == "transformer (fitted)"
    assert abs(metrics["recon_nats"] + metrics["code_nats"] - metrics["nll_nats"]) < 1e-3
    assert 0 < metrics["codebook_usage"] <= 1


def test_priming_keeps_the_given_frames_and_their_codes(clips: Dataset, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = _model(clips.spec, time_downsample="2", time_kernel="3").eval()
    model.prior_fitted.fill_(1)
    prime = clips.x[:3]
    out = model.sample(3, generator=torch.Generator().manual_seed(0), prime=prime, frames=4)
    assert out.shape == (3, 8, 1, 16, 16) and out.dtype == torch.int64
    assert torch.equal(out[:, :4], prime[:, :4])
    known = model.encode(prime)
    codes = model._draw_codes(3, known, 2, torch.Generator().manual_seed(0))  # frames=4, s_t=2: 2 code steps
    assert torch.equal(codes[:, :2], known[:, :2])
    again = model.sample(3, generator=torch.Generator().manual_seed(0), prime=prime, frames=4)
    assert torch.equal(out, again)
    path = tmp_path / "clips.npz"
    np.savez(path, x_test=prime.numpy(), levels=17)
    from_file = model.sample(2, generator=torch.Generator().manual_seed(0), prime=str(path), frames=4)
    assert torch.equal(from_file, model.sample(2, generator=torch.Generator().manual_seed(0), prime=prime, frames=4))


def test_per_frame_priming_keeps_frames_and_draws_the_rest(clips: Dataset) -> None:
    model = _model(clips.spec, temporal="false", time_downsample="1").eval()
    model.prior_fitted.fill_(1)
    assert model.volume == (8, 4, 4)
    out = model.sample(2, generator=torch.Generator().manual_seed(0), prime=clips.x[:2], frames=3, decode="mode")
    assert torch.equal(out[:, :3], clips.x[:2, :3])
    cool = model.sample(2, generator=torch.Generator().manual_seed(0), prime=clips.x[:2], frames=3, temperature=0.5)
    assert torch.equal(cool[:, :3], clips.x[:2, :3])


def test_user_errors_name_the_option(clips: Dataset) -> None:
    model = _model(clips.spec).eval()
    with pytest.raises(ConfigError, match="prime"):
        model.sample(2, frames=3)
    with pytest.raises(ConfigError, match="frames"):
        model.sample(2, prime=clips.x[:2], frames=8)
    with pytest.raises(DataError, match="asked for n=30"):
        model.sample(30, prime=clips.x)
    for bad in (0, -1.0, "warm"):
        with pytest.raises(ConfigError, match="temperature"):
            model.sample(2, prime=clips.x[:2], temperature=bad)
    with pytest.raises(DataError, match="must be"):
        model.sample(2, prime=clips.x[:, :4])
    with pytest.raises(ConfigError, match="time_downsample"):
        _model(clips.spec, temporal="false", time_downsample="2")
    with pytest.raises(ConfigError, match="downsample=8"):
        _model(load_data("digits", "train").spec.__class__("v", "video", (8, 1, 12, 12), levels=17), downsample="8")
    with pytest.raises(DataError, match="clips"):
        _model(load_data("digits", "train").spec)


def test_defaults_share_the_per_frame_autoencoder(clips: Dataset) -> None:
    """Defaults vs temporal=false: same weights, random stream, reconstruction and training steps, to the bit."""
    a = _model(clips.spec)
    after_a = torch.get_rng_state()
    b = _model(clips.spec, temporal="false")
    after_b = torch.get_rng_state()
    assert torch.equal(after_a, after_b)  # the prior's shape (8 rows or 1) leaves training randomness alone
    assert a.prior_model.data.shape == (1, 8, 16) and b.prior_model.data.shape == (1, 1, 16)
    shared = {k: v for k, v in a.state_dict().items() if not k.startswith("prior_model.")}
    other = {k: v for k, v in b.state_dict().items() if not k.startswith("prior_model.")}
    assert shared.keys() == other.keys() and all(torch.equal(shared[k], other[k]) for k in shared)
    for model in (a, b):  # the k-means++ start draws from the global stream: the same draws for both
        torch.manual_seed(1)
        model.prepare(clips)
    assert torch.equal(a.encode(clips.x[:4]), b.encode(clips.x[:4]))
    codes = a.encode(clips.x[:4])
    assert torch.equal(a.recon_nats(clips.x[:4], codes), b.recon_nats(clips.x[:4], codes))
    for model in (a, b):  # training steps stay identical to the bit: stage 1 is shared, not merely alike
        optimizer = torch.optim.Adam([p for n, p in model.named_parameters() if not n.startswith("prior_model.")])
        for step in range(3):
            optimizer.zero_grad()
            model.loss(Batch(clips.x[8 * step : 8 * step + 8])).get("loss").backward()
            optimizer.step()
    trained_a = {k: v for k, v in a.state_dict().items() if not k.startswith("prior_model.")}
    trained_b = {k: v for k, v in b.state_dict().items() if not k.startswith("prior_model.")}
    assert all(torch.equal(trained_a[k], trained_b[k]) for k in trained_a)
