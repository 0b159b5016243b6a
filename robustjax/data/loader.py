"""``load(config.data)``: one entry point for every source, returning validated train/test splits.

    train, test, info = load(config.data)                       # an ml_collections.ConfigDict or a dict
    train, test, info = load({"name": "moons", "source": "toy2d", "num_points": 1000})
    train, test, info = load({"source": "npz", "path": "data/mnist.npz", "train_size": 1000})

Fields read from the config (all optional; defaults in ``DEFAULTS``):
  name         tfds name | "digits" | "two_gaussians" | "circles" | "moons" | any label for npz / idx
               (npz: "" = the file name; idx: "" = the folder's name)
  source       "tfds" | "npz" | "idx" (MNIST-format IDX files, e.g. Fashion-MNIST's) | "digits" | "toy2d" |
               "synthetic" (stand-in data shaped like ``name``,
               for smoke runs); "" = inferred from name (digits, toy names, else
               tfds; no name and no source = digits)
  path         npz file (source=npz); the folder of the four IDX files (source=idx)
  data_dir     tfds data_dir ("" = tfds default); download: tfds may try to prepare a missing dataset
  train_size, test_size   first N examples of each split (0 = all). toy2d: points per split
               (0 = num_points for train and num_points // 4 for test)
  image_size   digits: side of the resized images (default 16; 8 = the original pixels)
  num_classes  npz: number of classes (0 = max label + 1 over the loaded labels); idx: 0 = 10
  noise, num_points, seed   toy2d: noise std (raw units), default size, generator seed
"""

from __future__ import annotations

from typing import Any, Mapping

from robustjax.data import idx, sources, synthetic, tfds_source
from robustjax.data.core import ArrayDataset, DataInfo, validate
from robustjax.errors import ConfigError

SOURCES = ("tfds", "npz", "idx", "digits", "toy2d", "synthetic")

DEFAULTS: dict[str, Any] = dict(
    name="", source="", path="", data_dir="", download=True, train_size=0, test_size=0,
    image_size=sources.DIGITS_DEFAULT_IMAGE_SIZE, num_classes=0, noise=0.1, num_points=2000, seed=0,
)


def _field(cfg: Any, key: str) -> Any:
    value = cfg.get(key, None) if hasattr(cfg, "get") else getattr(cfg, key, None)
    return DEFAULTS[key] if value is None else value


def _int_field(cfg: Any, key: str, minimum: int = 0) -> int:
    value = _field(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"config.data.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def infer_source(name: str) -> str:
    """The source a bare dataset name implies: digits, toy2d for the toy names, tfds otherwise."""
    if name == "digits":
        return "digits"
    if name in sources.TOY2D_NAMES:
        return "toy2d"
    return "tfds"


def load(data_cfg: Mapping[str, Any] | Any, **overrides: Any) -> tuple[ArrayDataset, ArrayDataset, DataInfo]:
    """Loads, subsets and validates the train and test splits a config names.

    Args:
      data_cfg: ``config.data`` (an ``ml_collections.ConfigDict``) or any mapping with the fields listed
        in this module's docstring; missing fields take ``DEFAULTS``.
      **overrides: field values that take precedence over ``data_cfg`` (e.g. ``seed=config.seed``).

    Returns:
      ``(train, test, info)``: in-memory splits (``get`` yields float32 images in [0, 1] and int32
      labels) and their ``DataInfo``.

    Raises:
      ConfigError: unknown source or name (the message lists the valid ones), bad field values.
      DataError: data that fails ``validate`` (NaN pixels, labels out of range, ...) or a malformed file.
        Both are ``robustjax.errors.UserError``, a ``ValueError``.
      DatasetUnavailableError: a tfds dataset that is not prepared and cannot be prepared here, or a
        missing npz file; the message says how to get the data.
    """
    cfg = dict(overrides)
    for key in DEFAULTS:
        if key not in cfg:
            cfg[key] = _field(data_cfg, key)
    name, source = str(cfg["name"]), str(cfg["source"])
    if not source:  # nothing named at all: the embedded default
        name = name or "digits"
        source = infer_source(name)
    if source not in SOURCES:
        raise ConfigError(f"config.data.source={source!r} is not a data source; valid sources: {list(SOURCES)}")
    train_size, test_size = _int_field(cfg, "train_size"), _int_field(cfg, "test_size")

    if source == "npz":
        train, test, info = sources.load_npz(
            str(cfg["path"]), train_size=train_size, test_size=test_size,
            num_classes=_int_field(cfg, "num_classes"), name=name)
    elif source == "idx":
        train, test, info = idx.load_idx(
            str(cfg["path"]), train_size=train_size, test_size=test_size,
            num_classes=_int_field(cfg, "num_classes"), name=name)
    elif source == "digits":
        if name not in ("digits", ""):
            raise ConfigError(f"config.data.name={name!r} does not go with source='digits' (valid name: "
                              "'digits'); for other datasets use source 'tfds', 'npz' or 'toy2d'")
        train, test, info = sources.load_digits(
            image_size=_int_field(cfg, "image_size", minimum=1), train_size=train_size, test_size=test_size)
    elif source == "synthetic":
        train, test, info = synthetic.load_synthetic(name or "digits", train_size=train_size,
                                                     test_size=test_size, seed=_int_field(cfg, "seed"))
    elif source == "toy2d":
        if name not in sources.TOY2D_NAMES:
            raise ConfigError(f"config.data.name={name!r} is not a toy2d dataset; valid names: "
                              f"{list(sources.TOY2D_NAMES)}")
        num_points = _int_field(cfg, "num_points", minimum=2)
        noise = cfg["noise"]
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
            raise ConfigError(f"config.data.noise must be a number >= 0, got {noise!r}")
        train, test, info = sources.load_toy2d(
            name, num_train=train_size or num_points, num_test=test_size or max(num_points // 4, 2),
            noise=float(noise), seed=_int_field(cfg, "seed"))
    else:
        if not name or name in ("digits",) + sources.TOY2D_NAMES:
            hint = f"use source={infer_source(name)!r} for it, or " if name else "set "
            raise ConfigError(f"config.data.name={name!r} is not a tfds dataset; {hint}a tfds name such as "
                              f"{list(tfds_source.TFDS_NAMES)}")
        train, test, info = tfds_source.load_tfds(
            name, data_dir=str(cfg["data_dir"] or ""), download=bool(cfg["download"]),
            train_size=train_size, test_size=test_size)

    validate(train, info, f"{info.name}:train")
    validate(test, info, f"{info.name}:test")
    return train, test, info
