"""32x32 images: patches32 (disjoint crops of two photographs), digits32 (upsampled digits), cifar:FOLDER."""

import numpy as np
import pytest
import torch

from gmkit_core.data import load
from gmkit_core.data.cifar import RECORD, TEST_FILE, TRAIN_FILES
from gmkit_core.data.photos import crop_corners
from gmkit_core.errors import DataError

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def photos():
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    return {
        name: bunch.images[[f.endswith(name) for f in bunch.filenames].index(True)]
        for name in ("china.jpg", "flower.jpg")
    }


def _coverage(split):
    """Per image, a boolean (427, 640) mask of the pixels some crop of ``split`` covers."""
    mask = np.zeros((2, 427, 640), bool)
    for image, top, left in crop_corners(split):
        mask[image, top : top + 32, left : left + 32] = True
    return mask


def test_patches32_splits_share_no_pixel():
    train, validation, test = (_coverage(s) for s in SPLITS)
    assert not (test & train).any() and not (validation & train).any() and not (test & validation).any()
    assert train.sum() > 2 * test.sum() > 0 and validation.any()


def test_patches32_crops_are_the_photographs_at_their_corners(photos):
    pictures = [photos["china.jpg"], photos["flower.jpg"]]
    flipped = 0
    for split in SPLITS:
        ds = load("patches32", split)
        corners = crop_corners(split)
        assert ds.x.shape == (len(corners), 3, 32, 32) and ds.x.dtype == torch.int64
        assert ds.spec.levels == 256 and ds.spec.num_classes == 2 and ds.spec.dims == 3072
        assert torch.equal(ds.y, torch.from_numpy(corners[:, 0]))
        for i in range(0, len(ds), 7):
            image, top, left = corners[i]
            crop = torch.from_numpy(pictures[image][top : top + 32, left : left + 32].astype(np.int64)).permute(2, 0, 1)
            mirrored = torch.equal(ds.x[i], crop.flip(-1))
            assert torch.equal(ds.x[i], crop) or (split == "train" and mirrored)
            flipped += mirrored and not torch.equal(crop, crop.flip(-1))
    assert 0.4 < flipped / len(range(0, 4400, 7)) < 0.6  # about half of the training crops are mirrored
    assert {s: len(load("patches32", s)) for s in SPLITS} == {"train": 4400, "validation": 500, "test": 1000}


def test_patches32_is_deterministic_and_uses_all_levels():
    a, b = load("patches32", "train"), load("patches32", "train")
    assert torch.equal(a.x, b.x) and a.x is not b.x
    a.x[0] = 0  # a caller's change does not reach the per-process cache
    assert torch.equal(load("patches32", "train").x[0], b.x[0]) and not torch.equal(a.x[0], b.x[0])
    assert int(b.x.min()) == 0 and int(b.x.max()) == 255 and int((torch.bincount(b.x.flatten()) > 0).sum()) == 256


def test_digits32_is_bilinear_upsampling_rounded_half_up():
    for split in SPLITS:
        small, big = load("digits", split), load("digits32", split)
        assert big.x.shape == (len(small), 1, 32, 32) and torch.equal(big.y, small.y)
        assert big.spec.levels == 17 and big.spec.num_classes == 10
        ref = torch.nn.functional.interpolate(small.x.double(), scale_factor=4, mode="bilinear", align_corners=False)
        assert torch.equal(big.x, torch.floor(ref + 0.5).long())  # ref is a multiple of 1/64: exact in float64
    assert int(big.x.max()) == 16 and int(big.x.min()) == 0


def test_digits32_blocks_of_constant_digits_stay_constant():
    from gmkit_core.data.builtin import upsample4

    flat = np.full((2, 8, 8), 9)
    assert (upsample4(flat) == 9).all()
    step = np.zeros((1, 8, 8), np.int64)
    step[:, :, 4:] = 16
    row = upsample4(step)[0, 0]
    assert (row[:14] == 0).all() and (row[18:] == 16).all() and (np.diff(row) >= 0).all()


def _cifar(root, sizes=(3, 3, 3, 3, 8), test=4, seed=0):
    """Writes a miniature CIFAR-10 binary set; returns the images and labels written per file."""
    rng = np.random.RandomState(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, n in [*zip(TRAIN_FILES, sizes, strict=True), (TEST_FILE, test)]:
        images = rng.randint(0, 256, (n, 3, 32, 32)).astype(np.uint8)
        labels = rng.randint(0, 10, n).astype(np.uint8)
        records = [
            bytes([int(label)]) + image[0].tobytes() + image[1].tobytes() + image[2].tobytes()
            for image, label in zip(images, labels, strict=True)
        ]
        (root / name).write_bytes(b"".join(records))
        written[name] = (images, labels)
    return written


def test_cifar_reads_planes_and_splits_train_validation_test(tmp_path):
    written = _cifar(tmp_path / "cifar-10-batches-bin")
    pool = np.concatenate([written[name][0] for name in TRAIN_FILES])
    pool_labels = np.concatenate([written[name][1] for name in TRAIN_FILES])
    train, validation, test = (load(f"cifar:{tmp_path}", s) for s in SPLITS)  # the archive's sub-folder is found
    assert (len(train), len(validation), len(test)) == (18, 2, 4)  # validation: the last tenth of the 20
    assert torch.equal(train.x, torch.from_numpy(pool[:18].astype(np.int64)))
    assert torch.equal(validation.x, torch.from_numpy(pool[18:].astype(np.int64)))
    assert torch.equal(validation.y, torch.from_numpy(pool_labels[18:].astype(np.int64)))
    assert torch.equal(test.x, torch.from_numpy(written[TEST_FILE][0].astype(np.int64)))
    assert torch.equal(test.y, torch.from_numpy(written[TEST_FILE][1].astype(np.int64)))
    # channel 0 is the first plane after the label byte: red
    raw = (tmp_path / "cifar-10-batches-bin" / TEST_FILE).read_bytes()
    assert list(test.x[1, 0, 0, :5]) == list(raw[RECORD + 1 : RECORD + 6])
    assert list(test.x[1, 2, 31, -3:]) == list(raw[2 * RECORD - 3 : 2 * RECORD])
    assert train.spec.shape == (3, 32, 32) and train.spec.levels == 256 and train.spec.num_classes == 10


def test_cifar_errors(tmp_path):
    with pytest.raises(DataError, match="nowhere: no such folder"):
        load(f"cifar:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="cifar needs a folder"):
        load("cifar:")
    _cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match=r"missing data_batch_3.bin \(CIFAR-10 binary version\)"):
        load(f"cifar:{tmp_path}", "train")
    assert len(load(f"cifar:{tmp_path}", "test")) == 4  # the test split needs only test_batch.bin
    _cifar(tmp_path)
    test_file = tmp_path / TEST_FILE
    test_file.write_bytes(test_file.read_bytes()[:-100])
    with pytest.raises(
        DataError,
        match=rf"test_batch.bin: {4 * RECORD - 100} bytes is not a whole number of "
        r"3073-byte CIFAR-10 records",
    ):
        load(f"cifar:{tmp_path}", "test")
    test_file.write_bytes(b"")
    with pytest.raises(DataError, match="test_batch.bin: 0 bytes"):
        load(f"cifar:{tmp_path}", "test")
    test_file.write_bytes(bytes([10]) + bytes(RECORD - 1))
    with pytest.raises(DataError, match="label byte 10 is not a class 0-9"):
        load(f"cifar:{tmp_path}", "test")
