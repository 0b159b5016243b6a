"""Offline sources: a local ``.npz`` file, scikit-learn's bundled digits, and 2-D toy problems.

    train, test, info = load_npz("data/mnist.npz", train_size=1000, test_size=500)
    train, test, info = load_digits(image_size=16)
    train, test, info = load_toy2d("moons", num_train=2000, num_test=500, noise=0.1, seed=0)

Subsets are the first ``train_size`` / ``test_size`` examples in the source's order (the robustness
literature's "first 1000 test images"); for an npz file only those rows are decompressed.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from robustjax.data.core import ArrayDataset, DataInfo, DatasetUnavailableError
from robustjax.errors import ConfigError, DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
TOY2D_NAMES = ("two_gaussians", "circles", "moons")

# The digits train/test split is fixed (independent of the run's seed) so every run tests on the same
# 300 images: a seeded permutation of the 1797 digits, the first 1497 train, the last 300 test.
DIGITS_SPLIT_SEED = 0
DIGITS_NUM_TEST = 300
DIGITS_DEFAULT_IMAGE_SIZE = 16


def _subset_size(requested: int, available: int, what: str) -> int:
    if requested < 0:
        raise ConfigError(f"{what}: size must be >= 0 (0 = all {available}), got {requested}")
    if requested > available:
        raise ConfigError(f"{what}: asked for {requested} examples but only {available} exist; "
                          f"use 0 for all of them or a value <= {available}")
    return requested or available


# ----------------------------------------------------------------------------------------------- npz


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _read_npy_rows(archive: zipfile.ZipFile, key: str, rows: int | None) -> np.ndarray:
    """Reads ``key`` from an open npz archive; with ``rows``, decompresses only the first ``rows`` rows."""
    member = key + ".npy"
    with archive.open(member) as f:
        shape, fortran_order, dtype = _read_header(f)
        if rows is None or fortran_order or dtype.hasobject or not shape or rows >= shape[0]:
            f.close()
            with archive.open(member) as g:
                return np.lib.format.read_array(g, allow_pickle=False)
        row_items = int(np.prod(shape[1:], dtype=np.int64))
        count = rows * row_items
        data = f.read(count * dtype.itemsize)
        return np.frombuffer(data, dtype=dtype, count=count).reshape((rows,) + tuple(shape[1:])).copy()


def _npz_shape(archive: zipfile.ZipFile, key: str) -> tuple[int, ...]:
    with archive.open(key + ".npy") as f:
        return tuple(_read_header(f)[0])


def _looks_channels_first(shape: tuple[int, ...]) -> bool:
    """``[N, C, H, W]`` with 1, 3 or 4 channels, where the last axis is too long to be a channel axis."""
    return len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] > 4


def _npz_images(x: np.ndarray, path: str, key: str) -> np.ndarray:
    if _looks_channels_first(x.shape):
        n, c, h, w = x.shape
        raise DataError(f"{path}: {key} has shape {x.shape}, which is channels-first (NCHW: {c} channel(s) of "
                        f"{h}x{w}); robustjax reads channels-last NHWC images: store {key}.transpose(0, 2, 3, 1) "
                        f"(shape ({n}, {h}, {w}, {c})) instead")
    if x.ndim == 3:  # [N, H, W] grayscale
        x = x[..., None]
    if x.ndim not in (2, 4):  # [N, D] vectors (e.g. 2-D points) are kept as they are
        raise DataError(f"{path}: {key} has shape {x.shape}; expected [N, H, W, C] (NHWC), [N, H, W] "
                        "(grayscale) or [N, D]")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        # Range, NaN and inf are checked by `validate` with the example index in the message.
        return x.astype(np.float32, copy=False)
    raise DataError(f"{path}: {key} has dtype {x.dtype}; store images as uint8 (0..255) or as floats "
                    "already scaled into [0, 1]")


def _npz_labels(y: np.ndarray, path: str, key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:  # [N, 1] (the Keras CIFAR layout)
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: {key} has shape {y.shape}; expected class indices [N] "
                        "(convert one-hot labels with y.argmax(-1))")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{path}: {key} has dtype {y.dtype}; labels must be integer class indices")
    return y.astype(np.int32)


def _check_inferred_classes(train: ArrayDataset, test: ArrayDataset, num_classes: int, path: str) -> None:
    """Refuses a class count inferred from a stray label: with labels in {0..9} and one 255, ``max + 1``
    would silently train a 256-class model."""
    present = np.unique(np.concatenate([train.labels, test.labels]))
    missing = num_classes - len(present)
    if missing > max(1, num_classes // 10):
        top = int(present[-1])
        split, labels = ("y_train", train.labels) if (train.labels == top).any() else ("y_test", test.labels)
        i = int(np.flatnonzero(labels == top)[0])
        raise ValueError(
            f"{path}: the labels imply {num_classes} classes (largest label {top}, at example {i} of {split}) "
            f"but only {len(present)} distinct labels occur: {missing} classes have no example. If the file "
            f"really has {num_classes} classes, set config.data.num_classes={num_classes}; otherwise fix or "
            "drop the stray labels (or set config.data.num_classes to the true number of classes)")


def load_npz(path: str, *, train_size: int = 0, test_size: int = 0, num_classes: int = 0,
             name: str = "") -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """Loads ``x_train/y_train/x_test/y_test`` from a local ``.npz`` file (the offline route).

    Images: uint8 NHWC (kept as uint8), uint8 ``[N, H, W]`` grayscale (a channel axis is added), or
    floats already in [0, 1]. Channels-first arrays (``[N, 1, 28, 28]``, ``[N, 3, 32, 32]``) are rejected
    with the transpose that fixes them. Labels: integer class indices ``[N]`` (or ``[N, 1]``).

    Args:
      path: the ``.npz`` file.
      train_size, test_size: keep the first that many examples (0 = all); only they are decompressed.
      num_classes: the number of classes; 0 = ``max label + 1`` over the loaded train and test labels
        (set it when a subset might miss the highest class).
      name: the dataset name for ``DataInfo`` (default: the file name without ``.npz``).

    Raises:
      DatasetUnavailableError: the file does not exist.
      DataError: (a ``ValueError``) missing arrays, wrong shapes, layouts or dtypes.
      ConfigError: (a ``ValueError``) sizes larger than the file holds.
    """
    path = os.path.expanduser(str(path))
    if not path:
        raise ConfigError("source=npz needs a path: --config.data.path=/path/to/file.npz holding "
                          "x_train, y_train, x_test, y_test")
    if not os.path.isfile(path):
        raise DatasetUnavailableError(
            f"npz file {path!r} does not exist (cwd: {os.getcwd()}). Point --config.data.path at a .npz "
            "with x_train/y_train/x_test/y_test, e.g. one written with np.savez_compressed(path, "
            "x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise DataError(f"{path} is not an .npz archive ({error}); write it with np.savez or "
                        "np.savez_compressed") from error
    with archive:
        present = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
        missing = [k for k in NPZ_KEYS if k not in present]
        if missing:
            raise DataError(f"{path} lacks {missing}; it holds {sorted(present)}. An npz dataset needs "
                            f"the arrays {list(NPZ_KEYS)}")
        splits = {}
        for split, size in (("train", train_size), ("test", test_size)):
            x_shape, y_shape = _npz_shape(archive, f"x_{split}"), _npz_shape(archive, f"y_{split}")
            if not x_shape or not y_shape or x_shape[0] != y_shape[0]:
                raise DataError(f"{path}: x_{split} has shape {x_shape} but y_{split} has shape {y_shape}; "
                                "they must hold the same number of examples, one label per image")
            available = x_shape[0]
            n = _subset_size(size, available, f"{path} {split}_size")
            x = _npz_images(_read_npy_rows(archive, f"x_{split}", n), path, f"x_{split}")
            y = _npz_labels(_read_npy_rows(archive, f"y_{split}", n), path, f"y_{split}")
            splits[split] = ArrayDataset(x, y)
    train, test = splits["train"], splits["test"]
    if train.element_shape != test.element_shape:
        raise DataError(f"{path}: train examples have shape {train.element_shape} but test examples "
                        f"{test.element_shape}; both splits must share one shape")
    if num_classes < 0:
        raise ConfigError(f"num_classes must be >= 0 (0 = max label + 1), got {num_classes}")
    if not num_classes:
        num_classes = int(max(train.labels.max(initial=-1), test.labels.max(initial=-1))) + 1
        _check_inferred_classes(train, test, num_classes, path)
    info = DataInfo(name=name or os.path.splitext(os.path.basename(path))[0],
                    image_shape=train.element_shape, num_classes=max(num_classes, 1),
                    num_train=len(train), num_test=len(test), source="npz")
    return train, test, info


# -------------------------------------------------------------------------------------------- digits


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resizes ``[N, H, W, C]`` float images to ``[N, size, size, C]`` (``jax.image.resize``, linear).

    Upsampling interpolates between pixel centres; downsampling uses an antialiasing triangle filter.
    Both are convex combinations of input pixels, so values stay in the input's range.
    """
    import jax  # local: keep `import robustjax.data` light

    n, _, _, c = images.shape
    out = jax.image.resize(np.asarray(images, np.float32), (n, size, size, c), method="linear")
    return np.asarray(out, dtype=np.float32)


