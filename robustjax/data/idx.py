"""The IDX files MNIST and Fashion-MNIST are published in, read offline from a local directory.

    train, test, info = load_idx("/usr/share/datasets/fashion-mnist", name="fashion_mnist", train_size=10000)
    python main.py --config=configs/bcgan_fashion_mnist.py --config.data.source=idx \\
        --config.data.path=/usr/share/datasets/fashion-mnist

A directory holds the four files of the official distribution, gzipped or not, with a hyphen or a dot
before ``idx`` (both spellings circulate): ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``. Debian's ``dataset-fashion-mnist``
package installs Fashion-MNIST's under ``/usr/share/datasets/fashion-mnist/``; MNIST's are the same format.

The format (LeCun's page): a big-endian header - two zero bytes, a type byte (0x08 = unsigned byte, the
only type these datasets use and the only one read here), the number of dimensions - then one uint32 per
dimension, then the data in C order. Images are ``[N, H, W]`` (a channel axis is added), labels ``[N]``.
Only the first ``train_size`` / ``test_size`` rows are read (and decompressed).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from robustjax.data.core import ArrayDataset, DataInfo, DatasetUnavailableError
from robustjax.data.sources import _subset_size
from robustjax.errors import ConfigError, DataError

UBYTE = 0x08
FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
         ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}


def find_file(directory: str, stem: str) -> str | None:
    """The path of ``stem`` in ``directory`` (``.gz`` or not, ``-idx`` or ``.idx``), or None."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _open(path: str):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str, rows: int = 0, ndim: int | None = None, what: str = "rows") -> np.ndarray:
    """The array in one IDX file (unsigned bytes), its first ``rows`` rows (0 = all).

    Raises:
      DataError: not an IDX file of unsigned bytes, the wrong number of dimensions, or a file shorter than
        its header says.
      ConfigError: more rows asked for than the file holds, or a negative count (named ``what``).
    """
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\x00\x00":
                raise DataError(f"{path} is not an IDX file (its first bytes are {head!r}, not 00 00 <type> "
                                "<ndim>); give the directory of the official MNIST-format files")
            if head[2] != UBYTE:
                raise DataError(f"{path}: IDX type 0x{head[2]:02x} is not unsigned bytes (0x08), the type of "
                                "MNIST / Fashion-MNIST images and labels")
            if ndim is not None and head[3] != ndim:
                raise DataError(f"{path}: has {head[3]} dimensions, expected {ndim} "
                                f"({'images [N, H, W]' if ndim == 3 else 'labels [N]'}); are the file names swapped?")
            dims_raw = f.read(4 * head[3])
            if len(dims_raw) < 4 * head[3]:
                raise DataError(f"{path}: the header ends early; the file is truncated")
            shape = struct.unpack(">" + "I" * head[3], dims_raw)
            n = _subset_size(rows, shape[0], f"{path} {what}")
            size = n * int(np.prod(shape[1:], dtype=np.int64))
            data = f.read(size)
    except (OSError, EOFError) as error:  # a damaged gzip stream
        raise DataError(f"{path} cannot be read ({error}); download the file again") from error
    if len(data) < size:
        raise DataError(f"{path}: holds {len(data)} bytes of data where its header promises {size} for "
                        f"{n} rows; the file is truncated, download it again")
    return np.frombuffer(data, np.uint8).reshape((n,) + tuple(shape[1:])).copy()  # writable, like np.load


def load_idx(directory: str, *, train_size: int = 0, test_size: int = 0, num_classes: int = 0,
             name: str = "") -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """MNIST-format train and test splits from the four IDX files in ``directory``.

    Args:
      directory: the folder holding the files (see the module docstring for their names).
      train_size, test_size: keep the first that many examples (0 = all).
      num_classes: 0 = 10 (every MNIST-format dataset has ten classes).
      name: the dataset name for ``DataInfo`` (default: the folder's name, ``-`` as ``_``).

    Raises:
      DatasetUnavailableError: the directory or one of its files does not exist.
      DataError: a malformed file, or image and label counts that differ.
      ConfigError: sizes larger than the files hold, a negative size.
    """
    directory = os.path.expanduser(str(directory))
    if not directory:
        raise ConfigError("source=idx needs a path: --config.data.path=/dir/holding/train-images-idx3-ubyte.gz "
                          "(e.g. /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist package)")
    if not os.path.isdir(directory):
        raise DatasetUnavailableError(
            f"IDX directory {directory!r} does not exist (cwd: {os.getcwd()}). Point --config.data.path at "
            "the folder holding train-images-idx3-ubyte(.gz) and the other three files; for Fashion-MNIST, "
            "`apt-get install dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist")
    splits = {}
    for split, size in (("train", train_size), ("test", test_size)):
        paths = {}
        for kind in ("images", "labels"):
            stem = FILES[(split, kind)]
            paths[kind] = find_file(directory, stem)
            if paths[kind] is None:
                raise DatasetUnavailableError(
                    f"{directory} has no {stem} (nor {stem}.gz); it holds {sorted(os.listdir(directory))[:8]}. "
                    "An IDX dataset folder needs train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (gzipped or not)")
        x = read_idx(paths["images"], size, ndim=3, what=f"{split}_size")
        y = read_idx(paths["labels"], size, ndim=1, what=f"{split}_size")
        if len(x) != len(y):
            raise DataError(f"{directory}: {len(x)} {split} images but {len(y)} labels; the files do not belong "
                            "together")
        splits[split] = ArrayDataset(x[..., None], y.astype(np.int32))
    if num_classes < 0:
        raise ConfigError(f"num_classes must be >= 0 (0 = 10), got {num_classes}")
    num_classes = num_classes or 10
    train, test = splits["train"], splits["test"]
    if train.element_shape != test.element_shape:
        raise DataError(f"{directory}: train images have shape {train.element_shape} but test images "
                        f"{test.element_shape}; both splits must share one shape")
    info = DataInfo(name=name or os.path.basename(os.path.normpath(directory)).replace("-", "_"),
                    image_shape=train.element_shape, num_classes=num_classes,
                    num_train=len(train), num_test=len(test), source="idx")
    return train, test, info
