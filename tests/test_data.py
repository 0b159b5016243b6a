"""Tests for robustjax.data: every source, the batch streams, prefetch and validation."""

from __future__ import annotations

import io
import os
import threading
import time

import ml_collections
import numpy as np
import pytest

from robustjax import data, errors


def _indexed(n: int, shape=(4, 4, 1)) -> data.ArrayDataset:
    """A dataset whose label is the example's index, so batches can be traced back to examples."""
    images = (np.arange(n)[:, None] % 256).astype(np.uint8) * np.ones((1, int(np.prod(shape))), np.uint8)
    return data.ArrayDataset(images.reshape((n,) + shape), np.arange(n, dtype=np.int32))


def _take(iterator, k):
    return [next(iterator) for _ in range(k)]


# ------------------------------------------------------------------------------------------- npz


def test_npz_mnist_subset_matches_the_file_and_is_cheap(mnist_npz):
    t0 = time.perf_counter()
    train, test, info = data.load({"source": "npz", "path": mnist_npz, "train_size": 300, "test_size": 200})
    elapsed = time.perf_counter() - t0
    assert info == data.DataInfo(name="mnist", image_shape=(28, 28, 1), num_classes=10, num_train=300,
                                 num_test=200, source="npz")
    assert train.images.dtype == np.uint8 and train.images.shape == (300, 28, 28, 1)
    assert elapsed < 1.0, f"a 300-image subset took {elapsed:.2f}s: it should not decode the whole file"
    with np.load(mnist_npz) as z:
        np.testing.assert_array_equal(test.images, z["x_test"][:200])
        np.testing.assert_array_equal(test.labels, z["y_test"][:200].astype(np.int32))
    batch = train.get(np.array([0, 5, 7]))
    assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
    np.testing.assert_allclose(batch["image"], train.images[[0, 5, 7]] / 255.0, rtol=1e-6)
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_npz_mnist_full_load_with_configdict(mnist_npz):
    cfg = ml_collections.ConfigDict(dict(name="mnist", source="npz", path=mnist_npz, train_size=0,
                                         test_size=0, num_classes=0))
    train, test, info = data.load(cfg)
    assert (info.num_train, info.num_test, info.num_classes) == (60000, 10000, 10)
    assert train.images.dtype == np.uint8  # kept compact: 47 MB, not 188 MB of float32
    assert np.bincount(test.labels).tolist()[:2] == [980, 1135]  # official MNIST test class counts


def _write_npz(path, **arrays):
    np.savez_compressed(path, **arrays)
    return str(path)


def test_npz_grayscale_float_images_and_column_labels(tmp_path):
    rng = np.random.default_rng(0)
    path = _write_npz(tmp_path / "toy.npz", x_train=rng.random((10, 5, 6), dtype=np.float32),
                      y_train=np.arange(10)[:, None] % 3, x_test=rng.random((4, 5, 6)),
                      y_test=np.array([0, 1, 2, 1]))
    train, test, info = data.load({"source": "npz", "path": path})
    assert info.image_shape == (5, 6, 1) and info.num_classes == 3 and info.name == "toy"
    assert train.images.dtype == np.float32 and test.images.shape == (4, 5, 6, 1)
    np.testing.assert_array_equal(train.labels, np.arange(10) % 3)
    _, _, info = data.load({"source": "npz", "path": path, "num_classes": 7})
    assert info.num_classes == 7


