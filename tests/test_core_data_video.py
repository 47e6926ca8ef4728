"""Video data: the kind, .npz/.h5 rank-5 arrays, frames:FOLDER, export, moving_digits and its pictures."""

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from gmkit_core.data import DataSpec, load
from gmkit_core.data.files import export
from gmkit_core.errors import DataError

SPLITS = ("train", "validation", "test")


def test_video_spec_is_discrete_but_not_an_image():
    spec = DataSpec("clips", "video", (8, 3, 4, 5), levels=4)
    assert spec.is_video and spec.is_discrete and not spec.is_image and spec.dims == 8 * 3 * 4 * 5
    assert DataSpec("d", "image", (1, 8, 8), levels=17).is_discrete
    assert not DataSpec("v", "vector", (2,)).is_discrete
    assert DataSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_rank5_arrays_load_as_video(tmp_path, suffix):
    rng = np.random.RandomState(0)
    x = {s: rng.randint(0, 7, (n, 3, 2, 4, 5)) for s, n in zip(SPLITS, (6, 2, 3), strict=True)}
    path = tmp_path / f"clips{suffix}"
    if suffix == ".npz":
        np.savez(path, **{f"x_{s}": v for s, v in x.items()}, y_test=np.array([0, 2, 1]), levels=7)
    else:
        with h5py.File(path, "w") as f:
            for s, v in x.items():
                f[f"x_{s}"] = v
            f["y_test"] = np.array([0, 2, 1])
            f.attrs["levels"] = 7
    test = load(str(path), "test")
    assert test.spec.kind == "video" and test.spec.shape == (3, 2, 4, 5) and test.spec.levels == 7
    assert torch.equal(test.x, torch.from_numpy(x["test"])) and test.y.tolist() == [0, 2, 1]
    assert test.spec.num_classes == 3 and test.spec.dims == 120


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((4, 2, 1, 3, 3, 2), np.uint8), r"\(N, T, C, H, W\) videos, got shape \(4, 2, 1, 3, 3, 2\)"),
        (np.zeros((4, 2, 1, 3, 3), np.float32), "videos must be integers in \\[0, levels\\), got float32"),
        (np.full((4, 2, 1, 3, 3), 9, np.int64), r"pixel values must lie in \[0, 5\)"),
    ],
)
def test_malformed_video_arrays(tmp_path, array, message):
    path = tmp_path / "v.npz"
    np.savez(path, x_train=array, levels=5)
    with pytest.raises(DataError, match=message):
        load(str(path))


def _write_clip(folder, frames):
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame.astype(np.uint8), "L" if frame.ndim == 2 else "RGB").save(folder / f"{t:03d}.png")


def test_frames_folder_of_clips(tmp_path):
    rng = np.random.RandomState(0)
    clips = {f"c{i:02d}": rng.randint(0, 256, (4, 6, 5)) for i in range(10)}
    for name, frames in clips.items():
        _write_clip(tmp_path / str(int(name[1:]) % 3) / name, frames)
    parts = [load(f"frames:{tmp_path}", s) for s in SPLITS]
    assert [len(p) for p in parts] == [8, 1, 1]
    spec = parts[0].spec
    assert spec.kind == "video" and spec.shape == (4, 1, 6, 5) and spec.levels == 256 and spec.num_classes == 3
    seen = []
    for part in parts:
        for x, y in zip(part.x, part.y, strict=True):  # each loaded clip is one written clip, frames in order
            name = next(n for n, frames in clips.items() if np.array_equal(x[:, 0].numpy(), frames))
            assert int(y) == int(name[1:]) % 3
            seen.append(name)
    assert sorted(seen) == sorted(clips)


def test_frames_colour_clips_without_labels(tmp_path):
    rng = np.random.RandomState(1)
    for i in range(5):
        _write_clip(tmp_path / f"clip{i}", rng.randint(0, 256, (3, 4, 4, 3)))
    ds = load(f"frames:{tmp_path}", "train")
    assert ds.x.shape == (4, 3, 3, 4, 4) and ds.y is None


