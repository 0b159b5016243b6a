"""Datasets as in-memory arrays, and the batch streams the training loop and evaluation consume.

    train, test, info = data.load(config.data)          # tfds | npz | digits | toy2d, validated
    batches = data.prefetch(data.train_batches(train, 128, seed=0, start_step=step))
    for batch in data.eval_batches(test, 256): ...       # padded last batch + "mask"

Every batch is ``{"image": float32 [B, H, W, C] in [0, 1], "label": int32 [B]}`` (toy data: ``[B, 2]``);
evaluation batches add ``"mask": bool [B]``. Sources:

- ``tfds``: mnist, fashion_mnist, cifar10, cifar100, svhn_cropped (any tfds image classification set),
  read with ``tfds.data_source`` without TensorFlow. Preparing a missing dataset needs internet and
  TensorFlow; offline it fails at once with ``DatasetUnavailableError`` naming the ways out.
- ``npz``: a local file with ``x_train/y_train/x_test/y_test`` (the offline route).
- ``idx``: a local folder with the four MNIST-format IDX files (Fashion-MNIST from Debian's
  ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``).
- ``digits``: scikit-learn's bundled 8x8 digits resized to ``image_size`` (default 16): no download.
- ``toy2d``: two Gaussians, concentric circles, two half-moons in [0, 1]^2.
- ``synthetic``: stand-in images with the shape and classes of a named dataset (smoke runs, offline).

Differences from a tf.data pipeline, on purpose: the datasets here fit in host memory, so a split is one
uint8 array and the training stream is a pure function of ``(seed, step)`` - seeking for a resumed run
is O(1) in the number of steps already taken, with no iterator state to checkpoint.
"""

from robustjax.data.batching import (epoch_permutation, eval_batches, prefetch, process_rows,
                                     steps_per_epoch, train_batches)
from robustjax.data.core import ArrayDataset, DataInfo, DatasetUnavailableError, validate
from robustjax.data.idx import load_idx
from robustjax.data.loader import DEFAULTS, SOURCES, infer_source, load
from robustjax.data.sources import TOY2D_NAMES, load_digits, load_npz, load_toy2d
from robustjax.data.synthetic import load_synthetic
from robustjax.data.tfds_source import TFDS_NAMES, load_tfds

__all__ = [
    "ArrayDataset", "DataInfo", "DatasetUnavailableError", "DEFAULTS", "SOURCES", "TFDS_NAMES",
    "TOY2D_NAMES", "epoch_permutation", "eval_batches", "infer_source", "load", "load_digits", "load_idx",
    "load_npz", "load_synthetic", "load_tfds", "load_toy2d", "prefetch", "process_rows", "steps_per_epoch",
    "train_batches", "validate",
]
