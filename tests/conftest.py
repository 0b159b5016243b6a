"""Test-suite settings: small, fast compiles on CPU, and where the real datasets are.

XLA's optimisation passes dominate the cost of the tiny programs these tests compile, and the speed of
the compiled code does not matter here, so most optimisations are switched off for the whole suite.

Real data. A few tests run on real MNIST / CIFAR-10 files (``mnist.npz``, ``cifar10_subset.npz``: numpy
archives with ``x_train, y_train, x_test, y_test``, uint8 NHWC images). They find them in ONE directory:
``$ROBUSTJAX_TEST_DATA``, or else ``../shared/data`` beside the repository when that exists (the
developers' layout). Without it those tests skip and say what to set. ``ROBUSTJAX_REQUIRE_TEST_DATA=1``
turns the skips into failures: CI sets it, so CI always runs them.

Fashion-MNIST is not in that directory: its official IDX files come from Debian's ``dataset-fashion-mnist``
package (``/usr/share/datasets/fashion-mnist``), or from ``$ROBUSTJAX_TEST_DATA/fashion-mnist``. The few
tests that read it skip without it, also under ``ROBUSTJAX_REQUIRE_TEST_DATA`` (a system package a test
machine may not be allowed to install); ``.ci/run`` installs the package when it can.
"""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)

DATA_ENV = "ROBUSTJAX_TEST_DATA"
REQUIRE_ENV = "ROBUSTJAX_REQUIRE_TEST_DATA"
_BESIDE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def test_data_dir() -> str | None:
    """The directory holding the real datasets, or None."""
    path = os.environ.get(DATA_ENV, "")
    if path:
        return os.path.abspath(os.path.expanduser(path))
    return _BESIDE if os.path.isdir(_BESIDE) else None


test_data_dir.__test__ = False  # a helper, not a test


def real_data(filename: str) -> str:
    """The path of a real dataset file, or skip (fail under ROBUSTJAX_REQUIRE_TEST_DATA=1) saying why."""
    directory = test_data_dir()
    path = os.path.join(directory, filename) if directory else None
    if path and os.path.isfile(path):
        return path
    where = (f"{path} does not exist" if path else
             f"{DATA_ENV} is not set and there is no ../shared/data beside the repository")
    reason = (f"needs the real dataset {filename}: {where}; set {DATA_ENV}=/dir/holding/{filename} "
              "(an npz with x_train, y_train, x_test, y_test) to run it")
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV} is set but a real-data test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> str:
    """The folder of Fashion-MNIST's official IDX files, or skip saying how to get them."""
    from robustjax.data import idx

    candidates = [os.path.join(d, "fashion-mnist") for d in [test_data_dir()] if d] + [FASHION_MNIST_SYSTEM_DIR]
    for directory in candidates:
        if os.path.isdir(directory) and idx.find_file(directory, "t10k-labels-idx1-ubyte"):
            return directory
    pytest.skip(f"needs Fashion-MNIST's IDX files in one of {candidates}: `apt-get install dataset-fashion-mnist` "
                f"(Debian) or copy the four files to ${DATA_ENV}/fashion-mnist")


@pytest.fixture(scope="session")
def mnist_npz() -> str:
    return real_data("mnist.npz")


@pytest.fixture(scope="session")
def cifar_npz() -> str:
    return real_data("cifar10_subset.npz")
