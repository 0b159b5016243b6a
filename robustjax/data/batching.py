"""Batches from an ``ArrayDataset``: a seekable infinite training stream, padded evaluation, prefetch.

    for batch in data.prefetch(data.train_batches(train, 128, seed=0, start_step=step)): ...
    for batch in data.eval_batches(test, 256): correct += ((pred == batch["label"]) & batch["mask"]).sum()
    n = data.steps_per_epoch(train, 128)

The training stream is a pure function of ``(seed, step)``: epoch ``e`` visits the examples in the
order ``permutation(seed, e)`` and drops that epoch's last partial batch, so ``start_step`` seeks
straight to ``(epoch, offset) = divmod(start_step, steps_per_epoch)`` and a resumed run sees exactly
the batches an unbroken run would have seen.

Several processes (multi-host data parallelism) share that one stream of global batches: process ``i``
of ``n`` gathers only rows ``[i * batch_size / n, (i + 1) * batch_size / n)`` of each global batch
(``process_index=i, process_count=n``), so the global batch of step ``s`` is the same whatever the
process count, and the union of the processes' batches is the single-process batch.

    local = data.train_batches(train, 256, seed=0, start_step=step,
                               process_index=jax.process_index(), process_count=jax.process_count())
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

import numpy as np

from robustjax.data.core import ArrayDataset


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def steps_per_epoch(ds: ArrayDataset, batch_size: int) -> int:
    """Full batches in one pass over ``ds`` (the last partial batch of an epoch is dropped in training).

    Raises:
      ValueError: if ``ds`` holds fewer than ``batch_size`` examples.
    """
    _check_batch_size(batch_size)
    steps = len(ds) // batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size {batch_size} is larger than the training set ({len(ds)} examples): not one full "
            "batch per epoch; lower data.batch_size or raise data.train_size")
    return steps


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order of epoch ``epoch``: a permutation of ``range(num_examples)`` determined by (seed, epoch)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative integers, got seed={seed}, epoch={epoch}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch)]))
    return rng.permutation(num_examples)


def process_rows(batch_size: int, process_index: int = 0, process_count: int = 1) -> slice:
    """The rows of every global batch that process ``process_index`` of ``process_count`` reads.

    Raises:
      ValueError: ``batch_size`` does not split evenly over the processes, or the index is out of range.
    """
    _check_batch_size(batch_size)
    for name, value in (("process_index", process_index), ("process_count", process_count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index must lie in [0, process_count), got {process_index} of {process_count}")
    if batch_size % process_count:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {process_count} processes; use a "
                         f"multiple of {process_count}")
    rows = batch_size // process_count
    return slice(int(process_index) * rows, (int(process_index) + 1) * rows)


def train_batches(ds: ArrayDataset, batch_size: int, *, seed: int, start_step: int = 0,
                  process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """An infinite stream of shuffled training batches (this process's rows of them).

    Args:
      ds: the training split.
      batch_size: examples per global batch; every batch is full.
      seed: non-negative integer; epoch ``e`` uses a permutation derived from ``(seed, e)`` only.
      start_step: index of the first batch to yield. Seeking costs one permutation, not ``start_step``
        batches: the stream from ``start_step=k`` equals the stream from 0 without its first ``k`` batches.
      process_index, process_count: this process reads only rows ``process_rows(batch_size,
        process_index, process_count)`` of every global batch (gathering and converting nothing else);
        the global batches themselves do not depend on the process count.

    Yields:
      ``{"image": float32 [batch_size / process_count, ...] in [0, 1], "label": int32 [...]}``.
    """
    spe = steps_per_epoch(ds, batch_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or start_step < 0:
        raise ValueError(f"start_step must be a non-negative integer, got {start_step!r}")
    rows = process_rows(batch_size, process_index, process_count)
    epoch, offset = divmod(int(start_step), spe)
    while True:
        order = epoch_permutation(len(ds), seed, epoch)
        for step in range(offset, spe):
            yield ds.get(order[step * batch_size:(step + 1) * batch_size][rows])
        epoch, offset = epoch + 1, 0


def eval_batches(ds: ArrayDataset, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example exactly once, in order, in batches of exactly ``batch_size``.

    The last batch is padded (zero images, label 0) up to ``batch_size`` so a jitted evaluation compiles
    once; ``"mask"`` tells real examples from padding. Sum metrics as ``(per_example * mask).sum()`` and
    divide by ``mask.sum()``.

    Yields:
      ``{"image": float32 [batch_size, ...], "label": int32 [batch_size], "mask": bool [batch_size]}``.
    """
    _check_batch_size(batch_size)
    n = len(ds)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        batch = ds.get(np.arange(start, stop))
        real = stop - start
        mask = np.zeros(batch_size, dtype=bool)
        mask[:real] = True
        if real < batch_size:
            pad = batch_size - real
            batch = {
                "image": np.concatenate(
                    [batch["image"], np.zeros((pad,) + batch["image"].shape[1:], np.float32)]),
                "label": np.concatenate([batch["label"], np.zeros(pad, np.int32)]),
            }
        batch["mask"] = mask
        yield batch


class _Failure:
    """Carries an exception from the producer thread to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def prefetch(iterator: Iterable, size: int = 2, *,
             map_fn: Callable | None = None) -> Iterator:
    """Runs ``iterator`` (and ``map_fn`` on each element) in a background thread, ``size`` items ahead.

    numpy batching releases the GIL for the copies, so gathering the next batch overlaps the current
    jitted step. Pass ``map_fn=jax.device_put`` to move batches to the device in the thread too.

    Args:
      iterator: any iterable (finite or infinite).
      size: items buffered ahead (>= 1).
      map_fn: optional function applied to each item in the background thread.

    Yields:
      The items of ``iterator`` (mapped), in order. An exception raised by ``iterator`` or ``map_fn`` is
      re-raised here, at the position where it happened. ``close()``, leaving a ``with prefetch(...)``
      block, or dropping the iterator stops the thread.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"prefetch size must be a positive integer, got {size!r}")
    buffer: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterator:
                if map_fn is not None:
                    item = map_fn(item)
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, not swallowed
            put(_Failure(error))
            return
        put(_END)

    thread = threading.Thread(target=produce, name="robustjax-prefetch", daemon=True)
    thread.start()
    return _Prefetcher(buffer, stop, thread)


class _Prefetcher:
    """The consumer side of ``prefetch``: an iterator that stops its thread when closed or collected."""

    def __init__(self, buffer: queue.Queue, stop: threading.Event, thread: threading.Thread):
        self._buffer, self._stop, self._thread = buffer, stop, thread
        self._done = False

    def __iter__(self) -> "_Prefetcher":
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._buffer.get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        return item

    def close(self) -> None:
        """Stops the background thread (idempotent)."""
        self._done = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> "_Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self._stop.set()