def test_npz_errors(tmp_path):
    missing = str(tmp_path / "nope.npz")
    with pytest.raises(data.DatasetUnavailableError, match="nope.npz"):
        data.load({"source": "npz", "path": missing})
    path = _write_npz(tmp_path / "partial.npz", x_train=np.zeros((3, 2, 2, 1), np.uint8), y_train=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks \['x_test', 'y_test'\]"):
        data.load({"source": "npz", "path": path})
    path = _write_npz(tmp_path / "small.npz", x_train=np.zeros((3, 2, 2, 1), np.uint8), y_train=np.zeros(3),
                      x_test=np.zeros((2, 2, 2, 1), np.uint8), y_test=np.zeros(2))
    with pytest.raises(ValueError, match="asked for 5 examples but only 3 exist"):
        data.load({"source": "npz", "path": path, "train_size": 5})


def test_npz_nan_pixels_and_bad_labels_are_rejected_at_load(tmp_path):
    x = np.full((6, 2, 2, 1), 0.5, np.float32)
    x[4, 0, 1, 0] = np.nan
    path = _write_npz(tmp_path / "nan.npz", x_train=x, y_train=np.zeros(6, np.int64),
                      x_test=x[:2], y_test=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"nan:train: example 4 has NaN or inf pixels"):
        data.load({"source": "npz", "path": path})
    path = _write_npz(tmp_path / "labels.npz", x_train=np.zeros((6, 2, 2, 1), np.uint8),
                      y_train=np.array([0, 1, 2, 3, 4, 5]), x_test=np.zeros((2, 2, 2, 1), np.uint8),
                      y_test=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels:train: example 3 has label 3, outside \[0, 3\)"):
        data.load({"source": "npz", "path": path, "num_classes": 3})


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (5, 3, 32, 32)])
def test_npz_channels_first_is_named_with_the_transpose(tmp_path, shape):
    x = np.zeros(shape, np.uint8)
    path = _write_npz(tmp_path / "nchw.npz", x_train=x, y_train=np.zeros(5, np.int64), x_test=x[:2],
                      y_test=np.zeros(2, np.int64))
    n, c, h, w = shape
    with pytest.raises(errors.DataError, match=(rf"x_train has shape \({n}, {c}, {h}, {w}\), which is channels-first "
                                                rf"\(NCHW.*store x_train\.transpose\(0, 2, 3, 1\) "
                                                rf"\(shape \({n}, {h}, {w}, {c}\)\)")):
        data.load({"source": "npz", "path": path})
    fixed = _write_npz(tmp_path / "nhwc.npz", x_train=x.transpose(0, 2, 3, 1), y_train=np.zeros(5, np.int64),
                       x_test=x[:2].transpose(0, 2, 3, 1), y_test=np.zeros(2, np.int64))
    assert data.load({"source": "npz", "path": fixed})[2].image_shape == (h, w, c)


def test_data_errors_are_user_errors_and_keep_their_old_types(tmp_path):
    with pytest.raises(errors.UserError) as info:
        data.load({"source": "npz", "path": str(tmp_path / "nope.npz")})
    assert isinstance(info.value, data.DatasetUnavailableError) and isinstance(info.value, RuntimeError)
    with pytest.raises(errors.ConfigError, match="config.data.source='nope'"):
        data.load({"source": "nope"})
    x = np.full((4, 2, 2, 1), 2.0, np.float32)  # float pixels outside [0, 1]
    path = _write_npz(tmp_path / "range.npz", x_train=x, y_train=np.zeros(4), x_test=x, y_test=np.zeros(4))
    with pytest.raises(errors.DataError, match="outside bounds"):
        data.load({"source": "npz", "path": path})


# ----------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits16():
    return data.load({"name": "digits", "source": "digits", "image_size": 16})


def test_digits_default(digits16):
    train, test, info = digits16
    assert info == data.DataInfo(name="digits", image_shape=(16, 16, 1), num_classes=10, num_train=1497,
                                 num_test=300, source="digits")
    assert train.images.dtype == np.float32
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0 and train.images.max() > 0.9
    assert set(np.unique(test.labels)) == set(range(10))


def test_digits_split_is_fixed_disjoint_and_matches_sklearn(digits16):
    from sklearn.datasets import load_digits

    raw = load_digits()
    train8, test8, _ = data.load({"name": "digits", "image_size": 8, "seed": 123})
    flat = raw.images.reshape(len(raw.images), -1) / 16.0
    # image_size 8 keeps the original pixels: every example must be one of sklearn's, with its label.
    lookup = {row.tobytes(): i for i, row in enumerate(flat.astype(np.float32))}
    idx = [lookup[x.reshape(-1).tobytes()] for x in np.concatenate([train8.images, test8.images])]
    assert len(set(idx)) == 1797  # disjoint and complete
    np.testing.assert_array_equal(np.concatenate([train8.labels, test8.labels]), raw.target[idx])
    # The resized split uses the same examples in the same order (the split ignores the run seed).
    np.testing.assert_array_equal(digits16[0].labels, train8.labels)
    # Bilinear resizing preserves the mean brightness of each image (to within the border effects).
    np.testing.assert_allclose(digits16[1].images.mean(axis=(1, 2, 3)), test8.images.mean(axis=(1, 2, 3)),
                               atol=0.03)


