"""The one training loop: every defense's phases, jitted once, checkpointed, resumable.

    state = defense.init(init_key, sample_batch)
    state = loop.fit(defense, state, train_ds, workdir=workdir, key=train_key,
                     batch_size=128, seed=0, log_every=50, checkpoint_every=500)

What it does for every phase of ``defense.phases`` in order:
- jits the phase's pure ``train_step`` once, with the state donated, wrapped so that the step key is
  ``fold_in(fold_in(key, phase_index), step)`` computed inside the compiled function (one key per run,
  never reused for two steps or two phases);
- feeds it the data stream ``data.train_batches(seed=seed + phase_index, start_step=step)``: the position
  in the data is a pure function of (phase, step), so a resumed run sees exactly the batches an unbroken
  run would have seen, and the checkpoint needs no iterator state;
- averages the step metrics on device and, every ``log_every`` steps, writes them as one JSON line to
  ``workdir/metrics.jsonl`` (and the progress bar), and stops with an error naming the phase and step
  range if the loss is NaN or infinite;
- saves an Orbax checkpoint (state + {phase, step}) every ``checkpoint_every`` steps, at the end of each
  phase, and when interrupted (KeyboardInterrupt / SIGTERM), keeping the newest ``keep_checkpoints``.

Restarting with the same workdir resumes from the newest checkpoint and ends with the same state as an
unbroken run (tests/test_train.py checks this bit for bit).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from robustjax import data as data_lib
from robustjax import xla
from robustjax.defenses.base import Defense, State

STATE_ITEM = "state"
META_ITEM = "meta"


class NonFiniteLossError(FloatingPointError):
    """A train step produced a NaN or infinite metric."""


class Interrupted(KeyboardInterrupt):
    """Raised after a checkpoint was written because the run was interrupted (SIGINT/SIGTERM)."""


def _checkpoint_manager(workdir: str, keep: int) -> ocp.CheckpointManager:
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    options = ocp.CheckpointManagerOptions(max_to_keep=max(1, keep), create=True)
    return ocp.CheckpointManager(directory, options=options)


def restore_latest(workdir: str, state: State, keep: int = 2) -> tuple[State, dict | None]:
    """Restores the newest checkpoint in ``workdir`` into the structure of ``state``.

    Returns ``(state, meta)``; ``meta`` is ``None`` (and ``state`` unchanged) if there is none.
    """
    mngr = _checkpoint_manager(workdir, keep)
    try:
        step = mngr.latest_step()
        if step is None:
            return state, None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        restored = mngr.restore(
            step,
            args=ocp.args.Composite(
                **{STATE_ITEM: ocp.args.StandardRestore(abstract), META_ITEM: ocp.args.JsonRestore()}
            ),
        )
        return restored[STATE_ITEM], dict(restored[META_ITEM])
    finally:
        mngr.close()


def _phase_offsets(defense: Defense) -> list[int]:
    offsets, total = [], 0
    for phase in defense.phases:
        offsets.append(total)
        total += phase.num_steps
    return offsets


def _compile_step(train_step: Callable, phase_key: jax.Array) -> Callable:
    def step_fn(state, batch, step):
        return train_step(state, batch, jax.random.fold_in(phase_key, step))

    return xla.jit(step_fn, donate_argnums=0)  # CPU: XLA's own convolutions (see robustjax.xla)


class _MetricWriter:
    """Appends JSON lines to workdir/metrics.jsonl (the machine-readable training log)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._f = open(self.path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, sort_keys=True) + "\n")

    def close(self) -> None:
        self._f.close()


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=True)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (preemption, `kill`) behaves like Ctrl-C so that the loop checkpoints before exiting."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fit(
    defense: Defense,
    state: State,
    train_ds: data_lib.ArrayDataset,
    *,
    workdir: str,
    key: jax.Array,
    batch_size: int,
    seed: int = 0,
    log_every: int = 50,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 2,
    progress: bool | None = None,
    on_step: Callable[[int], None] | None = None,
    prefetch: int = 2,
    shard_batch: Callable | None = None,
) -> State:
    """Runs every phase of ``defense`` on ``train_ds``, resuming from ``workdir`` if possible.

    Args:
      defense: the defense whose phases to run.
      state: a freshly initialised state (its structure is the restore target).
      train_ds: the training set.
      workdir: where checkpoints and metrics.jsonl go.
      key: the run's training key (folded with phase index and step; never used directly).
      batch_size: training batch size (the last partial batch of each epoch is dropped).
      seed: data-order seed (phase i uses ``seed + i``).
      log_every: steps between metric lines (metrics are averaged over them).
      checkpoint_every: steps between checkpoints (plus one at the end of every phase).
      keep_checkpoints: how many checkpoints to keep.
      progress: show a progress bar (default: only when stderr is a terminal).
      on_step: called with the global step after each step (tests use it to simulate a crash).
      prefetch: host-side prefetch depth.
      shard_batch: optional ``batch -> batch`` placing arrays on devices (multi-device data parallel).

    Returns:
      The final state.

    Raises:
      NonFiniteLossError: a metric became NaN/inf (the message names the phase and step range).
      KeyboardInterrupt: the run was interrupted; a checkpoint of the last finished step was written.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(train_ds) < batch_size:
        raise ValueError(
            f"the training set has {len(train_ds)} examples, fewer than one batch of {batch_size}: "
            "lower data.batch_size or raise data.train_size"
        )
    os.makedirs(workdir, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    offsets = _phase_offsets(defense)
    state, meta = restore_latest(workdir, state, keep_checkpoints)
    start_phase, start_step = (0, 0) if meta is None else (int(meta["phase"]), int(meta["step"]))
    if meta is not None:
        print(
            f"[robustjax] resuming from checkpoint: phase {start_phase} "
            f"({defense.phases[start_phase].name if start_phase < len(defense.phases) else 'done'}), "
            f"step {start_step}",
            file=sys.stderr,
        )

    writer = _MetricWriter(workdir)
    mngr = _checkpoint_manager(workdir, keep_checkpoints)
    last_saved = None if meta is None else offsets[start_phase] + start_step

    def save(phase_index: int, step: int, st: State) -> None:
        nonlocal last_saved
        if step >= defense.phases[phase_index].num_steps and phase_index + 1 < len(defense.phases):
            phase_index, step = phase_index + 1, 0  # the end of a phase is the start of the next
        global_step = offsets[phase_index] + step
        if last_saved == global_step:
            return
        mngr.save(
            global_step,
            args=ocp.args.Composite(
                **{
                    STATE_ITEM: ocp.args.StandardSave(st),
                    META_ITEM: ocp.args.JsonSave({"phase": phase_index, "step": step}),
                }
            ),
        )
        last_saved = global_step

    try:
        with _sigterm_as_interrupt():
            for phase_index in range(start_phase, len(defense.phases)):
                phase = defense.phases[phase_index]
                first = start_step if phase_index == start_phase else 0
                state = _run_phase(
                    phase_index, phase, state, first, train_ds, key, batch_size, seed,
                    offsets[phase_index], log_every, checkpoint_every, progress, writer, save,
                    on_step, prefetch, shard_batch,
                )
                save(phase_index, phase.num_steps, state)
            mngr.wait_until_finished()
    finally:
        mngr.wait_until_finished()
        mngr.close()
        writer.close()
    return state


def _run_phase(
    phase_index, phase, state, first, train_ds, key, batch_size, seed, offset, log_every,
    checkpoint_every, progress, writer, save, on_step, prefetch, shard_batch,
):
    if first >= phase.num_steps:
        return state
    step_fn = _compile_step(phase.train_step, jax.random.fold_in(key, phase_index))
    stream: Iterator = data_lib.train_batches(
        train_ds, batch_size, seed=seed + phase_index, start_step=first
    )
    if prefetch:
        stream = data_lib.prefetch(stream, prefetch)
    bar = _progress(phase.num_steps, first, f"{phase.name}", progress)
    sums, count, t0, since = None, 0, time.perf_counter(), first
    done = first  # steps of this phase whose result `state` holds
    try:
        for step in range(first, phase.num_steps):
            batch = next(stream)
            batch = {k: v for k, v in batch.items() if k in ("image", "label")}
            if shard_batch is not None:
                batch = shard_batch(batch)
            state, metrics = step_fn(state, batch, jnp.asarray(step, jnp.int32))
            sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
            count += 1
            done = step + 1
            if bar is not None:
                bar.update(1)
            if done % log_every == 0 or done == phase.num_steps:
                means = {k: float(v) / count for k, v in jax.device_get(sums).items()}
                elapsed = time.perf_counter() - t0
                bad = [k for k, v in means.items() if not math.isfinite(v)]
                if bad:
                    raise NonFiniteLossError(
                        f"phase {phase_index} ({phase.name!r}): metric(s) {bad} became NaN/inf between "
                        f"steps {since} and {done} (global steps {offset + since}-{offset + done}); "
                        "lower the learning rate, check the data for NaN pixels, or enable grad_clip"
                    )
                record = {
                    "phase": phase.name, "phase_index": phase_index, "step": done,
                    "global_step": offset + done, "steps_per_sec": count / max(elapsed, 1e-9),
                    **means,
                }
                writer.write(record)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()}, refresh=False)
                sums, count, t0, since = None, 0, time.perf_counter(), done
            if done % checkpoint_every == 0 and done < phase.num_steps:
                save(phase_index, done, state)
            if on_step is not None:
                on_step(offset + done)
    except KeyboardInterrupt:
        # `state` holds the result of `done` steps. If the interrupt landed inside the step call after
        # its input was donated, the buffers are gone and the previous checkpoint stands.
        try:
            save(phase_index, done, state)
            print(f"[robustjax] interrupted: checkpoint saved at phase {phase_index} step {done}",
                  file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            print(f"[robustjax] interrupted; could not checkpoint step {done} ({e}); "
                  "the previous checkpoint stands", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return state
