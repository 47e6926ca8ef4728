"""Data: the digits split, toys, user files (good and malformed) and export round trips."""

import gzip
import os

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from gmkit_core.data import Dataset, DataSpec, absolute_source, load
from gmkit_core.data.builtin import TOYS
from gmkit_core.data.files import export
from gmkit_core.errors import DataError


def test_digits_split_follows_sklearn_order():
    from sklearn.datasets import load_digits

    ref = load_digits()
    sizes = {s: len(load("digits", s)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 1000, "validation": 350, "test": 447}
    test = load("digits", "test")
    assert torch.equal(test.x[-1, 0], torch.from_numpy(ref.images[-1].astype(np.int64)))
    assert torch.equal(load("digits", "validation").x[0, 0], torch.from_numpy(ref.images[1000].astype(np.int64)))
    assert test.spec.levels == 17 and test.spec.num_classes == 10 and int(test.x.max()) == 16


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toys_are_seeded_and_splits_differ(name):
    a, b = load(name, "train"), load(name, "train")
    assert torch.equal(a.x, b.x) and a.x.shape == (10_000, 2) and a.x.dtype == torch.float32
    assert not torch.equal(load(name, "validation").x[:100], a.x[:100])
    assert load(f"{name}:500", "train").x.shape == (500, 2)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_export_round_trip(tmp_path, suffix):
    out = tmp_path / f"digits{suffix}"
    export([load("digits", s) for s in ("train", "validation", "test")], out)
    for split in ("train", "test"):
        back, ref = load(str(out), split), load("digits", split)
        assert torch.equal(back.x, ref.x) and torch.equal(back.y, ref.y)
        assert back.spec.levels == 17 and back.spec.num_classes == 10


def test_single_array_file_is_split_80_10_10(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.random.RandomState(0).randn(100, 3))
    sizes = [len(load(f"npz:{path}", s)) for s in ("train", "validation", "test")]
    assert sizes == [80, 10, 10]
    assert load(str(path), "train").spec.kind == "vector"


def test_png_folder_with_labels(tmp_path):
    for label in (0, 1):
        (tmp_path / str(label)).mkdir()
        for i in range(10):
            Image.fromarray(np.full((5, 4), 20 * i + label, np.uint8), "L").save(tmp_path / str(label) / f"{i}.png")
    ds = load(f"png:{tmp_path}", "train")
    assert ds.x.shape == (16, 1, 5, 4) and ds.spec.levels == 256 and set(ds.y.tolist()) <= {0, 1}


def _idx(path, array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_idx_files(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, (20, 6, 6))
    labels = np.arange(20) % 10
    _idx(tmp_path / "img-idx3-ubyte.gz", images)
    _idx(tmp_path / "lab-idx1-ubyte", labels)
    ds = load(f"idx:{tmp_path / 'img-idx3-ubyte.gz'},{tmp_path / 'lab-idx1-ubyte'}", "train")
    assert ds.x.shape == (16, 1, 6, 6) and ds.spec.levels == 256 and ds.spec.num_classes == 10


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"garbage"), "not a readable .npz"),
        (lambda p: np.savez(p, z=np.zeros(3)), "no 'x_test' or 'x' array; the file holds: z "),
        (lambda p: np.savez(p, x=np.zeros((5, 4, 4), np.float32)), "images must be integers"),
        (lambda p: np.savez(p, x=np.zeros((5, 2)), y=np.zeros(4, int)), "labels for"),
        (lambda p: np.savez(p, x=np.zeros((5,))), "must be \\(N, D\\) vectors"),
    ],
)
def test_malformed_npz_names_the_file(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DataError, match=message) as info:
        load(str(path), "test")
    assert "bad.npz" in str(info.value) or "bad" in str(info.value)


def test_other_malformed_sources(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="bad.h5: not a readable HDF5"):
        load(str(tmp_path / "bad.h5"))
    (tmp_path / "t-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 9]))
    with pytest.raises(DataError, match="truncated IDX header"):
        load(f"idx:{tmp_path / 't-idx3-ubyte'}")
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="a.png: not a readable PNG"):
        load(f"png:{tmp_path / 'pngs'}")
    with pytest.raises(DataError, match="unknown data 'nosuch'"):
        load("nosuch")
    with pytest.raises(DataError, match="unknown split"):
        load("digits", "dev")
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["x_train"] = np.zeros((4, 3, 3), np.uint8) + 300 // 2
        f.attrs["levels"] = 100
    with pytest.raises(DataError, match=r"pixel values must lie in \[0, 100\)"):
        load(str(tmp_path / "v.h5"))