def test_digits_subset_and_bad_size():
    train, test, info = data.load({"name": "digits", "image_size": 8, "train_size": 100, "test_size": 50})
    assert (len(train), len(test), info.num_train, info.num_test) == (100, 50, 100, 50)
    with pytest.raises(ValueError, match="image_size"):
        data.load({"name": "digits", "image_size": 0})


# ------------------------------------------------------------------------------------------ toy2d


@pytest.mark.parametrize("name", ["two_gaussians", "circles", "moons"])
def test_toy2d(name):
    cfg = {"name": name, "source": "toy2d", "num_points": 400, "noise": 0.1, "seed": 3}
    train, test, info = data.load(cfg)
    assert info == data.DataInfo(name=name, image_shape=(2,), num_classes=2, num_train=400, num_test=100,
                                 source="toy2d")
    assert train.images.dtype == np.float32 and train.images.shape == (400, 2)
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0
    assert np.bincount(train.labels).tolist() == [200, 200]
    assert not np.array_equal(train.images[:100], test.images)  # independent draws
    again, _, _ = data.load(cfg)
    np.testing.assert_array_equal(train.images, again.images)
    other, _, _ = data.load({**cfg, "seed": 4})
    assert not np.array_equal(train.images, other.images)
    sized, sized_test, _ = data.load({**cfg, "train_size": 50, "test_size": 30})
    assert (len(sized), len(sized_test)) == (50, 30)
    # The classes are the shapes they should be: a 1-nearest-neighbour rule learns them almost perfectly.
    d = ((test.images[:, None, :] - train.images[None, :, :]) ** 2).sum(-1)
    assert (train.labels[d.argmin(1)] == test.labels).mean() > 0.9


def test_toy2d_geometry_without_noise():
    train, _, _ = data.load({"name": "circles", "num_points": 200, "noise": 0.0})
    centre = train.images.mean(0)
    radius = np.linalg.norm(train.images - centre, axis=1)
    outer, inner = radius[train.labels == 0], radius[train.labels == 1]
    np.testing.assert_allclose(inner.mean() / outer.mean(), 0.5, rtol=1e-4)
    assert outer.std() < 1e-5 and inner.std() < 1e-5
    gauss, _, _ = data.load({"name": "two_gaussians", "num_points": 10, "noise": 0.0})
    assert len(np.unique(gauss.images, axis=0)) == 2  # all points on the two means


# ------------------------------------------------------------------------------------------- tfds


@pytest.mark.parametrize("name,shape,classes", [("mnist", (28, 28, 1), 10), ("svhn_cropped", (32, 32, 3), 10),
                                                 ("cifar100", (32, 32, 3), 100)])
