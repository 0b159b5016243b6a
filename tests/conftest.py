"""Test-suite settings: small, fast compiles on CPU.

XLA's optimisation passes dominate the cost of the tiny programs these tests compile, and the speed of
the compiled code does not matter here, so most optimisations are switched off for the whole suite.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
MNIST_NPZ = os.path.join(SHARED_DATA, "mnist.npz")
CIFAR_NPZ = os.path.join(SHARED_DATA, "cifar10_subset.npz")
