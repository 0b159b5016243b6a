"""Data parallelism with JAX's own sharding: one mesh axis "data" over every device (and host).

    mesh = make_mesh()                                  # all devices of all processes
    state = replicate(state, mesh)                      # parameters and optimizer state on every device
    batch = shard_batch(batch, mesh)                    # each device gets batch_size / num_devices rows

The train step itself does not change: ``jax.jit`` propagates the shardings and inserts the gradient
all-reduce. On several hosts call ``jax.distributed.initialize()`` first (``main.py`` does when
``--distributed`` is set); every process reads the same global batch stream, keeps its own rows, and
``shard_batch`` assembles the global array with ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from robustjax.errors import ConfigError
from robustjax.types import Batch, PyTree


def make_mesh(devices=None) -> Mesh:
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), ("data",))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    return jax.device_put(tree, NamedSharding(mesh, P()))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(
            f"config.data.batch_size={batch_size} does not divide evenly over {n} devices; "
            f"use a multiple of {n} (e.g. {max(n, batch_size // n * n)})"
        )


def shard_batch(batch: Batch, mesh: Mesh) -> Batch:
    """Places a (process-local) batch so that its leading axis is split over the mesh's "data" axis."""
    sharding = NamedSharding(mesh, P("data"))
    if jax.process_count() == 1:
        return {k: jax.device_put(np.asarray(v), sharding) for k, v in batch.items()}
    # Every process reads the same global batch (same seed and position); each keeps its own rows.
    i, n = jax.process_index(), jax.process_count()
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        rows = v.shape[0] // n
        out[k] = jax.make_array_from_process_local_data(sharding, v[i * rows:(i + 1) * rows], v.shape)
    return out