def test_tfds_mock(name, shape, classes, tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
        train, test, info = data.load({"name": name, "source": "tfds", "data_dir": str(tmp_path),
                                       "download": False, "test_size": 10})
    assert info == data.DataInfo(name=name, image_shape=shape, num_classes=classes, num_train=24,
                                 num_test=10, source="tfds")
    assert train.images.dtype == np.uint8 and train.images.shape == (24,) + shape
    assert train.labels.dtype == np.int32 and 0 <= train.labels.min() and train.labels.max() < classes
    batch = next(data.eval_batches(test, 8))
    assert batch["image"].dtype == np.float32 and batch["image"].shape == (8,) + shape
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_tfds_reads_real_array_record_files_without_tensorflow(tmp_path):
    """A tiny dataset really prepared on disk (PNG bytes need no TensorFlow), read back exactly."""
    import tensorflow_datasets as tfds
    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = {"train": rng.integers(0, 256, (12, 6, 5, 1), dtype=np.uint8),
                "test": rng.integers(0, 256, (5, 6, 5, 1), dtype=np.uint8)}
    labels = {"train": rng.integers(0, 4, 12), "test": rng.integers(0, 4, 5)}

    class RobustjaxTinyPng(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        # No download checksums. (Looking them up beside the builder's code imports importlib_resources,
        # which tfds 4.9.10 uses on the prepare path but does not install on Python >= 3.9.)
        url_infos = None

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(6, 5, 1)),
                "label": tfds.features.ClassLabel(num_classes=4)}))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in ("train", "test")}

        def _generate_examples(self, split):
            for i, (x, y) in enumerate(zip(pictures[split], labels[split])):
                buffer = io.BytesIO()
                Image.fromarray(x[..., 0]).save(buffer, format="png")
                yield i, {"image": buffer.getvalue(), "label": int(y)}

    RobustjaxTinyPng(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    train, test, info = data.load({"name": "robustjax_tiny_png", "source": "tfds", "data_dir": str(tmp_path),
                                   "download": False})
    assert (info.image_shape, info.num_classes, info.num_train, info.num_test) == ((6, 5, 1), 4, 12, 5)
    # Prepared splits are shuffled by tfds; compare as sets of (image, label) pairs.
    def pairs(images, ys):
        return sorted((x.tobytes(), int(y)) for x, y in zip(images, ys))
    assert pairs(train.images, train.labels) == pairs(pictures["train"], labels["train"])
    assert pairs(test.images, test.labels) == pairs(pictures["test"], labels["test"])


def _assert_ways_out(message: str, name: str, data_dir: str):
    for part in (repr(name), data_dir, f"tfds build {name}", "--config.data.source=npz",
                 "--config.data.path="):
        assert part in message, f"{part!r} missing from: {message}"


def test_tfds_unavailable_fails_fast_without_download(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load({"name": "svhn_cropped", "source": "tfds", "data_dir": str(tmp_path), "download": False})
    assert time.perf_counter() - t0 < 5.0
    assert "download is False" in str(err.value)
    _assert_ways_out(str(err.value), "svhn_cropped", str(tmp_path))


def test_tfds_unavailable_with_download_but_no_tensorflow_fails_before_downloading(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from robustjax.data import tfds_source

    monkeypatch.setattr(tfds_source, "_tensorflow_installed", lambda: False)
    monkeypatch.setattr(tfds, "data_source", lambda *a, **k: pytest.fail("must not try to download"))
    t0 = time.perf_counter()
    with pytest.raises(data.DatasetUnavailableError, match="TensorFlow is not installed") as err:
        data.load({"name": "mnist", "source": "tfds", "data_dir": str(tmp_path), "download": True})
    assert time.perf_counter() - t0 < 5.0
    _assert_ways_out(str(err.value), "mnist", str(tmp_path))


def test_tfds_failed_prepare_becomes_unavailable(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from robustjax.data import tfds_source

    def offline(*args, **kwargs):
        raise ConnectionError("Could not resolve host: storage.googleapis.com")

    monkeypatch.setattr(tfds_source, "_tensorflow_installed", lambda: True)
    monkeypatch.setattr(tfds, "data_source", offline)
    with pytest.raises(data.DatasetUnavailableError, match="preparing it failed .ConnectionError") as err:
        data.load({"name": "cifar10", "source": "tfds", "data_dir": str(tmp_path)})
    _assert_ways_out(str(err.value), "cifar10", str(tmp_path))


# ------------------------------------------------------------------------------------ names/sources


def test_unknown_source_and_names_list_the_choices():
    with pytest.raises(ValueError, match=r"valid sources: \['tfds', 'npz', 'idx', 'digits', 'toy2d', 'synthetic'\]"):
        data.load({"name": "mnist", "source": "hdf5"})
    with pytest.raises(ValueError, match=r"valid names: \['two_gaussians', 'circles', 'moons'\]"):
        data.load({"name": "spirals", "source": "toy2d"})
    with pytest.raises(ValueError, match=r"'mnist', 'fashion_mnist', 'cifar10', 'cifar100', 'svhn_cropped'"):
        data.load({"name": "mnits", "source": "tfds"})
    with pytest.raises(ValueError, match="valid name: 'digits'"):
        data.load({"name": "mnist", "source": "digits"})
    with pytest.raises(ValueError, match=r"use source='toy2d'"):
        data.load({"name": "moons", "source": "tfds"})
    with pytest.raises(ValueError, match="train_size must be an integer >= 0"):
        data.load({"name": "digits", "train_size": -1})


def test_source_is_inferred_from_the_name():
    _, _, info = data.load({"name": "moons", "num_points": 20})
    assert info.source == "toy2d"
    _, _, info = data.load({"image_size": 8, "train_size": 10, "test_size": 10})
    assert (info.name, info.source) == ("digits", "digits")


# ---------------------------------------------------------------------------------------- batching


def test_train_batches_shapes_determinism_and_epochs():
    ds = _indexed(23)
    assert data.steps_per_epoch(ds, 5) == 4  # 3 examples dropped per epoch
    first = _take(data.train_batches(ds, 5, seed=7), 12)
    again = _take(data.train_batches(ds, 5, seed=7), 12)
    other = _take(data.train_batches(ds, 5, seed=8), 12)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_array_equal(a["image"], b["image"])
    assert any(not np.array_equal(a["label"], b["label"]) for a, b in zip(first, other))
    assert all(b["image"].shape == (5, 4, 4, 1) and b["image"].dtype == np.float32 for b in first)
    assert all(b["label"].dtype == np.int32 and set(b) == {"image", "label"} for b in first)
    # Images travel with their labels.
    np.testing.assert_allclose(first[0]["image"][:, 0, 0, 0], first[0]["label"] / 255.0, rtol=1e-6)
    epochs = [np.concatenate([b["label"] for b in first[e * 4:(e + 1) * 4]]) for e in range(3)]
    for e, seen in enumerate(epochs):
        assert len(set(seen.tolist())) == 20  # no example twice within an epoch
        np.testing.assert_array_equal(seen, data.epoch_permutation(23, 7, e)[:20])
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch


@pytest.mark.parametrize("k", [1, 3, 4, 5, 9, 13])
def test_train_batches_resume_equals_tail_of_the_stream(k):
    ds = _indexed(23)
    full = _take(data.train_batches(ds, 5, seed=1), k + 6)
    resumed = _take(data.train_batches(ds, 5, seed=1, start_step=k), 6)
    for a, b in zip(full[k:], resumed):
        np.testing.assert_array_equal(a["label"], b["label"])


def test_train_batches_seek_is_constant_time():
    ds = _indexed(1000)
    t0 = time.perf_counter()
    batch = next(data.train_batches(ds, 10, seed=0, start_step=10**12 + 3))
    assert time.perf_counter() - t0 < 0.5
    epoch, offset = divmod(10**12 + 3, 100)
    np.testing.assert_array_equal(batch["label"], data.epoch_permutation(1000, 0, epoch)[offset * 10:][:10])


@pytest.mark.parametrize("start_step", [0, 3, 9])  # from the start; mid epoch 0; after a seek into epoch 2
@pytest.mark.parametrize("process_count", [2, 4])
def test_each_process_reads_its_rows_and_together_they_are_the_global_batch(process_count, start_step):
    ds = _indexed(23)
    steps = 7  # crosses epoch boundaries (4 steps per epoch)
    whole = _take(data.train_batches(ds, 8, seed=5, start_step=start_step), steps)
    parts = [_take(data.train_batches(ds, 8, seed=5, start_step=start_step, process_index=i,
                                      process_count=process_count), steps) for i in range(process_count)]
    for s in range(steps):
        local = [p[s] for p in parts]
        assert all(b["label"].shape == (8 // process_count,) for b in local)
        assert all(b["image"].shape == (8 // process_count, 4, 4, 1) for b in local)
        # In process order, the local rows are the global batch (images travel with their labels).
        np.testing.assert_array_equal(np.concatenate([b["label"] for b in local]), whole[s]["label"])
        np.testing.assert_array_equal(np.concatenate([b["image"] for b in local]), whole[s]["image"])
    # A process's stream does not depend on where it was started: the resume position is the step.
    tail = _take(data.train_batches(ds, 8, seed=5, start_step=start_step + 2, process_index=1,
                                    process_count=process_count), steps - 2)
    for a, b in zip(parts[1][2:], tail):
        np.testing.assert_array_equal(a["label"], b["label"])


def test_a_process_gathers_only_its_own_rows():
    ds = _indexed(40)
    requested = []

    class Spy(data.ArrayDataset):
        def get(self, idx):
            requested.append(np.asarray(idx))
            return super().get(idx)

    spy = Spy(ds.images, ds.labels)
    _take(data.train_batches(spy, 8, seed=0, process_index=3, process_count=4), 3)
    assert [len(r) for r in requested] == [2, 2, 2]
    assert data.process_rows(8, 3, 4) == slice(6, 8)


def test_process_sharding_errors():
    ds = _indexed(23)
    with pytest.raises(ValueError, match="batch_size 6 does not split evenly over 4 processes"):
        next(data.train_batches(ds, 6, seed=0, process_index=0, process_count=4))
    with pytest.raises(ValueError, match=r"process_index must lie in \[0, process_count\), got 2 of 2"):
        next(data.train_batches(ds, 4, seed=0, process_index=2, process_count=2))


def test_batching_errors():
    ds = _indexed(4)
    with pytest.raises(ValueError, match="larger than the training set"):
        next(data.train_batches(ds, 5, seed=0))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(data.eval_batches(ds, 0))
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        next(data.train_batches(ds, 2, seed=-1))


@pytest.mark.parametrize("n,batch_size", [(23, 5), (20, 5), (3, 8), (0, 4)])
def test_eval_batches_cover_every_example_once_with_mask(n, batch_size):
    ds = _indexed(n)
    batches = list(data.eval_batches(ds, batch_size))
    assert len(batches) == -(-n // batch_size)
    assert all(set(b) == {"image", "label", "mask"} for b in batches)
    assert all(b["image"].shape == (batch_size, 4, 4, 1) and b["mask"].dtype == np.bool_ for b in batches)
    seen = np.concatenate([b["label"][b["mask"]] for b in batches]) if batches else np.zeros(0)
    np.testing.assert_array_equal(seen, np.arange(n))  # in order, each exactly once
    if n % batch_size:
        last = batches[-1]
        assert last["mask"].sum() == n % batch_size and not last["mask"][n % batch_size:].any()
        assert (last["image"][~last["mask"]] == 0).all()


# ---------------------------------------------------------------------------------------- prefetch


def test_prefetch_equals_the_plain_iterator_and_maps():
    ds = _indexed(30)
    plain = list(data.eval_batches(ds, 4))
    fetched = list(data.prefetch(data.eval_batches(ds, 4), size=3))
    assert len(fetched) == len(plain)
    for a, b in zip(plain, fetched):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert list(data.prefetch(range(5), map_fn=lambda x: 2 * x)) == [0, 2, 4, 6, 8]


def test_prefetch_propagates_exceptions_in_place():
    def broken():
        yield 1
        yield 2
        raise KeyError("bad record 3")

    it = data.prefetch(broken(), size=2)
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(KeyError, match="bad record 3"):
        next(it)
    with pytest.raises(ValueError, match="prefetch size"):
        data.prefetch(range(3), size=0)


def test_prefetch_stops_its_thread_when_closed():
    def alive():
        return [t for t in threading.enumerate() if t.name == "robustjax-prefetch" and t.is_alive()]

    before = len(alive())
    it = data.prefetch(data.train_batches(_indexed(10), 2, seed=0), size=2)  # infinite source
    next(it)
    it.close()
    assert len(alive()) == before
    with data.prefetch(iter(range(10**9))) as it:
        next(it)
    assert len(alive()) == before


# ---------------------------------------------------------------------------------------- validate


def test_validate_messages():
    info = data.DataInfo(name="x", image_shape=(2, 2, 1), num_classes=3, num_train=5, num_test=0)
    images = np.full((5, 2, 2, 1), 0.5, np.float32)
    data.validate(data.ArrayDataset(images, np.array([0, 1, 2, 0, 1])), info, "train")  # fine
    bad = images.copy()
    bad[3, 1, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"^train: example 3 has NaN or inf pixels.*np.nan_to_num"):
        data.validate(data.ArrayDataset(bad, np.zeros(5, np.int32)), info, "train")
    with pytest.raises(ValueError, match=r"^test: example 2 has label -1, outside \[0, 3\).*num_classes"):
        data.validate(data.ArrayDataset(images, np.array([0, 1, -1, 5, 0])), info, "test")
    too_bright = images.copy()
    too_bright[1] = 255.0
    with pytest.raises(ValueError, match=r"^train: example 1 has pixels in \[255, 255\].*divide 0..255"):
        data.validate(data.ArrayDataset(too_bright, np.zeros(5, np.int32)), info, "train")
    with pytest.raises(ValueError, match=r"shape \(2, 2\) but the dataset info says \(2, 2, 1\)"):
        data.validate(data.ArrayDataset(images[..., 0], np.zeros(5, np.int32)), info, "train")


def test_array_dataset_rejects_bad_arrays():
    with pytest.raises(ValueError, match="one-hot"):
        data.ArrayDataset(np.zeros((3, 2), np.float32), np.eye(3))
    with pytest.raises(ValueError, match="uint8 .0..255. or float32"):
        data.ArrayDataset(np.zeros((3, 2), np.float64), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="images \\(3, 2\\) and labels \\(4,\\)"):
        data.ArrayDataset(np.zeros((3, 2), np.float32), np.zeros(4, np.int32))
    ds = _indexed(10)
    assert len(ds.take(4)) == 4 and ds.take(0) is ds


# ------------------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("name, shape, classes", [("mnist", (28, 28, 1), 10), ("svhn_cropped", (32, 32, 3), 10),
                                                  ("cifar100", (32, 32, 3), 100)])
def test_synthetic_standin_has_the_datasets_shape_and_classes(name, shape, classes):
    train, test, info = data.load({"source": "synthetic", "name": name, "train_size": 200, "test_size": 120})
    assert info.image_shape == shape and info.num_classes == classes and info.source == "synthetic"
    assert info.name == f"{name}-standin"  # never mistaken for the real dataset in a report
    assert train.images.shape == (200,) + shape and train.images.dtype == np.uint8
    assert set(np.unique(test.labels)) <= set(range(classes)) and len(np.unique(train.labels)) == min(200, classes)
    again = data.load({"source": "synthetic", "name": name, "train_size": 200, "test_size": 120})[0]
    np.testing.assert_array_equal(train.images, again.images)


def test_synthetic_standin_classes_are_learnable_by_their_mean_pattern():
    train, test, _ = data.load({"source": "synthetic", "name": "mnist", "train_size": 500, "test_size": 200})
    x_tr = train.images.reshape(len(train), -1).astype(np.float32)
    means = np.stack([x_tr[train.labels == k].mean(0) for k in range(10)])
    x_te = test.images.reshape(len(test), -1).astype(np.float32)
    pred = np.argmin(((x_te[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == test.labels).mean() > 0.9


def test_synthetic_standin_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"no synthetic stand-in for dataset 'imagenet'.*mnist"):
        data.load({"source": "synthetic", "name": "imagenet"})


# ----------------------------------------------------------------------------------------------- idx


def _write_idx(path, array, *, gz=False, type_byte=0x08):
    import gzip
    import struct

    array = np.asarray(array, np.uint8)
    raw = bytes([0, 0, type_byte, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(raw)


def _idx_folder(tmp_path, n_train=7, n_test=5, gz=True, dotted=False):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 3)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 3)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    tmp_path.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        name = (stem.replace("-idx", ".idx") if dotted else stem) + (".gz" if gz else "")
        _write_idx(tmp_path / name, a, gz=gz)
    return arrays


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, True)])
def test_idx_folder_loads_as_written_gzipped_or_not(tmp_path, gz, dotted):
    arrays = _idx_folder(tmp_path / "my-set", gz=gz, dotted=dotted)
    train, test, info = data.load({"source": "idx", "path": str(tmp_path / "my-set"), "test_size": 3})
    np.testing.assert_array_equal(train.images[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(train.labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(test.images[..., 0], arrays["t10k-images-idx3-ubyte"][:3])
    np.testing.assert_array_equal(test.labels, arrays["t10k-labels-idx1-ubyte"][:3])
    assert train.images.dtype == np.uint8 and train.images.shape == (7, 4, 3, 1)
    assert (info.name, info.image_shape, info.num_classes, info.num_train, info.num_test, info.source) == (
        "my_set", (4, 3, 1), 10, 7, 3, "idx")


def test_idx_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="does not exist.*dataset-fashion-mnist"):
        data.load({"source": "idx", "path": str(tmp_path / "nowhere")})
    with pytest.raises(errors.ConfigError, match="source=idx needs a path"):
        data.load({"source": "idx", "path": ""})
    _idx_folder(tmp_path / "a")
    with pytest.raises(errors.ConfigError, match="asked for 8 examples but only 7 exist"):
        data.load({"source": "idx", "path": str(tmp_path / "a"), "train_size": 8})
    os.remove(tmp_path / "a" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(data.DatasetUnavailableError, match="has no t10k-labels-idx1-ubyte"):
        data.load({"source": "idx", "path": str(tmp_path / "a")})
    _idx_folder(tmp_path / "b", gz=False)  # labels in place of images: the dimension count says so
    (tmp_path / "b" / "train-images-idx3-ubyte").write_bytes((tmp_path / "b" / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(errors.DataError, match="has 1 dimensions, expected 3.*swapped"):
        data.load({"source": "idx", "path": str(tmp_path / "b")})
    _idx_folder(tmp_path / "c", gz=False)
    path = tmp_path / "c" / "train-images-idx3-ubyte"
    os.truncate(path, os.path.getsize(path) - 5)
    with pytest.raises(errors.DataError, match="truncated"):
        data.load({"source": "idx", "path": str(tmp_path / "c")})
    (tmp_path / "c" / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(errors.DataError, match="is not an IDX file"):
        data.load({"source": "idx", "path": str(tmp_path / "c")})
    _write_idx(tmp_path / "c" / "train-images-idx3-ubyte", np.zeros((7, 4, 3)), type_byte=0x0D)
    with pytest.raises(errors.DataError, match="not unsigned bytes"):
        data.load({"source": "idx", "path": str(tmp_path / "c")})
    _idx_folder(tmp_path / "d", n_train=7, gz=False)
    _write_idx(tmp_path / "d" / "train-labels-idx1-ubyte", np.zeros(6))
    with pytest.raises(errors.DataError, match="7 train images but 6 labels"):
        data.load({"source": "idx", "path": str(tmp_path / "d")})


def test_idx_source_needs_a_path_in_the_config():
    from robustjax.config import base_config, validate

    c = base_config()
    c.data.source, c.data.path = "idx", ""
    with pytest.raises(ValueError, match="data.path.*source=idx needs the folder"):
        validate(c)


def test_fashion_mnist_from_its_official_idx_files(fashion_mnist_dir):
    train, test, info = data.load({"source": "idx", "path": fashion_mnist_dir, "name": "fashion_mnist"})
    assert (len(train), len(test), info.image_shape, info.num_classes) == (60000, 10000, (28, 28, 1), 10)
    assert info.name == "fashion_mnist"
    # The official files: 6,000 / 1,000 examples per class, and the first training label is 9 (ankle boot).
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), [1000] * 10)
    assert train.labels[0] == 9 and test.labels[0] == 9
    assert 70 < train.images.mean() < 80  # Fashion-MNIST's pixel mean is ~72.9 (MNIST's ~33.3)
    small, _, _ = data.load({"source": "idx", "path": fashion_mnist_dir, "train_size": 100})
    np.testing.assert_array_equal(small.images, train.images[:100])
