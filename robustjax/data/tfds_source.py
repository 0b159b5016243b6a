"""The tfds source: prepared TensorFlow Datasets read through ``tfds.data_source`` (no TensorFlow).

    train, test, info = load_tfds("mnist", data_dir="", train_size=0, test_size=0)
    train, test, info = load_tfds("svhn_cropped", data_dir="/data/tfds", download=False)
    # offline and not prepared -> DatasetUnavailableError within a second, naming the ways out

Reading: ``tfds.data_source`` opens the array_record files of a prepared dataset and decodes examples
with numpy/PIL; TensorFlow is not imported. The whole (or first ``train_size``) split is read into one
uint8 array, in batched ``__getitems__`` calls.

Preparing (download + convert) is another matter. With tensorflow-datasets 4.9.10 the builders of the
five paper datasets (mnist, fashion_mnist, cifar10, cifar100, svhn_cropped) read their downloads with
``tf.io.gfile`` and encode numpy images with ``tf.image.encode_png``, so *preparing* needs TensorFlow
(and the ``importlib_resources`` package, which tfds imports on that path but does not declare). This
module therefore checks, before any download starts, that TensorFlow is importable; otherwise it fails
at once instead of downloading (SVHN: 1.5 GB) only to fail afterwards. Prepare once on a connected
machine (``pip install tensorflow-cpu importlib_resources``, then ``tfds build mnist
--file_format=array_record`` or ``tfds.data_source("mnist")``) and copy the data_dir; or use the npz
source. A dataset prepared in the tfrecord format (by ``tfds.load``) cannot be read here either: it must
be prepared with ``file_format="array_record"``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from robustjax.data.core import ArrayDataset, DataInfo, DatasetUnavailableError
from robustjax.errors import ConfigError, DataError

# The datasets of the papers this library reproduces. Any other tfds image-classification dataset with
# "image" and "label" features works as well.
TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn_cropped")

_READ_CHUNK = 1024


def _tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _data_dir_text(data_dir: str) -> str:
    if data_dir:
        return data_dir
    default = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return f"{os.path.expanduser(default)} (the tfds default; set config.data.data_dir to change it)"


def _ways_out(name: str, data_dir: str) -> str:
    target = data_dir or "~/tensorflow_datasets"
    return (
        "Ways out:\n"
        f"  1. Prepare it on a machine with internet: pip install tensorflow-datasets tensorflow-cpu "
        f"importlib_resources, then\n"
        f"       tfds build {name} --file_format=array_record --data_dir={target}\n"
        f"     (or python -c \"import tensorflow_datasets as tfds; tfds.data_source('{name}', "
        f"data_dir='{target}')\"),\n"
        f"     and copy {target}/{name} to this machine's data_dir (config.data.data_dir).\n"
        "     (TensorFlow is needed only for preparing; reading the prepared files here does not need it.)\n"
        "  2. Use a local .npz with x_train/y_train/x_test/y_test instead:\n"
        "       --config.data.source=npz --config.data.path=/path/to/data.npz\n"
        "  3. Run offline on the embedded data: --config.data.source=digits --config.data.name=digits")


def _builder(name: str, data_dir: str):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.DatasetNotFoundError as error:
        raise ConfigError(
            f"unknown tfds dataset {name!r}; the supported ones are {list(TFDS_NAMES)} (any tfds image "
            f"classification dataset with 'image' and 'label' features also works)") from error


def _open_sources(name: str, data_dir: str, download: bool) -> tuple[Any, Any, Any]:
    """Returns (builder, train source, test source), or raises DatasetUnavailableError quickly."""
    import tensorflow_datasets as tfds

    builder = _builder(name, data_dir)
    where = _data_dir_text(data_dir)
    try:
        # Reading needs no network; on a prepared (or mocked) dataset this is all there is to do.
        sources = builder.as_data_source(split=["train", "test"])
        return builder, sources[0], sources[1]
    except Exception as error:  # noqa: BLE001 - classified below, original chained
        read_error = error
    if builder.is_prepared():
        raise DatasetUnavailableError(
            f"tfds dataset {name!r} is prepared in {where} but cannot be read as a random-access data "
            f"source ({type(read_error).__name__}: {read_error}). It was probably prepared in the tfrecord "
            "format (tfds.load does that); re-prepare it with --file_format=array_record.\n"
            + _ways_out(name, data_dir)) from read_error
    if not download:
        raise DatasetUnavailableError(
            f"tfds dataset {name!r} is not prepared in {where}, and config.data.download is False.\n"
            + _ways_out(name, data_dir)) from read_error
    if not _tensorflow_installed():
        raise DatasetUnavailableError(
            f"tfds dataset {name!r} is not prepared in {where}, and preparing it here is not possible: "
            "tensorflow-datasets needs TensorFlow to build (download and convert) the standard image "
            "datasets, and TensorFlow is not installed. Nothing was downloaded.\n"
            + _ways_out(name, data_dir)) from read_error
    try:
        sources = tfds.data_source(name, split=["train", "test"], data_dir=data_dir or None, download=True)
    except Exception as error:  # noqa: BLE001 - network, missing packages, disk: all mean "unavailable"
        raise DatasetUnavailableError(
            f"tfds dataset {name!r} is not prepared in {where}, and preparing it failed "
            f"({type(error).__name__}: {error}). Without internet the download cannot work.\n"
            + _ways_out(name, data_dir)) from error
    return builder, sources[0], sources[1]


def _read_items(source, indices: list[int]) -> list[dict]:
    try:
        return list(source.__getitems__(indices))
    except TypeError:
        # tfds.testing.mock_data (4.9.10) installs an unbound __getitems__ that raises TypeError; fall
        # back to one read per example (same result, a little slower).
        return [source[i] for i in indices]


def _read_split(source, n: int, image_shape: tuple[int, ...], where: str) -> ArrayDataset:
    images = np.empty((n,) + image_shape, dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int32)
    for start in range(0, n, _READ_CHUNK):
        stop = min(start + _READ_CHUNK, n)
        for i, example in enumerate(_read_items(source, list(range(start, stop))), start):
            image = np.asarray(example["image"])
            if image.shape != image_shape:
                if image.ndim == len(image_shape) - 1:
                    image = image[..., None]
                if image.shape != image_shape:
                    raise DataError(f"{where}: example {i} has image shape {image.shape}, "
                                    f"expected {image_shape}")
            images[i] = image
            labels[i] = int(example["label"])
    return ArrayDataset(images, labels)


def load_tfds(name: str, *, data_dir: str = "", download: bool = True, train_size: int = 0,
              test_size: int = 0) -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """Loads a prepared tfds dataset's train and test splits into memory (uint8 images).

    Args:
      name: a tfds name, e.g. one of ``TFDS_NAMES``.
      data_dir: tfds data directory ("" = tfds default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      download: if the dataset is not prepared, try to download and prepare it (needs internet and
        TensorFlow; see the module docstring). Checked before any download starts.
      train_size, test_size: read only the first that many examples (0 = all).

    Raises:
      DatasetUnavailableError: not prepared and cannot be prepared here; the message lists the ways out.
      ValueError: unknown name, a dataset without uint8 "image"/"label" features, sizes too large.
    """
    builder, train_src, test_src = _open_sources(name, data_dir, download)
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"tfds dataset {name!r} has features {list(features)}; robustjax needs an 'image' "
                        "and a 'label' feature (an image classification dataset)")
    image_feature, label_feature = features["image"], features["label"]
    image_shape = tuple(image_feature.shape)
    if any(d is None for d in image_shape) or np.dtype(image_feature.np_dtype) != np.uint8:
        raise DataError(f"tfds dataset {name!r} has images of shape {image_shape} and dtype "
                        f"{image_feature.np_dtype}; robustjax reads fixed-size uint8 images only")
    num_classes = int(getattr(label_feature, "num_classes", 0) or 0)
    if num_classes <= 0:
        raise DataError(f"tfds dataset {name!r}: its 'label' feature is not a ClassLabel with a known "
                        "number of classes")
    splits = []
    for split, source, size in (("train", train_src, train_size), ("test", test_src, test_size)):
        available = len(source)
        if size < 0 or size > available:
            raise ConfigError(f"tfds {name} {split}_size={size}, but the split has {available} examples; "
                              f"use 0 for all or a value <= {available}")
        splits.append(_read_split(source, size or available, image_shape, f"tfds {name}:{split}"))
    train, test = splits
    info = DataInfo(name=name, image_shape=image_shape, num_classes=num_classes, num_train=len(train),
                    num_test=len(test), source="tfds")
    return train, test, info
