"""User data from files, and export in the same layout.

Layout of ``.npz`` and ``.h5`` files (the one :func:`export` writes):

- ``x_train``, ``x_validation``, ``x_test``: one array per split present;
  ``y_<split>``: optional int labels. A file with a single ``x`` (and ``y``)
  is split 80/10/10 by a fixed seeded permutation.
- Images are integer arrays ``(N, C, H, W)`` or ``(N, H, W)`` with values in
  ``[0, levels)``; ``levels`` is a scalar entry (default: 2 if the values are
  0/1, 256 if they fit a byte, else max+1). Vectors are float arrays ``(N, D)``.
- Videos are integer arrays ``(N, T, C, H, W)`` (T frames) with ``levels``
  as for images.
- Optional scalars ``num_classes`` and ``name``.

A folder of PNGs is one set (labels from integer sub-folder names, if all
have one); a folder of clip folders of PNG frames is ``frames:FOLDER``; MNIST
IDX files are ``idx:IMAGES[,LABELS]`` (``.gz`` allowed). All three are split
80/10/10 like a single ``x``.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset
from .spec import SPLITS, DataSpec

__all__ = ["npz", "h5", "png", "frames", "idx", "export", "from_arrays"]

_SINGLE_SPLIT = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}


def _path(arg: str | None, what: str) -> Path:
    if not arg:
        raise DataError(f"{what} needs a path, e.g. --data {what}:PATH")
    path = Path(arg).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return path


def _file(arg: str | None, what: str) -> Path:
    """An existing, non-empty regular file."""
    path = _path(arg, what)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, {what} needs a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not a {what} file; write it again")
    return path


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def from_arrays(arrays: dict[str, Any], split: str, name: str, where: str) -> Dataset:
    """Build a split from a mapping in the documented layout."""
    if split not in SPLITS:
        raise DataError(f"{where}: unknown split '{split}'; splits: {', '.join(SPLITS)}")
    key = f"x_{split}" if f"x_{split}" in arrays else "x"
    _check_finite(arrays.get(key), f"{where} ({key})")
    if f"x_{split}" in arrays:
        x, y = np.asarray(arrays[f"x_{split}"]), arrays.get(f"y_{split}")
        all_x = [np.asarray(arrays[f"x_{s}"]) for s in SPLITS if f"x_{s}" in arrays]
    elif "x" in arrays:
        x, y = np.asarray(arrays["x"]), arrays.get("y")
        if y is not None and len(y) != len(x):
            raise DataError(f"{where}: {len(y)} labels for {len(x)} examples")
        order = np.random.RandomState(0).permutation(len(x))
        lo, hi = (int(round(f * len(x))) for f in _SINGLE_SPLIT[split])
        all_x = [x]
        x, y = x[order[lo:hi]], None if y is None else np.asarray(y)[order[lo:hi]]
    else:
        present = ", ".join(sorted(arrays)) or "nothing"
        raise DataError(
            f"{where}: no 'x_{split}' or 'x' array; the file holds: {present} (see the data layout in docs/data.md)"
        )
    levels = arrays.get("levels")
    num_classes = arrays.get("num_classes")
    name = str(np.asarray(arrays["name"])) if "name" in arrays else name
    return _dataset(x, y, all_x, levels, num_classes, name, split, f"{where} ({key})")


def _check_finite(x: Any, where: str) -> None:
    """Reject float vector data with NaN, inf, or values that overflow float32 (counted over the whole array)."""
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        return
    with np.errstate(over="ignore"):
        bad = int(x.size - np.count_nonzero(np.isfinite(x.astype(np.float32))))
    if bad:
        raise DataError(
            f"{where}: {bad} non-finite values (NaN, inf, or beyond float32's range) in the vector data; "
            "remove or replace them"
        )


def _dataset(
    x: np.ndarray, y: Any, all_x: list[np.ndarray], levels: Any, num_classes: Any, name: str, split: str, where: str
) -> Dataset:
    if x.ndim == 2:
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{where}: vector data must be numeric, got {x.dtype}")
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        spec = DataSpec(name, "vector", (x.shape[1],), num_classes=_int(num_classes))
    elif x.ndim in (3, 4, 5):
        kind = "video" if x.ndim == 5 else "image"
        if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
            raise DataError(f"{where}: {kind}s must be integers in [0, levels), got {x.dtype}; quantise them first")
        if x.ndim == 3:
            x = x[:, None]
        if levels is None:
            top = max((int(a.max()) for a in all_x if a.size), default=0)
            levels = 2 if top <= 1 else 256 if top <= 255 else top + 1
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
        spec = DataSpec(name, kind, tuple(x.shape[1:]), levels=int(levels), num_classes=_int(num_classes))
    else:
        raise DataError(
            f"{where}: x must be (N, D) vectors, (N, [C,] H, W) images or (N, T, C, H, W) videos, got shape {x.shape}"
        )
    yt = None
    if y is not None:
        y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{where}: labels must be integers, got {y.dtype}")
        if y.shape != (len(x),):
            raise DataError(f"{where}: {y.shape[0] if y.ndim else 0} labels for {len(x)} examples")
        yt = torch.from_numpy(y.astype(np.int64))
        if spec.num_classes is None and len(y):
            spec = DataSpec(spec.name, spec.kind, spec.shape, spec.levels, int(y.max()) + 1)
    return Dataset(xt, yt, spec, split)


def _int(value: Any) -> int | None:
    return None if value is None else int(np.asarray(value))


def npz(arg: str | None, split: str) -> Dataset:
    """NumPy ``.npz`` in the documented layout."""
    path = _file(arg, "npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz file ({_reason(exc)})") from None
    return from_arrays(arrays, split, path.stem, str(path))


def h5(arg: str | None, split: str) -> Dataset:
    """HDF5 file with datasets in the documented layout at the root."""
    import h5py

    path = _file(arg, "h5")
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            arrays.update({k: v for k, v in f.attrs.items() if k in ("levels", "num_classes", "name")})
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({_reason(exc)})") from None
    if isinstance(arrays.get("name"), bytes):
        arrays["name"] = arrays["name"].decode()
    return from_arrays(arrays, split, path.stem, str(path))


def _read_pngs(files: list[Path], where: Path) -> tuple[np.ndarray, int]:
    """Stack PNGs of one size into ``(N, C, H, W)`` int64 levels; 2 levels if all are 1-bit, else 256."""
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    bits: list[bool] = []
    for file in files:
        try:
            with Image.open(file) as im:
                mode = "1" if im.mode == "1" else "L" if im.mode in ("L", "LA", "I;16", "P") else "RGB"
                image = np.asarray(im.convert(mode), dtype=np.int64)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{file}: not a readable PNG ({exc})") from None
        image = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        if images and image.shape != images[0].shape:
            raise DataError(
                f"{where}: images differ in size: {files[0].relative_to(where)} is {_size(images[0])}, "
                f"{file.relative_to(where)} is {_size(image)}"
            )
        images.append(image)
        bits.append(mode == "1")
    if all(bits):
        return np.stack(images), 2
    return np.stack([im * 255 if one else im for im, one in zip(images, bits, strict=True)]), 256


def _size(image: np.ndarray) -> str:
    c, h, w = image.shape
    return f"{h}x{w} with {c} channel{'s' if c > 1 else ''}"


def _label(folder: Path, root: Path) -> int | None:
    return int(folder.name) if folder != root and folder.name.isdigit() else None


def png(arg: str | None, split: str) -> Dataset:
    """A folder of PNG images of one size; labels from integer sub-folder names."""
    root = _path(arg, "png")
    if not root.is_dir():
        raise DataError(f"{root}: png data must be a folder of .png files")
    files = sorted(root.rglob("*.png"))
    if not files:
        raise DataError(f"{root}: no .png files found")
    x, levels = _read_pngs(files, root)
    labels = [_label(file.parent, root) for file in files]
    arrays: dict[str, Any] = {"x": x, "levels": levels}
    if all(label is not None for label in labels):
        arrays["y"] = np.array(labels)
    return from_arrays(arrays, split, root.name, str(root))


def frames(arg: str | None, split: str) -> Dataset:
    """Video clips: one sub-folder of PNG frames per clip, frames in file-name order.

    Every clip must have the same number of frames T and every frame the same
    size, giving ``(N, T, C, H, W)`` levels. A clip folder inside a folder
    named by an integer takes that integer as its label (if all do).
    """
    root = _path(arg, "frames")
    if not root.is_dir():
        raise DataError(f"{root}: frames data must be a folder with one sub-folder of .png frames per clip")
    clips = sorted({file.parent for file in root.rglob("*.png")})
    if not clips:
        raise DataError(f"{root}: no clip folders of .png frames found")
    if root in clips:
        raise DataError(f"{root}: .png files lie directly in the folder; put each clip's frames in its own sub-folder")
    per_clip = [sorted(clip.glob("*.png")) for clip in clips]
    for clip, files in zip(clips, per_clip, strict=True):
        if len(files) != len(per_clip[0]):
            raise DataError(
                f"{root}: clips differ in length: {clips[0].relative_to(root)} has {len(per_clip[0])} "
                f"frames, {clip.relative_to(root)} has {len(files)}"
            )
    x, levels = _read_pngs([file for files in per_clip for file in files], root)
    arrays: dict[str, Any] = {"x": x.reshape(len(clips), len(per_clip[0]), *x.shape[1:]), "levels": levels}
    labels = [_label(clip.parent, root) for clip in clips]
    if all(label is not None for label in labels):
        arrays["y"] = np.array(labels)
    return from_arrays(arrays, split, root.name, str(root))


_IDX_TYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX body has {len(raw) - header} bytes, header promises {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def idx(arg: str | None, split: str) -> Dataset:
    """MNIST-style IDX: ``IMAGES`` or ``IMAGES,LABELS``."""
    if not arg:
        raise DataError("idx needs a path, e.g. --data idx:train-images-idx3-ubyte[,train-labels-idx1-ubyte]")
    image_arg, _, label_arg = arg.partition(",")
    images = _read_idx(_path(image_arg, "idx"))
    if images.ndim != 3:
        raise DataError(f"{image_arg}: expected (N, H, W) images, got {images.ndim} dimensions")
    arrays: dict[str, Any] = {"x": images.astype(np.int64)}
    if label_arg:
        labels = _read_idx(_path(label_arg, "idx"))
        if labels.shape != (len(images),):
            raise DataError(f"{label_arg}: {labels.shape[0]} labels for {len(images)} images")
        arrays["y"] = labels.astype(np.int64)
    if images.dtype == np.uint8:
        arrays["levels"] = 256
    return from_arrays(arrays, split, Path(image_arg).name.split("-")[0], image_arg)


def export(datasets: list[Dataset], out: str | Path) -> Path:
    """Write splits in the documented layout to ``.npz`` or ``.h5``; returns the path."""
    out = Path(out)
    arrays: dict[str, Any] = {}
    spec = datasets[0].spec
    for ds in datasets:
        small = spec.is_discrete and (spec.levels or 0) <= 256
        arrays[f"x_{ds.split}"] = ds.x.numpy().astype(np.uint8) if small else ds.x.numpy()
        if ds.y is not None:
            arrays[f"y_{ds.split}"] = ds.y.numpy()
    scalars: dict[str, Any] = {"name": spec.name}
    if spec.levels is not None:
        scalars["levels"] = spec.levels
    if spec.num_classes is not None:
        scalars["num_classes"] = spec.num_classes
    if out.suffix == ".npz":
        payload: dict[str, Any] = {**arrays, **{k: np.asarray(v) for k, v in scalars.items()}}
        np.savez_compressed(out, **payload)
    elif out.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(out, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value, compression="gzip")
            f.attrs.update(scalars)
    else:
        raise DataError(f"{out}: export writes .npz or .h5 files")
    return out