def _valid_npz(path):
    np.savez_compressed(path, x=np.random.RandomState(0).randint(0, 5, (50, 4, 4)))
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: b"", "empty file \\(0 bytes\\)"),
        (lambda raw: raw[: len(raw) // 2], "not a readable .npz file \\(File is not a zip file\\)"),
        (
            lambda raw: raw[:100] + bytes(b ^ 0xFF for b in raw[100:120]) + raw[120:],
            "not a readable .npz file \\(.+\\)",
        ),
    ],
)
def test_empty_or_corrupt_npz_is_a_data_error(tmp_path, damage, message):
    path = tmp_path / "broken.npz"
    path.write_bytes(damage(_valid_npz(path)))
    with pytest.raises(DataError, match=f"broken.npz: {message}"):
        load(str(path), "train")


def test_empty_file_through_the_cli_is_one_error_line(tmp_path, capsys):
    from gmkit_core.cli import main

    for name in ("empty.npz", "empty.h5"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(SystemExit) as info:
            main(["datasets", "export", str(tmp_path / name), "--out", str(tmp_path / "out.npz")])
        assert info.value.code == 1
        assert capsys.readouterr().err.splitlines() == [
            f"error: {tmp_path / name}: empty file (0 bytes), not a {name.split('.')[1]} file; write it again"
        ]


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_non_finite_vectors_are_rejected_with_their_count(tmp_path, suffix):
    x = np.random.RandomState(0).randn(30, 3)
    x[3, 1], x[7, 0], x[7, 2] = np.nan, np.inf, -np.inf
    path = tmp_path / f"vec{suffix}"
    if suffix == ".npz":
        np.savez(path, x_train=x, x_test=np.zeros((4, 3)))
    else:
        with h5py.File(path, "w") as f:
            f["x_train"], f["x_test"] = x, np.zeros((4, 3))
    with pytest.raises(DataError, match=rf"vec{suffix} \(x_train\): 3 non-finite values \(NaN, inf"):
        load(str(path), "train")
    assert len(load(str(path), "test")) == 4  # a clean split of the same file still loads


def test_non_finite_vectors_are_rejected_for_any_loader():
    x = torch.zeros(5, 2)
    x[1, 1] = float("nan")
    with pytest.raises(DataError, match="plugin_set: 1 non-finite values"):
        Dataset(x, None, DataSpec("plugin_set", "vector", (2,)), "train")


def test_float32_overflow_counts_as_non_finite(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, x=np.full((10, 2), 1e300))  # finite in float64, inf once stored as float32; all of x counts
    with pytest.raises(DataError, match="20 non-finite values"):
        load(str(path))


def test_missing_key_lists_the_keys_in_the_file(tmp_path):
    path = tmp_path / "keys.h5"
    with h5py.File(path, "w") as f:
        f["images"], f["x_train"], f["labels"] = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3)
    with pytest.raises(
        DataError,
        match=r"keys.h5: no 'x_validation' or 'x' array; the file holds: images, labels, "
        r"x_train \(see",
    ):
        load(str(path), "validation")


def test_absolute_source_resolves_file_paths_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "x.npz", x=np.zeros((10, 2)))
    here = os.path.realpath(tmp_path)
    assert absolute_source("npz:data/x.npz") == f"npz:{tmp_path}/data/x.npz"
    assert absolute_source("data/x.npz") == f"{tmp_path}/data/x.npz"
    assert absolute_source("idx:a/img.gz,../lab") == f"idx:{tmp_path}/a/img.gz,{tmp_path.parent}/lab"
    assert absolute_source("png:.") == f"png:{tmp_path}"
    for fixed in ("digits", "moons:500", f"h5:{here}/r.h5"):
        assert absolute_source(fixed) == fixed
    absolute = absolute_source("npz:data/x.npz")
    monkeypatch.chdir(tmp_path.parent)  # the stored source still names the same file from elsewhere
    assert len(load(absolute, "train")) == 8