def test_malformed_frames_folders(tmp_path):
    _write_clip(tmp_path / "a" / "clip1", np.zeros((3, 4, 4)))
    _write_clip(tmp_path / "a" / "clip2", np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="clips differ in length: clip1 has 3 frames, clip2 has 2"):
        load(f"frames:{tmp_path / 'a'}")
    _write_clip(tmp_path / "b" / "clip1", np.zeros((2, 4, 4)))
    _write_clip(tmp_path / "b" / "clip2", [np.zeros((4, 4)), np.zeros((5, 4))])
    with pytest.raises(
        DataError,
        match=r"images differ in size: clip1/000.png is 4x4 with 1 channel, "
        r"clip2/001.png is 5x4 with 1 channel",
    ):
        load(f"frames:{tmp_path / 'b'}")
    _write_clip(tmp_path / "c", np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="put each clip's frames in its own sub-folder"):
        load(f"frames:{tmp_path / 'c'}")
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="no clip folders of .png frames"):
        load(f"frames:{tmp_path / 'd'}")
    with pytest.raises(DataError, match="no such file or folder"):
        load(f"frames:{tmp_path / 'e'}")


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_moving_digits_export_round_trip(tmp_path, suffix):
    out = export([load("moving_digits", s) for s in ("validation", "test")], tmp_path / f"md{suffix}")
    for split in ("validation", "test"):
        back, ref = load(str(out), split), load("moving_digits", split)
        assert torch.equal(back.x, ref.x) and torch.equal(back.y, ref.y) and back.spec == ref.spec


def _documented_clips(images, n, seed):
    """The recipe of docs/data.md, simulated frame by frame with explicit bounces."""
    rng = np.random.RandomState(seed)
    source = rng.randint(0, len(images), n)
    start = rng.randint(0, 9, (n, 2))
    velocity = np.array([-2, -1, 1, 2])[rng.randint(0, 4, (n, 2))]
    clips = np.zeros((n, 8, 1, 16, 16), np.int64)
    for i in range(n):
        pos, vel = start[i].copy(), velocity[i].copy()
        for t in range(8):
            clips[i, t, 0, pos[0] : pos[0] + 8, pos[1] : pos[1] + 8] = images[source[i]]
            pos = pos + vel
            for axis in range(2):
                if pos[axis] > 8:
                    pos[axis], vel[axis] = 16 - pos[axis], -vel[axis]
                if pos[axis] < 0:
                    pos[axis], vel[axis] = -pos[axis], -vel[axis]
    return clips, source


def test_moving_digits_follow_the_documented_recipe():
    for split, seed, size in (("validation", 1, 500), ("test", 2, 500)):
        digits = load("digits", split)
        clips, source = _documented_clips(digits.x[:, 0].numpy(), size, seed)
        ds = load("moving_digits", split)
        assert torch.equal(ds.x, torch.from_numpy(clips)) and torch.equal(ds.y, digits.y[source])
    train = load("moving_digits", "train")
    assert len(train) == 4000 and train.spec.shape == (8, 1, 16, 16) and train.spec.levels == 17
    assert train.spec.kind == "video" and train.spec.num_classes == 10 and train.spec.dims == 2048
    assert torch.equal(train.x, load("moving_digits", "train").x)


def test_moving_digits_draw_each_split_from_its_own_digits():
    """Every frame holds, somewhere on the canvas, an intact digit of the clip's own split with the clip's label."""
    for split in SPLITS:
        digits, clips = load("digits", split), load("moving_digits", split)
        pool = {tuple(d.flatten().tolist()): int(y) for d, y in zip(digits.x[:, 0], digits.y, strict=True)}
        for clip, label in zip(clips.x[:25, :, 0], clips.y[:25], strict=True):
            assert len(set(clip.sum((1, 2)).tolist())) == 1  # the digit is whole in every frame
            for frame in clip:
                windows = frame.unfold(0, 8, 1).unfold(1, 8, 1).reshape(81, 64)
                found = [pool.get(tuple(w.tolist())) for w in windows if int(w.sum()) == int(frame.sum())]
                assert int(label) in found


def test_frame_strip_and_gif(tmp_path):
    from gmkit_core.plots import grid_image
    from gmkit_core.plots_video import frame_strip, gif

    clips = load("moving_digits", "test").x[:3]
    strip = Image.open(frame_strip(clips, tmp_path / "s.png", levels=17, cell=16))
    pixels = np.asarray(strip)
    assert strip.size == (2 + 8 * 18, 2 + 3 * 18)  # 16 px frames, 2 px gaps, one row per clip
    for r, t in ((0, 0), (2, 5)):
        tile = pixels[2 + r * 18 : 18 + r * 18, 2 + t * 18 : 18 + t * 18]
        assert np.array_equal(tile, np.round(clips[r, t, 0].numpy() * 255 / 16).astype(np.uint8))
    animation = Image.open(gif(clips, tmp_path / "a.gif", levels=17))
    assert animation.n_frames == 8 and animation.info["loop"] == 0
    for t in (0, 7):
        animation.seek(t)
        expected = np.asarray(grid_image(clips[:, t], 17))
        assert np.array_equal(np.asarray(animation.convert("L")), expected)
    with pytest.raises(ValueError, match="clips must be"):
        frame_strip(clips[0], tmp_path / "bad.png")
