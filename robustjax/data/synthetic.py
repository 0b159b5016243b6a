"""Synthetic stand-in data with the shape and classes of a real dataset: smoke runs work anywhere.

    train, test, info = load_synthetic("svhn_cropped", train_size=128, test_size=32)
    info.name == "svhn_cropped-standin"; info.image_shape == (32, 32, 3); info.num_classes == 10

The ``smoke`` variant of every config whose dataset would come from tfds (or an npz file) uses this
source, so ``python main.py --config=configs/<any>.py:smoke`` runs in seconds on a machine with no
prepared dataset and no network. The images are NOT the real dataset and the numbers a smoke run
reports mean nothing about it: the run's output and report say so.

Each class has a fixed random pattern (a coarse random image, upsampled); an example is its class's
pattern blended with uniform noise, stored as uint8 like the real datasets. A small network learns the
classes in a few steps, so a smoke run exercises training and attacks on a problem that is not
degenerate. Everything is a pure function of ``(name, seed)``.
"""

from __future__ import annotations

import zlib

import numpy as np

from robustjax.data.core import ArrayDataset, DataInfo
from robustjax.errors import ConfigError

# (image shape, number of classes) of the datasets a stand-in can imitate.
SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "svhn_cropped": ((32, 32, 3), 10),
    "digits": ((16, 16, 1), 10),
}
DEFAULT_TRAIN, DEFAULT_TEST = 1024, 256
_PATTERN_CELLS = 4     # each class pattern is a 4x4 random image, upsampled
_NOISE = 0.5           # weight of the per-example uniform noise


def _split(rng: np.random.Generator, patterns: np.ndarray, n: int, num_classes: int) -> ArrayDataset:
    labels = (np.arange(n) % num_classes).astype(np.int32)
    rng.shuffle(labels)
    noise = rng.random((n,) + patterns.shape[1:], dtype=np.float32)
    images = (1.0 - _NOISE) * patterns[labels] + _NOISE * noise
    return ArrayDataset(np.round(images * 255.0).astype(np.uint8), labels)


def load_synthetic(name: str, *, train_size: int = 0, test_size: int = 0,
                   seed: int = 0) -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """Stand-in train/test splits shaped like dataset ``name`` (see the module docstring).

    Args:
      name: a dataset in ``SHAPES`` (the tfds names of the papers' datasets, and digits).
      train_size, test_size: examples per split (0 = 1024 / 256).
      seed: generator seed (patterns and examples).

    Raises:
      ValueError: an unknown name (the message lists the known ones).
    """
    if name not in SHAPES:
        raise ConfigError(f"no synthetic stand-in for dataset {name!r}; stand-ins exist for {sorted(SHAPES)} "
                          "(config.data.name)")
    for what, n in (("train_size", train_size), ("test_size", test_size)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"config.data.{what} must be an integer >= 0, got {n!r}")
    shape, num_classes = SHAPES[name]
    h, w, c = shape
    rng = np.random.default_rng([zlib.crc32(name.encode()), int(seed)])
    coarse = rng.random((num_classes, _PATTERN_CELLS, _PATTERN_CELLS, c), dtype=np.float32)
    patterns = np.repeat(np.repeat(coarse, -(-h // _PATTERN_CELLS), axis=1), -(-w // _PATTERN_CELLS), axis=2)
    patterns = patterns[:, :h, :w, :]
    train = _split(rng, patterns, int(train_size) or DEFAULT_TRAIN, num_classes)
    test = _split(rng, patterns, int(test_size) or DEFAULT_TEST, num_classes)
    info = DataInfo(name=f"{name}-standin", image_shape=shape, num_classes=num_classes, num_train=len(train),
                    num_test=len(test), source="synthetic")
    return train, test, info
