"""Data parallelism with JAX's own sharding: one mesh axis "data" over every device (and host).

    mesh = make_mesh()                                  # all devices of all processes, grouped by process
    state = replicate(state, mesh)                      # parameters and optimizer state on every device
    index, count = input_shard(mesh)                    # this process's block of rows of a global batch
    local = next(data.train_batches(train, B, seed=0, process_index=index, process_count=count))
    batch = shard_batch(local, mesh)                    # the global [B, ...] array, split over the devices

The train step itself does not change: ``jax.jit`` sees global arrays, so every reduction over the batch
axis is a reduction over the global batch; XLA inserts the cross-device all-reduces (the gradient's, and
BatchNorm's mean and variance in train mode). The result equals the one-device result up to float
rounding (tests/test_sharding.py checks standard training, PGD-AT and ATGAN on 8 simulated devices).

Several hosts: call ``jax.distributed.initialize()`` first (``main.py --distributed`` does). Every process
reads the same stream of global batches (a pure function of seed and step) but gathers only its own block
of rows of each (``data.train_batches(..., process_index, process_count)``); ``shard_batch`` assembles the
global array from the processes' blocks with ``jax.make_array_from_process_local_data``. ``make_mesh``
orders the devices by process, so process ``i``'s devices hold exactly block ``i``.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from robustjax.errors import ConfigError
from robustjax.types import Batch, PyTree


def mesh_order(devices) -> list:
    """``devices`` ordered by (process index, device id): each process's devices form one block."""
    return sorted(devices, key=lambda d: (d.process_index, d.id))


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh ("data",) over ``devices`` (default: every device of every process) in
    :func:`mesh_order`, so that process ``i`` holds block ``i`` of every batch."""
    return Mesh(np.asarray(mesh_order(jax.devices() if devices is None else devices)).reshape(-1), ("data",))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places ``tree`` on every device of ``mesh`` (every process must pass the same values)."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ConfigError(
            f"config.data.batch_size={batch_size} does not divide evenly over {n} devices; "
            f"use a multiple of {n} (e.g. {max(n, batch_size // n * n)})"
        )


def input_shard(mesh: Mesh, process_index: int | None = None) -> tuple[int, int]:
    """``(index, count)``: this process reads block ``index`` of ``count`` equal blocks of rows of every
    global batch (``data.train_batches(..., process_index=index, process_count=count)``).

    The blocks follow the mesh: a batch split over the "data" axis puts rows ``[k * B / D, (k + 1) * B / D)``
    on the mesh's k-th device, so a process whose devices are positions ``[i * d, (i + 1) * d)`` of the
    mesh needs block ``i`` of ``D / d``. One process: ``(0, 1)``.

    Raises:
      ValueError: the process's devices are not one contiguous block of the mesh, or the processes hold
        different numbers of devices (build the mesh with :func:`make_mesh`).
    """
    process = jax.process_index() if process_index is None else process_index
    owners = np.asarray([d.process_index for d in mesh.devices.reshape(-1)])
    mine = np.flatnonzero(owners == process)
    per_process = np.unique(owners, return_counts=True)[1]
    if mine.size == 0:
        raise ValueError(f"process {process} has no device in the mesh")
    if (per_process != mine.size).any() or (mine != np.arange(mine[0], mine[0] + mine.size)).any() or \
            mine[0] % mine.size:
        raise ValueError(f"process {process}'s devices are not one of equal contiguous blocks of the mesh "
                         f"(device owners in mesh order: {owners.tolist()}); build it with sharding.make_mesh")
    return int(mine[0] // mine.size), int(owners.size // mine.size)


def shard_batch(batch: Batch, mesh: Mesh) -> Batch:
    """The global batch, split over the mesh's "data" axis, from this process's block of its rows.

    ``batch`` holds this process's rows (block ``input_shard(mesh)[0]``); with one process, the whole
    batch. The global batch has ``count`` times as many rows.
    """
    sharding = NamedSharding(mesh, P("data"))
    _, count = input_shard(mesh)
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        out[k] = jax.make_array_from_process_local_data(sharding, v, (v.shape[0] * count,) + v.shape[1:])
    return out
