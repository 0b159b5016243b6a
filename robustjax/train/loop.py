"""The one training loop: every defense's phases, jitted once, checkpointed, resumable.

    state = defense.init(init_key, sample_batch)
    options = loop.LoopOptions(workdir=workdir, batch_size=128, seed=0, log_every=50, checkpoint_every=500)
    state = loop.fit(defense, state, train_ds, key=train_key, options=options)

What it does for every phase of ``defense.phases`` in order:
- jits the phase's pure ``train_step`` once, with the state donated, wrapped so that the step key is
  ``fold_in(fold_in(key, phase_index), step)`` computed inside the compiled function (one key per run,
  never reused for two steps or two phases);
- feeds it the data stream ``data.train_batches(seed=seed + phase_index, start_step=step)``: the position
  in the data is a pure function of (phase, step), so a resumed run sees exactly the batches an unbroken
  run would have seen, and the checkpoint needs no iterator state. With several processes each reads only
  its block of rows of every global batch (``process_index``/``process_count``) and ``shard_batch``
  assembles the global batch on the devices (``robustjax.train.sharding``);
- averages the step metrics on device and, every ``log_every`` steps, writes them as one JSON line to
  ``workdir/metrics.jsonl`` (and the progress bar), and stops with an error naming the phase and step
  range if a metric is NaN or infinite;
- saves an Orbax checkpoint (state + {phase, step}) every ``checkpoint_every`` steps, at the end of each
  phase, and when interrupted, keeping the newest ``keep_checkpoints``. A state that holds a NaN or an
  infinity is never saved (one on-device reduction before every save): the run stops instead, naming the
  last finite checkpoint.

Interruption. SIGINT (Ctrl-C) and SIGTERM (preemption, ``kill``) only set a flag; the loop looks at it
between steps, where the state it holds is exactly the result of the steps it has counted, saves that
state with that step count and raises :class:`Interrupted` (a ``KeyboardInterrupt``). A signal that
arrives inside a step call, even while the donated state buffers are being consumed, therefore costs at
most the rest of that step. A second signal stops at once without a checkpoint (the newest one stands).

Resuming. Restarting with the same workdir resumes from the newest checkpoint that restores: one that
cannot be read (a truncated or missing file, a missing ``_METADATA``, ``meta/`` or ``state/``, an empty
step folder) or that holds NaN/inf is skipped with a one-line warning naming it, and moved to
``workdir/damaged_checkpoints/`` so that it cannot shadow the checkpoints written after it. A checkpoint
of a different model (a leaf with another shape) stops the run with one line naming the leaf. Leftover
temporary folders of an interrupted save are removed (Orbax's ``cleanup_tmp_directories``). The resumed
run ends with the same state as an unbroken run, and ``metrics.jsonl`` loses the lines of the steps it
replays (tests/test_train.py checks all of this; docs/reliability.md lists the promises and their tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import signal
import sys
import time
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from robustjax import data as data_lib
from robustjax import xla
from robustjax.defenses.base import Defense, State
from robustjax.errors import CheckpointMismatchError, ConfigError
from robustjax.train import summaries

STATE_ITEM = "state"
META_ITEM = "meta"
METRICS_FILE = "metrics.jsonl"
DAMAGED_DIR = "damaged_checkpoints"

# A loss that grows without becoming NaN (Adam at lr 1e6 trains "successfully" with a loss of 1e27):
# see loss_warnings. Any logged loss above LOSS_LIMIT, or a final loss more than LOSS_GROWTH times the
# first logged one (or than LOSS_GROWTH, when the first was below 1), is reported.
LOSS_LIMIT = 1e6
LOSS_GROWTH = 100.0


class NonFiniteLossError(FloatingPointError):
    """A train step produced a NaN or infinite metric, or a state that holds one (it is never saved)."""


class Interrupted(KeyboardInterrupt):
    """Raised when a run stops on SIGINT/SIGTERM (or a KeyboardInterrupt), after its checkpoint is written.

    Attributes:
      signum: the signal (``signal.SIGINT``, ``signal.SIGTERM``), or None for a KeyboardInterrupt raised
        by code (an ``on_step`` hook).
      global_step: the global step of the checkpoint written on the way out, or None when none was
        (a second signal, or a state that held NaN/inf): the newest earlier checkpoint stands.
    """

    def __init__(self, message: str, signum: int | None = None, global_step: int | None = None):
        super().__init__(message)
        self.signum = signum
        self.global_step = global_step

    @property
    def exit_status(self) -> int:
        """The shell's convention: 128 + the signal number (143 for SIGTERM, 130 for SIGINT and Ctrl-C)."""
        return 128 + int(self.signum if self.signum is not None else signal.SIGINT)