def load_digits(*, image_size: int = DIGITS_DEFAULT_IMAGE_SIZE, train_size: int = 0,
                test_size: int = 0) -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes): the default that needs no download.

    Pixels (0..16) are scaled into [0, 1] and bilinearly resized to ``image_size x image_size`` with one
    channel. The split is fixed: 1497 train / 300 test from a permutation seeded with
    ``DIGITS_SPLIT_SEED`` (the same for every run seed).

    Args:
      image_size: output side length (default 16: a small CNN's two 2x2 poolings still leave 4x4).
        8 keeps the original pixels.
      train_size, test_size: keep the first that many of each split (0 = all).
    """
    from sklearn.datasets import load_digits as sk_load_digits  # local: sklearn is slow to import

    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ConfigError(f"digits image_size must be a positive integer (8 = original), got {image_size!r}")
    bunch = sk_load_digits()
    images = (bunch.images.astype(np.float32) / np.float32(16.0))[..., None]
    labels = bunch.target.astype(np.int32)
    if image_size != images.shape[1]:
        images = np.clip(resize_bilinear(images, int(image_size)), 0.0, 1.0)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    train_idx, test_idx = order[:-DIGITS_NUM_TEST], order[-DIGITS_NUM_TEST:]
    n_train = _subset_size(train_size, len(train_idx), "digits train_size")
    n_test = _subset_size(test_size, len(test_idx), "digits test_size")
    train = ArrayDataset(images[train_idx[:n_train]], labels[train_idx[:n_train]])
    test = ArrayDataset(images[test_idx[:n_test]], labels[test_idx[:n_test]])
    info = DataInfo(name="digits", image_shape=train.element_shape, num_classes=10,
                    num_train=len(train), num_test=len(test), source="digits")
    return train, test, info


# --------------------------------------------------------------------------------------------- toy2d

# Each toy problem's raw generator and the square box (x_min, y_min, side) its raw points are mapped
# from; the box holds the noiseless shape plus a margin of 4 noise standard deviations, and one scale
# for both axes keeps distances (and so epsilons) isotropic. Points outside the box (probability ~1e-4
# per point) are clipped onto its edge.


def _two_gaussians(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 around (-1, 0), class 1 around (+1, 0); isotropic std ``noise``."""
    labels = np.arange(n) % 2
    centres = np.stack([2.0 * labels - 1.0, np.zeros(n)], axis=1)
    points = centres + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return points[order], labels[order]


def _toy_raw(name: str, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as skd  # local: sklearn is slow to import

    if name == "two_gaussians":
        return _two_gaussians(n, noise, np.random.default_rng(seed))
    if name == "circles":  # outer circle radius 1 (class 0), inner radius 0.5 (class 1)
        return skd.make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
    return skd.make_moons(n_samples=n, noise=noise, random_state=seed)  # x in [-1, 2], y in [-0.5, 1]


def _toy_box(name: str, noise: float) -> tuple[float, float, float]:
    lo_x, hi_x, lo_y, hi_y = {"two_gaussians": (-1.0, 1.0, 0.0, 0.0), "circles": (-1.0, 1.0, -1.0, 1.0),
                              "moons": (-1.0, 2.0, -0.5, 1.0)}[name]
    margin = 4.0 * noise + 0.05
    lo_x, hi_x, lo_y, hi_y = lo_x - margin, hi_x + margin, lo_y - margin, hi_y + margin
    side = max(hi_x - lo_x, hi_y - lo_y)
    # Centre the shorter axis inside the square.
    return (lo_x - (side - (hi_x - lo_x)) / 2, lo_y - (side - (hi_y - lo_y)) / 2, side)


def load_toy2d(name: str, *, num_train: int, num_test: int, noise: float = 0.1,
               seed: int = 0) -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """A 2-D, 2-class toy problem with points scaled into [0, 1]^2.

    Args:
      name: ``"two_gaussians"`` (means (-1, 0) and (1, 0), std ``noise``), ``"circles"`` (radii 1 and
        0.5, Gaussian noise ``noise``) or ``"moons"`` (scikit-learn's two half-moons, noise ``noise``).
      num_train, num_test: points per split (classes balanced).
      noise: standard deviation of the Gaussian noise, in the raw units above (before scaling).
      seed: train points use seed ``2 * seed``, test points ``2 * seed + 1`` (independent draws).

    Returns:
      Splits with float32 ``image [N, 2]`` in [0, 1] and labels in {0, 1}; ``info.image_shape == (2,)``.
    """
    if name not in TOY2D_NAMES:
        raise ConfigError(f"unknown toy2d dataset {name!r}; valid names: {list(TOY2D_NAMES)}")
    if not noise >= 0:
        raise ConfigError(f"toy2d noise must be >= 0, got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"toy2d seed must be a non-negative integer, got {seed!r}")
    for what, n in (("train", num_train), ("test", num_test)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ConfigError(f"toy2d needs at least 2 {what} points (one per class), got {n!r}")
    x0, y0, side = _toy_box(name, float(noise))
    splits = []
    for n, split_seed in ((num_train, 2 * seed), (num_test, 2 * seed + 1)):
        points, labels = _toy_raw(name, int(n), float(noise), int(split_seed))
        scaled = (np.asarray(points, np.float64) - np.array([x0, y0])) / side
        splits.append(ArrayDataset(np.clip(scaled, 0.0, 1.0).astype(np.float32),
                                   np.asarray(labels, np.int32)))
    train, test = splits
    info = DataInfo(name=name, image_shape=(2,), num_classes=2, num_train=len(train), num_test=len(test),
                    source="toy2d")
    return train, test, info
