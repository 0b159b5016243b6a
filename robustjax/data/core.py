"""The in-memory dataset, its description, and the checks every loaded split goes through.

    train, test, info = data.load(config.data)
    batch = train.get(np.arange(8))          # {"image": float32 [8, H, W, C] in [0, 1], "label": int32 [8]}
    data.validate(train, info, "train")      # ValueError naming the split, the first bad index and the fix

Images stay in their source dtype (uint8 for the real datasets: 4x less memory than float32, and a
60000-image set is never converted as a whole); ``ArrayDataset.get`` turns a batch into float32 in [0, 1].
"""

from __future__ import annotations

import dataclasses

import numpy as np

from robustjax.errors import DataError, UserError

# Validation scans float images in chunks of this many examples (bounded temporary memory).
_CHUNK = 4096


class DatasetUnavailableError(UserError, RuntimeError):
    """A dataset cannot be loaded here (not prepared, no network, missing file).

    The message names the dataset, where it was looked for, and the ways out. A ``UserError`` (so
    ``main.py`` prints it as one line) and still a ``RuntimeError``, as it always was.
    """


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model and an attack need to know about a dataset.

    Attributes:
      name: dataset name (``"mnist"``, ``"digits"``, ``"moons"``, or the npz file's name).
      image_shape: shape of one example: ``(H, W, C)`` for images, ``(2,)`` for the 2-D toy sets.
      num_classes: labels lie in ``[0, num_classes)``.
      num_train: examples in the (possibly subsetted) training split.
      num_test: examples in the (possibly subsetted) test split.
      bounds: the input box; every pixel of ``ArrayDataset.get`` lies inside it.
      source: the loader that produced it (``"tfds"``, ``"npz"``, ``"idx"``, ``"digits"``, ``"toy2d"``).
    """

    name: str
    image_shape: tuple[int, ...]
    num_classes: int
    num_train: int
    num_test: int
    bounds: tuple[float, float] = (0.0, 1.0)
    source: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A split held in memory: ``images [N, ...]`` (uint8 in [0, 255] or float32 in [0, 1]) and labels.

    ``eq=False``: two datasets compare by identity (comparing arrays elementwise is never what ``==``
    on a dataset should mean).

    Attributes:
      images: ``[N, H, W, C]`` (or ``[N, 2]`` for toy data); uint8 (scaled by 1/255 in ``get``) or float32.
      labels: int32 ``[N]``.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        if images.dtype != np.uint8 and images.dtype != np.float32:
            raise ValueError(
                f"ArrayDataset images must be uint8 (0..255) or float32 (in [0, 1]), got {images.dtype}; "
                "convert them first, e.g. images.astype(np.float32) / 255 for 0..255 values")
        if labels.ndim != 1:
            raise ValueError(f"ArrayDataset labels must be 1-D [N], got shape {labels.shape}; "
                             "pass class indices, not one-hot vectors (labels.argmax(-1))")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"ArrayDataset labels must be integers, got dtype {labels.dtype}")
        if images.ndim < 2 or len(images) != len(labels):
            raise ValueError(f"ArrayDataset needs images [N, ...] and labels [N]; got images {images.shape} "
                             f"and labels {labels.shape}")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int32, copy=False))

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Gathers examples ``idx`` as a batch.

        Args:
          idx: integer indices ``[n]`` (or a slice).

        Returns:
          ``{"image": float32 [n, ...] in [0, 1], "label": int32 [n]}`` (fresh arrays).
        """
        images = self.images[idx]
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / np.float32(255.0)
        else:
            images = np.array(images, dtype=np.float32, copy=True)
        return {"image": images, "label": np.array(self.labels[idx], dtype=np.int32, copy=True)}

    def take(self, n: int) -> "ArrayDataset":
        """The first ``n`` examples (all of them if ``n`` is 0 or at least ``len(self)``); no copy."""
        if n < 0:
            raise ValueError(f"take(n) needs n >= 0 (0 = everything), got {n}")
        if n == 0 or n >= len(self):
            return self
        return ArrayDataset(self.images[:n], self.labels[:n])

    @property
    def element_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(28, 28, 1)``."""
        return tuple(self.images.shape[1:])


def validate(ds: ArrayDataset, info: DataInfo, where: str) -> None:
    """Rejects a split that a model or an attack would silently misuse.

    Checks: example shape equals ``info.image_shape``; no NaN/inf pixels; every pixel (after the [0, 1]
    scaling of ``get``) inside ``info.bounds``; labels in ``[0, info.num_classes)``.

    Args:
      ds: the split.
      info: what the split should look like.
      where: the split's name for the message (``"train"``, ``"test"``, ``"mnist.npz:test"``...).

    Raises:
      DataError: (a ``ValueError``) naming ``where``, the first bad example index, and how to fix it.
    """
    if ds.element_shape != tuple(info.image_shape):
        raise DataError(
            f"{where}: examples have shape {ds.element_shape} but the dataset info says "
            f"{tuple(info.image_shape)}; images must be [N, H, W, C] (add a channel axis to grayscale "
            "images: x[..., None]) and both splits must share one shape")
    lo, hi = info.bounds
    if ds.images.dtype == np.uint8:
        if lo > 0.0 or hi < 1.0:  # uint8 images map onto [0, 1] exactly
            raise DataError(f"{where}: uint8 images span [0, 1] after scaling, outside bounds {info.bounds}; "
                            "use bounds (0.0, 1.0) for uint8 sources")
    else:
        for start in range(0, len(ds), _CHUNK):
            chunk = ds.images[start:start + _CHUNK].reshape(min(_CHUNK, len(ds) - start), -1)
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                i = start + int(np.flatnonzero(~finite)[0])
                raise DataError(
                    f"{where}: example {i} has NaN or inf pixels ({int((~finite).sum())} such examples in "
                    f"rows {start}..{start + len(chunk) - 1}); clean or drop them before training (e.g. "
                    "np.nan_to_num, or keep only np.isfinite(x).all(axis=(1, 2, 3)))")
            inside = ((chunk >= lo) & (chunk <= hi)).all(axis=1)
            if not inside.all():
                i = start + int(np.flatnonzero(~inside)[0])
                raise DataError(
                    f"{where}: example {i} has pixels in [{chunk[i - start].min():g}, "
                    f"{chunk[i - start].max():g}], outside bounds {info.bounds}; float images must already be "
                    "scaled into [0, 1] (divide 0..255 values by 255, or store them as uint8)")
    labels = ds.labels
    bad = (labels < 0) | (labels >= info.num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: example {i} has label {int(labels[i])}, outside [0, {info.num_classes}) "
            f"({int(bad.sum())} bad labels in all); labels must be class indices 0..num_classes-1 "
            "(for an npz file, set config.data.num_classes to the true number of classes, or remap labels)")