@dataclasses.dataclass(frozen=True)
class LoopOptions:
    """Where a run writes, how often, and the hooks: everything ``fit`` needs besides the model and data.

    Attributes:
      workdir: where ``checkpoints/`` and ``metrics.jsonl`` go.
      batch_size: training batch size (the last partial batch of each epoch is dropped).
      seed: data-order seed (phase i uses ``seed + i``).
      log_every: steps between metric lines (metrics are averaged over them).
      checkpoint_every: steps between checkpoints (plus one at the end of every phase and on interrupt).
      keep_checkpoints: how many checkpoints to keep.
      progress: show a progress bar (None: only when stderr is a terminal).
      prefetch: host-side prefetch depth (0: none).
      on_start: called with the resumed checkpoint's meta (None for a fresh start) once it is restored
        and checked, before the first step (experiment.run writes config.json there).
      on_step: called with the global step after each step's bookkeeping (tests use it to simulate a
        crash).
      shard_batch: optional ``batch -> batch`` placing arrays on devices (multi-device data parallel):
        it receives this process's rows and returns the global batch (``sharding.shard_batch``).
      process_index, process_count: this process reads block ``process_index`` of ``process_count`` equal
        blocks of rows of every global batch of ``batch_size`` (``sharding.input_shard``); (0, 1) reads
        whole batches.
    """

    workdir: str
    batch_size: int
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    progress: bool | None = None
    prefetch: int = 2
    on_start: Callable[[dict | None], None] | None = None
    on_step: Callable[[int], None] | None = None
    shard_batch: Callable | None = None
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        for name in ("batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                field = "config.data.batch_size" if name == "batch_size" else f"config.train.{name}"
                raise ConfigError(f"{name} must be a positive integer, got {value!r} ({field})")
        if isinstance(self.prefetch, bool) or not isinstance(self.prefetch, int) or self.prefetch < 0:
            raise ConfigError(f"prefetch must be an integer >= 0, got {self.prefetch!r}")
        try:
            data_lib.process_rows(self.batch_size, self.process_index, self.process_count)
        except ValueError as e:
            raise ConfigError(f"config.data.batch_size over {self.process_count} processes: {e}") from e
        if self.process_count > 1 and self.shard_batch is None:
            raise ConfigError(f"{self.process_count} processes each read a part of every batch: they need "
                              "shard_batch to assemble the global batch (config.train.data_parallel=True)")


# ---------------------------------------------------------------------------------------------------------
# Checkpoints


def _checkpoint_dir(workdir: str) -> str:
    return os.path.abspath(os.path.join(workdir, "checkpoints"))


_NAME_FORMAT = ocp.step.standard_name_format()  # checkpoints/<global step>/


def _checkpoint_manager(workdir: str, keep: int | None, *, read_only: bool = False) -> ocp.CheckpointManager:
    """The run's manager; ``read_only``: one that creates, cleans and deletes nothing (it is never saved
    with; Orbax's own read_only option logs a warning on every use)."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max(1, keep or 1), create=not read_only,
        cleanup_tmp_directories=not read_only,  # a save cut short leaves <step>.orbax-checkpoint-tmp-*
        step_name_format=_NAME_FORMAT,
    )
    handlers = {STATE_ITEM: ocp.StandardCheckpointHandler(), META_ITEM: ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(_checkpoint_dir(workdir), options=options, item_handlers=handlers)


@jax.jit
def _all_finite(tree) -> jax.Array:
    """One on-device reduction: True iff every floating-point leaf of ``tree`` is finite."""
    checks = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.stack(checks).all() if checks else jnp.asarray(True)


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaf_name(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts)


def _leaf_shapes(tree) -> dict[str, tuple[int, ...]]:
    return {_leaf_name(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0] if hasattr(leaf, "shape")}


def _check_same_model(saved_tree, expected: dict[str, tuple[int, ...]], directory: str, step: int) -> None:
    """Raises CheckpointMismatchError naming the first leaf whose shape (or presence) differs."""
    saved = _leaf_shapes(saved_tree)
    problem = None
    for name in list(expected) + [n for n in saved if n not in expected]:  # the model's order: params first
        if name not in saved:
            problem = f"the model has {name} (shape {expected[name]}), which the checkpoint lacks"
        elif name not in expected:
            problem = f"the checkpoint has {name} (shape {saved[name]}), which the model lacks"
        elif saved[name] != expected[name]:
            problem = f"{name} was saved with shape {saved[name]} but the model expects {expected[name]}"
        if problem:
            break
    if problem:
        raise CheckpointMismatchError(
            f"{directory}/{step} was written by a different model: {problem}; resume this workdir with the "
            "config it was trained with, or train this config in a fresh --workdir")


@dataclasses.dataclass(frozen=True)
class _Found:
    state: State
    meta: dict | None           # {"phase": int, "step": int}, None when nothing was restored
    step: int | None            # the checkpoint's global step
    unusable: tuple[tuple[int, str], ...]  # newer checkpoints skipped: (global step, why), newest first


def _restore_one(mngr: ocp.CheckpointManager, step: int, target, expected) -> tuple[State, dict] | str:
    """The checkpoint's (state, meta), or why it cannot be used. Raises on a checkpoint of another model."""
    try:
        metadata = mngr.item_metadata(step)
    except Exception as e:  # noqa: BLE001 - tensorstore/orbax raise many types for a damaged folder
        return f"its metadata cannot be read ({_one_line(e)})"
    names = set(metadata.keys()) if metadata is not None else set()
    if STATE_ITEM not in names:
        return f"it has no '{STATE_ITEM}' item (items: {sorted(names) or 'none'})"
    if metadata[STATE_ITEM] is None:
        return f"its '{STATE_ITEM}' metadata (_METADATA) is missing or unreadable"
    _check_same_model(metadata[STATE_ITEM], expected, str(mngr.directory), step)
    try:
        restored = mngr.restore(step, args=ocp.args.Composite(
            **{STATE_ITEM: ocp.args.StandardRestore(target), META_ITEM: ocp.args.JsonRestore()}))
    except Exception as e:  # noqa: BLE001 - as above
        return f"it cannot be restored ({_one_line(e)})"
    meta = restored[META_ITEM]
    if not (isinstance(meta, dict) and isinstance(meta.get("phase"), int) and isinstance(meta.get("step"), int)):
        return f"its '{META_ITEM}' item is not {{phase, step}} (got {meta!r:.80})"
    state = restored[STATE_ITEM]
    if not bool(_all_finite(state)):
        return "its state holds NaN or inf values"
    return state, {"phase": meta["phase"], "step": meta["step"]}


@contextlib.contextmanager
def _quiet_aborted_reads():
    """Drops the unraisable "Event loop is closed" errors of an aborted checkpoint read, and only those.

    Orbax reads a checkpoint's arrays concurrently on an event loop that it closes as soon as one read
    fails; every read still in flight then reports "RuntimeError: Event loop is closed" through
    ``sys.unraisablehook`` (a screenful of tracebacks for one truncated file). Installed while a workdir's
    checkpoints are probed and trained on (the stray reports arrive within milliseconds).
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _restore_newest_usable(mngr: ocp.CheckpointManager, state: State) -> _Found:
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    expected = _leaf_shapes(target)
    unusable = []
    for step in sorted(mngr.all_steps(), reverse=True):
        result = _restore_one(mngr, step, target, expected)
        if isinstance(result, str):
            unusable.append((step, result))
            continue
        return _Found(result[0], result[1], step, tuple(unusable))
    return _Found(state, None, None, tuple(unusable))


def _warn(message: str) -> None:
    print(f"[robustjax] warning: {message}", file=sys.stderr, flush=True)


def _unusable_message(directory: str, step: int, why: str, found: _Found, moved_to: str | None) -> str:
    then = (f"resuming from checkpoint {found.step} instead" if found.step is not None
            else "no usable checkpoint is left: starting from step 0")
    moved = f"; moved it to {moved_to}" if moved_to else ""
    return f"checkpoint {directory}/{step} cannot be used: {why}; {then}{moved}"


def checkpoint_steps(workdir: str) -> list[int]:
    """The global steps of the step folders in ``workdir/checkpoints`` (usable or not), oldest first."""
    if not os.path.isdir(_checkpoint_dir(workdir)):
        return []
    mngr = _checkpoint_manager(workdir, None, read_only=True)
    try:
        return sorted(mngr.all_steps())
    finally:
        mngr.close()


def restore_latest(workdir: str, state: State) -> tuple[State, dict | None]:
    """Restores the newest usable checkpoint in ``workdir`` into the structure of ``state`` (read only).

    Checkpoints that cannot be restored or hold NaN/inf are skipped with a one-line warning each.

    Returns:
      ``(state, meta)``; ``meta`` is ``{"phase", "step"}``, or ``None`` (and ``state`` unchanged) if no
      checkpoint is usable.

    Raises:
      CheckpointMismatchError: the newest readable checkpoint was written by a different model.
    """
    directory = _checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        return state, None
    mngr = _checkpoint_manager(workdir, None, read_only=True)
    try:
        with _quiet_aborted_reads():
            found = _restore_newest_usable(mngr, state)
    finally:
        mngr.close()
    for step, why in found.unusable:
        _warn(_unusable_message(directory, step, why, found, None))
    return found.state, found.meta


def _set_aside(mngr: ocp.CheckpointManager, workdir: str, step: int) -> str:
    """Moves an unusable step folder out of checkpoints/ (kept for inspection); returns where it went."""
    source = ocp.step.find_step_path(mngr.directory, _NAME_FORMAT, step=step)
    target_dir = os.path.join(os.path.abspath(workdir), DAMAGED_DIR)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, f"{os.path.basename(str(source))}-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(source), target)
    return target


# ---------------------------------------------------------------------------------------------------------
# metrics.jsonl


def read_metrics(workdir: str) -> list[dict]:
    """The records of ``workdir/metrics.jsonl`` in order (lines that are not JSON objects are skipped)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(record, dict):
                records.append(record)
    return records


class _MetricWriter:
    """Appends JSON lines to workdir/metrics.jsonl, after dropping the lines a resumed run will replay; the
    same records go to TensorBoard (``workdir/tensorboard/train``, ``robustjax.train.summaries``), where a
    resume purges the replayed steps likewise. Only process 0 writes (every process computes the same
    records; on a shared workdir each line would otherwise appear once per process)."""

    def __init__(self, workdir: str, resume_step: int):
        self.path = os.path.join(workdir, METRICS_FILE)
        self._f = self._tb = None
        if jax.process_index() != 0:  # several processes: process 0 keeps the log (as TensorBoard's)
            return
        if os.path.exists(self.path):
            with open(self.path) as f:
                lines = f.readlines()
            kept = [json.dumps(r, sort_keys=True) + "\n" for r in read_metrics(workdir)
                    if int(r.get("global_step", 0)) <= resume_step]
            if kept != lines:
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    f.writelines(kept)
                os.replace(tmp, self.path)
        self._f = open(self.path, "a", buffering=1)
        self._tb = summaries.open_writer(os.path.join(workdir, summaries.TENSORBOARD_DIR, "train"),
                                         purge_step=resume_step + 1 if resume_step else None)

    def write(self, record: dict) -> None:
        if self._f is None:
            return
        self._f.write(json.dumps(record, sort_keys=True) + "\n")
        summaries.write_training(self._tb, record)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
        if self._tb is not None:
            self._tb.close()


def loss_warnings(records: list[dict]) -> list[str]:
    """Warnings for losses that grew without becoming NaN, from ``metrics.jsonl`` records.

    Per phase and per loss metric (a name containing ``loss``): a logged value above
    ``LOSS_LIMIT``, or a last logged value more than ``LOSS_GROWTH`` times the first one (or than
    ``LOSS_GROWTH`` when the first was below 1). Healthy training lowers its losses; a GAN's generator
    loss may rise, but not a hundredfold.
    """
    series: dict[tuple[int, str, str], list[tuple[int, float]]] = {}
    for r in records:
        for name, value in r.items():
            if "loss" in name and isinstance(value, (int, float)) and not isinstance(value, bool):
                key = (int(r.get("phase_index", 0)), str(r.get("phase", "")), name)
                series.setdefault(key, []).append((int(r.get("global_step", 0)), float(value)))
    out = []
    for (index, phase, name), points in sorted(series.items()):
        where = f"phase {index} ({phase!r}): {name}"
        step, peak = max(points, key=lambda p: p[1])
        first, last = points[0][1], points[-1][1]
        if peak > LOSS_LIMIT:
            out.append(f"{where} reached {peak:.3g} at global step {step}, above {LOSS_LIMIT:g}: training "
                       "diverged without becoming NaN; lower the learning rate or set grad_clip")
        elif last > LOSS_GROWTH * max(first, 1.0):
            out.append(f"{where} ended at {last:.3g}, more than {LOSS_GROWTH:g}x its first logged value "
                       f"({first:.3g}): training diverged; lower the learning rate or set grad_clip")
    return out


# ---------------------------------------------------------------------------------------------------------
# Signals


class _StopRequest:
    """SIGINT/SIGTERM set ``signum``; the loop stops at its next safe point. A second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise Interrupted(f"second {signal.Signals(signum).name}: stopped at once, without a checkpoint "
                              "(the newest checkpoint stands)", signum)
        self.signum = signum

    def __enter__(self) -> "_StopRequest":
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: signals stay as they are (KeyboardInterrupt is handled too)
            pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


def _signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "KeyboardInterrupt"


# ---------------------------------------------------------------------------------------------------------
# The loop


def _phase_offsets(defense: Defense) -> list[int]:
    offsets, total = [], 0
    for phase in defense.phases:
        offsets.append(total)
        total += phase.num_steps
    return offsets


def _step(train_step, state, batch, step, phase_key):
    return train_step(state, batch, jax.random.fold_in(phase_key, step))


@functools.cache
def _jitted_step() -> Callable:
    # Made on first use (xla.jit reads the backend and ROBUSTJAX_XLA_OPTIONS); ``train_step`` is static,
    # so every fit that runs the same step function (every phase of it, every resume in a process)
    # reuses one compiled program. CPU: XLA's own convolutions (see robustjax.xla).
    return xla.jit(_step, static_argnums=0, donate_argnums=1)


def _compile_step(train_step: Callable, phase_key: jax.Array) -> Callable:
    """``(state, batch, step) -> (state, metrics)``: ``train_step`` jitted with the state donated and the
    step key ``fold_in(phase_key, step)`` computed inside the compiled function."""
    return functools.partial(_jitted_step(), train_step, phase_key=phase_key)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=True)


class _Window:
    """Step metrics summed on device since the last log line."""

    def __init__(self, since: int):
        self.sums, self.count, self.since, self.t0 = None, 0, since, time.perf_counter()

    def add(self, metrics) -> None:
        self.sums = metrics if self.sums is None else jax.tree.map(jnp.add, self.sums, metrics)
        self.count += 1


class _Run:
    """One call of ``fit``: the defense, data, options, checkpoint manager, metric writer and stop flag."""

    def __init__(self, defense, train_ds, key, options: LoopOptions, mngr, writer, stop, last_saved):
        self.defense, self.train_ds, self.key, self.options = defense, train_ds, key, options
        self.mngr, self.writer, self.stop, self.last_saved = mngr, writer, stop, last_saved
        self.offsets = _phase_offsets(defense)

    def _global(self, phase_index: int, step: int) -> tuple[int, int, int]:
        """(phase, step, global step); the end of a phase is stored as the start of the next one."""
        phases = self.defense.phases
        if step >= phases[phase_index].num_steps and phase_index + 1 < len(phases):
            phase_index, step = phase_index + 1, 0
        return phase_index, step, self.offsets[phase_index] + step

    def _newest_hint(self) -> str:
        if self.last_saved is None:
            return "No checkpoint was written yet. "
        return (f"The newest checkpoint (global step {self.last_saved}) is finite: a re-run resumes from it "
                "(with a changed config: a fresh --workdir, or --allow_config_change to continue this one). ")

    def save(self, phase_index: int, step: int, state: State, *, interrupting: bool = False) -> int | None:
        """Checkpoints ``state`` as the result of ``step`` steps of phase ``phase_index``.

        Returns the global step saved; None (when ``interrupting``) for a state holding NaN/inf, which is
        never written. Otherwise such a state raises NonFiniteLossError.
        """
        name = self.defense.phases[phase_index].name
        p, s, global_step = self._global(phase_index, step)
        if self.last_saved == global_step:
            return global_step
        if not bool(_all_finite(state)):
            if interrupting:
                return None
            raise NonFiniteLossError(
                f"phase {phase_index} ({name!r}): the state holds NaN or inf values after global step "
                f"{global_step}; it was not checkpointed. {self._newest_hint()}Lower the learning rate, check "
                "the data for NaN pixels, or enable grad_clip")
        self.mngr.save(global_step, force=True, args=ocp.args.Composite(**{
            STATE_ITEM: ocp.args.StandardSave(state), META_ITEM: ocp.args.JsonSave({"phase": p, "step": s})}))
        self.last_saved = global_step
        return global_step

    def _stop(self, phase_index: int, done: int, state: State, signum: int | None, cause=None):
        """Saves ``state`` (the result of ``done`` steps of the phase) and raises Interrupted."""
        name = self.defense.phases[phase_index].name
        where = f"phase {phase_index} ({name!r}) step {done}"
        try:
            saved = self.save(phase_index, done, state, interrupting=True)
        except Exception as e:  # noqa: BLE001 - on the way out, the newest checkpoint stands
            saved, why = None, f"could not checkpoint it ({_one_line(e)})"
        else:
            why = "the state holds NaN or inf values: not checkpointed"
        if saved is not None:
            message = f"{_signal_name(signum)}: stopped after {where}, global step {saved}; checkpoint saved"
        else:
            message = (f"{_signal_name(signum)}: stopped after {where}; {why}; the newest checkpoint "
                       f"({self.last_saved if self.last_saved is not None else 'none'}) stands")
        print(f"[robustjax] {message}", file=sys.stderr, flush=True)
        raise Interrupted(message, signum, saved) from cause

    def stop_if_requested(self, phase_index: int, done: int, state: State) -> None:
        """The safe point: ``state`` holds exactly ``done`` steps of phase ``phase_index``."""
        if self.stop.signum is not None:
            self._stop(phase_index, done, state, self.stop.signum)

    def _log(self, phase_index: int, done: int, window: _Window, bar) -> None:
        phase, offset = self.defense.phases[phase_index], self.offsets[phase_index]
        means = {k: float(v) / window.count for k, v in jax.device_get(window.sums).items()}
        elapsed = time.perf_counter() - window.t0
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLossError(
                f"phase {phase_index} ({phase.name!r}): metric(s) {bad} became NaN/inf between steps "
                f"{window.since} and {done} (global steps {offset + window.since}-{offset + done}). "
                f"{self._newest_hint()}Lower the learning rate, check the data for NaN pixels, or enable "
                "grad_clip")
        self.writer.write({
            "phase": phase.name, "phase_index": phase_index, "step": done, "global_step": offset + done,
            "steps_per_sec": window.count / max(elapsed, 1e-9), **means,
        })
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()}, refresh=False)

    def phase(self, phase_index: int, state: State, first: int) -> State:
        """Runs phase ``phase_index`` from its step ``first`` to its end; returns the state."""
        phase, opts = self.defense.phases[phase_index], self.options
        if first >= phase.num_steps:
            return state
        offset = self.offsets[phase_index]
        step_fn = _compile_step(phase.train_step, jax.random.fold_in(self.key, phase_index))
        stream: Iterator = data_lib.train_batches(
            self.train_ds, opts.batch_size, seed=opts.seed + phase_index, start_step=first,
            process_index=opts.process_index, process_count=opts.process_count)
        if opts.prefetch:
            stream = data_lib.prefetch(stream, opts.prefetch)
        bar = _progress(phase.num_steps, first, f"{phase.name}", bool(opts.progress))
        window = _Window(first)
        done = first      # steps of this phase whose result `state` holds ...
        consistent = True  # ... unless a step call is under way (its input buffers may be donated)
        try:
            for step in range(first, phase.num_steps):
                self.stop_if_requested(phase_index, done, state)
                batch = next(stream)
                batch = {k: v for k, v in batch.items() if k in ("image", "label")}
                if opts.shard_batch is not None:
                    batch = opts.shard_batch(batch)
                consistent = False
                state, metrics = step_fn(state, batch, jnp.asarray(step, jnp.int32))
                done = step + 1
                consistent = True
                window.add(metrics)
                if bar is not None:
                    bar.update(1)
                if done % opts.log_every == 0 or done == phase.num_steps:
                    self._log(phase_index, done, window, bar)
                    window = _Window(done)
                if done % opts.checkpoint_every == 0 and done < phase.num_steps:
                    self.save(phase_index, done, state)
                if opts.on_step is not None:
                    opts.on_step(offset + done)
        except Interrupted:
            raise
        except KeyboardInterrupt as e:
            # Raised by on_step, or delivered asynchronously where the signal handlers could not be
            # installed (fit outside the main thread). Only a state between two steps may be saved.
            if not consistent:
                message = (f"KeyboardInterrupt inside step {done} of phase {phase_index} ({phase.name!r}): not "
                           f"checkpointed; the newest checkpoint ({self.last_saved}) stands")
                print(f"[robustjax] {message}", file=sys.stderr, flush=True)
                raise Interrupted(message, None, None) from e
            self._stop(phase_index, done, state, None, cause=e)
        finally:
            if bar is not None:
                bar.close()
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return state


def fit(defense: Defense, state: State, train_ds: data_lib.ArrayDataset, *, key: jax.Array,
        options: LoopOptions) -> State:
    """Runs every phase of ``defense`` on ``train_ds``, resuming from ``options.workdir`` if possible.

    Args:
      defense: the defense whose phases to run.
      state: a freshly initialised state (its structure is the restore target).
      train_ds: the training set.
      key: the run's training key (folded with phase index and step; never used directly).
      options: where to write, how often, and the hooks (:class:`LoopOptions`).

    Returns:
      The final state.

    Raises:
      NonFiniteLossError: a metric or the state became NaN/inf (the message names the phase, the step
        range and the newest checkpoint, which is finite).
      Interrupted: SIGINT/SIGTERM or a KeyboardInterrupt; the checkpoint of the last finished step was
        written first (``global_step``).
      CheckpointMismatchError: the workdir's checkpoints belong to a different model.
      ConfigError: a batch larger than the training set, or a checkpoint past the end of this run.
    """
    if len(train_ds) < options.batch_size:
        raise ConfigError(
            f"the training set has {len(train_ds)} examples, fewer than one batch of {options.batch_size}: "
            "lower data.batch_size or raise data.train_size")
    workdir = options.workdir
    os.makedirs(workdir, exist_ok=True)
    progress = sys.stderr.isatty() if options.progress is None else options.progress
    options = dataclasses.replace(options, progress=progress)
    mngr = _checkpoint_manager(workdir, options.keep_checkpoints)
    try:
        with _quiet_aborted_reads():
            return _fit(defense, state, train_ds, key, options, mngr)
    finally:
        mngr.wait_until_finished()
        mngr.close()


def _fit(defense: Defense, state: State, train_ds, key: jax.Array, options: LoopOptions,
         mngr: ocp.CheckpointManager) -> State:
    """``fit`` once the manager is open: restore (setting unusable checkpoints aside), then train."""
    workdir, phases = options.workdir, defense.phases
    writer = None
    try:
        found = _restore_newest_usable(mngr, state)
        for step, why in found.unusable:
            _warn(_unusable_message(str(mngr.directory), step, why, found, _set_aside(mngr, workdir, step)))
        if found.unusable:
            mngr.reload()
        state = found.state
        start_phase, start_step = (0, 0) if found.meta is None else (found.meta["phase"], found.meta["step"])
        if start_phase >= len(phases) or start_step > phases[start_phase].num_steps:
            raise ConfigError(
                f"checkpoint {mngr.directory}/{found.step} is at phase {start_phase} step {start_step}, past the "
                f"end of this run (phases {[(p.name, p.num_steps) for p in phases]}): it was trained longer "
                "than this config asks; evaluate it with the config it was trained with, or train this "
                "config in a fresh --workdir")
        if found.meta is not None:
            print(f"[robustjax] resuming from checkpoint {found.step}: phase {start_phase} "
                  f"({phases[start_phase].name}), step {start_step}", file=sys.stderr, flush=True)
        if options.on_start is not None:
            options.on_start(found.meta)
        writer = _MetricWriter(workdir, found.step or 0)
        with _StopRequest() as stop:
            run = _Run(defense, train_ds, key, options, mngr, writer, stop, found.step)
            for phase_index in range(start_phase, len(phases)):
                first = start_step if phase_index == start_phase else 0
                state = run.phase(phase_index, state, first)
                run.save(phase_index, phases[phase_index].num_steps, state)
            if phases:
                run.stop_if_requested(len(phases) - 1, phases[-1].num_steps, state)
            mngr.wait_until_finished()
    finally:
        if writer is not None:
            writer.close()
    return state


__all__ = [
    "LOSS_GROWTH", "LOSS_LIMIT", "Interrupted", "LoopOptions", "NonFiniteLossError", "checkpoint_steps", "fit",
    "loss_warnings", "read_metrics", "restore_latest",
]
