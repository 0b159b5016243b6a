"""The training loop: resume after a crash, an interrupt or a signal inside a step ends bit-identical to an
unbroken run; a NaN state is never checkpointed; damaged checkpoints are skipped with one line; a
checkpoint of another model fails in one line; metrics are logged once per step (docs/reliability.md)."""

import dataclasses
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import errors, experiment
from robustjax.config import base_config
from robustjax.defenses.base import Phase
from robustjax.train import loop


class Crash(RuntimeError):
    pass


def _config():
    c = base_config()
    c.data.name, c.data.source = "moons", "toy2d"
    c.data.num_points, c.data.batch_size = 256, 32
    c.model.name = "mlp"
    c.defense.name = "pgd_at"
    c.defense.attack = {"attack": "pgd", "eps": 0.05, "step_size": 0.02, "num_steps": 2, "random_start": True}
    c.train.steps = 9
    c.train.log_every = 2
    c.train.checkpoint_every = 2
    return c


def _toy_setup():
    config = _config()
    defense, train_ds, test_ds, info, spe = experiment.build(config)
    step = defense.phases[0].train_step
    # Two phases (with a partial epoch in each) so resume is tested across a phase boundary.
    two_phase = dataclasses.replace(defense, phases=(Phase("first", 5, step), Phase("second", 9, step)))
    init = jax.jit(two_phase.init)
    sample = train_ds.get(np.arange(config.data.batch_size))
    return two_phase, init, sample, train_ds


@pytest.fixture(scope="module")
def setup():
    return _toy_setup()


def _options(workdir, **kw):
    return loop.LoopOptions(**{**dict(workdir=str(workdir), batch_size=32, seed=3, log_every=2, checkpoint_every=3,
                                      progress=False), **kw})


def _fit(setup, workdir, defense=None, **kw):
    default, init, sample, train_ds = setup
    state = init(jax.random.PRNGKey(0), sample)
    return loop.fit(defense or default, state, train_ds, key=jax.random.PRNGKey(1), options=_options(workdir, **kw))


def _crash_at(n, exc=Crash):
    def hook(global_step):
        if global_step == n:
            raise exc(f"simulated failure at {n}")
    return hook


def _assert_same(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def unbroken_run(setup, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("unbroken")
    return _fit(setup, workdir), workdir


@pytest.fixture(scope="module")
def unbroken(unbroken_run):
    return unbroken_run[0]


@pytest.mark.parametrize("crash_step", [4, 8, 13])  # mid phase 1; mid phase 2 (after phase-end ckpt); late
def test_resume_after_crash_is_identical(setup, unbroken, tmp_path, crash_step):
    with pytest.raises(Crash):
        _fit(setup, tmp_path, on_step=_crash_at(crash_step))
    resumed = _fit(setup, tmp_path)
    _assert_same(resumed, unbroken)
    assert int(resumed["classifier"].step) == 14


def test_interrupt_checkpoints_the_current_step(setup, unbroken, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(setup, tmp_path, on_step=_crash_at(7, KeyboardInterrupt))
    # The interrupt saved step 7 itself (checkpoint_every=3 would otherwise have left step 6).
    _, meta = loop.restore_latest(str(tmp_path), setup[1](jax.random.PRNGKey(0), setup[2]))
    assert meta == {"phase": 1, "step": 2}
    _assert_same(_fit(setup, tmp_path), unbroken)


def test_finished_run_is_not_retrained(setup, unbroken, tmp_path):
    first = _fit(setup, tmp_path)
    calls = []
    again = _fit(setup, tmp_path, on_step=calls.append)
    assert calls == []
    _assert_same(again, first)


def test_metrics_are_logged_as_json_lines(setup, unbroken, tmp_path):
    _fit(setup, tmp_path)
    records = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert [r["global_step"] for r in records] == [2, 4, 5, 7, 9, 11, 13, 14]
    assert {"loss", "accuracy", "steps_per_sec", "phase"} <= set(records[0])
    assert all(np.isfinite(r["loss"]) for r in records)


def test_nan_loss_stops_naming_the_phase(setup, tmp_path):
    defense, init, sample, train_ds = setup

    def bad_step(state, batch, key):
        return state, {"loss": jnp.where(state["classifier"].step >= 0, jnp.nan, 0.0)}

    bad = dataclasses.replace(defense, phases=(Phase("exploding", 4, bad_step),))
    with pytest.raises(loop.NonFiniteLossError, match=r"phase 0 \('exploding'\).*loss.*steps 0 and 2"):
        loop.fit(bad, init(jax.random.PRNGKey(0), sample), train_ds, key=jax.random.PRNGKey(1),
                 options=loop.LoopOptions(workdir=str(tmp_path), batch_size=32, log_every=2, progress=False))


def test_batch_larger_than_dataset_is_rejected(setup, tmp_path):
    defense, init, sample, train_ds = setup
    with pytest.raises(ValueError, match="fewer than one batch"):
        loop.fit(defense, init(jax.random.PRNGKey(0), sample), train_ds, key=jax.random.PRNGKey(1),
                 options=loop.LoopOptions(workdir=str(tmp_path), batch_size=10**6, progress=False))


# ------------------------------------------------------------------------------------------------------
# Signals: SIGINT and SIGTERM only set a flag; the loop saves exactly the state it holds between steps.


class _Metrics(dict):
    """A step's metrics that send a signal the first time the loop flattens them (its bookkeeping)."""

    fire = None


def _flatten(m):
    fire, m.fire = m.fire, None
    if fire is not None:
        fire()
    return list(m.values()), tuple(m.keys())


jax.tree_util.register_pytree_node(_Metrics, _flatten, lambda keys, values: _Metrics(zip(keys, values)))


def _signal_in_step(monkeypatch, signums, at, where):
    """Wraps the loop's compiled steps so that ``signums`` reach this process during step call ``at`` (the
    at-th step of the next fit): ``where="in_call"``: inside the step call, after the update consumed the
    donated state and before the new state is returned; ``where="after_update"``: when the loop first
    touches the step's metrics, after the update and before its bookkeeping. Returns the signals sent."""
    real, calls, sent = loop._compile_step, [0], []

    def fire():
        for signum in signums:
            sent.append(signum)
            os.kill(os.getpid(), signum)

    def compile_step(*args, **kwargs):
        fn = real(*args, **kwargs)

        def step(*a, **k):
            state, metrics = fn(*a, **k)
            metrics = _Metrics(metrics)
            calls[0] += 1
            if calls[0] == at:
                if where == "in_call":
                    fire()
                else:
                    metrics.fire = fire
            return state, metrics

        return step

    monkeypatch.setattr(loop, "_compile_step", compile_step)
    return sent


@pytest.mark.parametrize("where", ["in_call", "after_update"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_inside_a_step_checkpoints_that_step_and_resumes_identical(setup, unbroken, tmp_path, monkeypatch,
                                                                           signum, where):
    # The 7th step call takes global step 6 -> 7: phase 1 ('second'), its step 1 -> 2, the 2nd of a log
    # window (so the loop touches its metrics right away). Checkpoints fall at 3, 5, 8: neither 6 (where an
    # off-by-one save lands) nor 7 is one, so only the save on the signal can put a checkpoint there.
    sent = _signal_in_step(monkeypatch, [signum], at=7, where=where)
    handler = signal.getsignal(signum)
    with pytest.raises(loop.Interrupted) as info:
        _fit(setup, tmp_path)
    assert sent == [signum]
    assert info.value.signum == signum and info.value.global_step == 7
    assert info.value.exit_status == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum]
    assert signal.getsignal(signum) == handler  # fit puts the handlers back
    _, meta = loop.restore_latest(str(tmp_path), setup[1](jax.random.PRNGKey(0), setup[2]))
    assert meta == {"phase": 1, "step": 2}  # the state held 7 updates and was saved as 7 steps
    assert loop.checkpoint_steps(str(tmp_path)) == [5, 7]
    monkeypatch.undo()
    resumed = _fit(setup, tmp_path)
    assert int(resumed["classifier"].step) == 14  # 14 updates in all, not 15
    _assert_same(resumed, unbroken)


def test_a_second_signal_stops_at_once_and_the_previous_checkpoint_stands(setup, unbroken, tmp_path, monkeypatch):
    sent = _signal_in_step(monkeypatch, [signal.SIGTERM, signal.SIGTERM], at=7, where="in_call")
    with pytest.raises(loop.Interrupted, match="second SIGTERM") as info:
        _fit(setup, tmp_path)
    assert len(sent) == 2 and info.value.global_step is None
    assert loop.checkpoint_steps(str(tmp_path)) == [3, 5]
    monkeypatch.undo()
    _assert_same(_fit(setup, tmp_path), unbroken)


# ------------------------------------------------------------------------------------------------------
# NaN: a state holding NaN/inf is never written; a re-run resumes from the last finite checkpoint.


def _poisoned(step, after):
    """``step``, then every parameter NaN once the network has made more than ``after`` updates."""

    def poisoned(state, batch, key):
        state, metrics = step(state, batch, key)
        cls = state["classifier"]
        params = jax.tree.map(lambda p: jnp.where(cls.step > after, jnp.nan, p), cls.params)
        return {**state, "classifier": cls.replace(params=params)}, metrics

    return poisoned


def test_nan_state_is_never_checkpointed_and_a_rerun_resumes_from_the_last_finite_one(setup, unbroken, tmp_path,
                                                                                      capfd):
    defense = setup[0]
    bad = _poisoned(defense.phases[0].train_step, after=7)  # NaN from the 8th update on
    poisoned = dataclasses.replace(defense, phases=tuple(dataclasses.replace(p, train_step=bad) for p in defense.phases))
    # Checkpoints fall at global steps 3, 5 (phase end), 8, 11; step 8's state is the first NaN one.
    with pytest.raises(loop.NonFiniteLossError, match=r"phase 1 \('second'\): the state holds NaN or inf values "
                                                      r"after global step 8; it was not checkpointed\. The newest "
                                                      r"checkpoint \(global step 5\) is finite"):
        _fit(setup, tmp_path, defense=poisoned, log_every=100)
    assert loop.checkpoint_steps(str(tmp_path)) == [3, 5]
    capfd.readouterr()
    resumed = _fit(setup, tmp_path)  # the sane step function, same config
    assert "resuming from checkpoint 5" in capfd.readouterr().err
    _assert_same(resumed, unbroken)


def test_interrupt_with_a_nan_state_writes_nothing(setup, tmp_path):
    defense = setup[0]
    bad = _poisoned(defense.phases[0].train_step, after=6)
    poisoned = dataclasses.replace(defense, phases=tuple(dataclasses.replace(p, train_step=bad) for p in defense.phases))
    with pytest.raises(loop.Interrupted, match="not checkpointed") as info:
        _fit(setup, tmp_path, defense=poisoned, log_every=100, on_step=_crash_at(7, KeyboardInterrupt))
    assert info.value.global_step is None and loop.checkpoint_steps(str(tmp_path)) == [3, 5]


# ------------------------------------------------------------------------------------------------------
# Damage: the newest checkpoint that restores is used; the others are named in one line and set aside.


@pytest.fixture(scope="module")
def crashed(setup, tmp_path_factory):
    """A run that crashed at global step 10: checkpoints 5 and 8 kept; metrics logged up to step 9."""
    workdir = tmp_path_factory.mktemp("crashed")
    with pytest.raises(Crash):
        _fit(setup, workdir, on_step=_crash_at(10))
    assert loop.checkpoint_steps(str(workdir)) == [5, 8]
    return workdir


def _nan_checkpoint(setup, workdir, step):
    """What an older robustjax could leave behind: a NaN state saved as checkpoint ``step``."""
    state = setup[1](jax.random.PRNGKey(0), setup[2])
    nan = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x, state)
    mngr = loop._checkpoint_manager(str(workdir), 3)
    mngr.save(step, args=loop.ocp.args.Composite(state=loop.ocp.args.StandardSave(nan),
                                                   meta=loop.ocp.args.JsonSave({"phase": 1, "step": 7})))
    mngr.wait_until_finished()
    mngr.close()


def _damage(kind, workdir, setup):
    """Damages checkpoint 8 (or adds a newer bad folder 12); returns the damaged step, None for none."""
    ckpt = os.path.join(workdir, "checkpoints", "8")
    if kind == "truncated data file":
        files = glob.glob(os.path.join(ckpt, "state", "**", "d", "*"), recursive=True)
        assert files
        for f in files:
            os.truncate(f, os.path.getsize(f) // 2)
    elif kind == "deleted data file":
        files = glob.glob(os.path.join(ckpt, "state", "**", "d", "*"), recursive=True)
        for f in files:
            os.remove(f)
    elif kind == "deleted _METADATA":
        os.remove(os.path.join(ckpt, "state", "_METADATA"))
    elif kind == "deleted meta":
        os.remove(os.path.join(ckpt, "meta", "metadata"))
    elif kind == "deleted state/":
        shutil.rmtree(os.path.join(ckpt, "state"))
    elif kind == "empty step folder":
        os.makedirs(os.path.join(workdir, "checkpoints", "12"))
        return 12
    elif kind == "NaN checkpoint":
        _nan_checkpoint(setup, workdir, 12)
        return 12
    elif kind == "leftover tmp folder":
        tmp = os.path.join(workdir, "checkpoints", "11.orbax-checkpoint-tmp-1700000000000000")
        os.makedirs(os.path.join(tmp, "state"))
        open(os.path.join(tmp, "state", "_METADATA"), "w").write("{")
        return None
    else:
        assert kind == "none"
        return None
    return 8


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # no stray tracebacks
@pytest.mark.parametrize("kind", [
    "none", "truncated data file", "deleted data file", "deleted _METADATA", "deleted meta", "deleted state/",
    "empty step folder", "NaN checkpoint", "leftover tmp folder",
])
def test_damaged_newest_checkpoint_falls_back_with_one_line(setup, unbroken, crashed, tmp_path, capfd, kind):
    workdir = tmp_path / "w"
    shutil.copytree(crashed, workdir)
    damaged = _damage(kind, str(workdir), setup)
    capfd.readouterr()
    resumed = _fit(setup, workdir)
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    if damaged is None:
        assert warnings == [], err
        assert "resuming from checkpoint 8" in err
    else:
        resumed_from = 5 if damaged == 8 else 8
        assert len(warnings) == 1, err
        assert f"checkpoints/{damaged} cannot be used" in warnings[0]
        assert f"resuming from checkpoint {resumed_from} instead" in warnings[0]
        assert f"moved it to {workdir / loop.DAMAGED_DIR}" in warnings[0]
        assert "Traceback" not in err and len(err.splitlines()) < 6, err
        assert os.listdir(workdir / loop.DAMAGED_DIR)[0].startswith(f"{damaged}-")
    _assert_same(resumed, unbroken)
    # keep_checkpoints=2 counts what is on disk: no damaged or temporary folder is left beside them.
    assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["11", "14"]
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["global_step"] for r in records] == [2, 4, 5, 7, 9, 11, 13, 14]  # step 9 replayed, logged once


def test_restore_latest_skips_a_damaged_checkpoint_without_moving_it(setup, crashed, tmp_path, capfd):
    workdir = tmp_path / "w"
    shutil.copytree(crashed, workdir)
    _damage("deleted _METADATA", str(workdir), setup)
    capfd.readouterr()
    _, meta = loop.restore_latest(str(workdir), setup[1](jax.random.PRNGKey(0), setup[2]))
    assert meta == {"phase": 1, "step": 0}  # checkpoint 5: the end of phase 0
    assert "checkpoints/8 cannot be used: its 'state' metadata (_METADATA) is missing" in capfd.readouterr().err
    assert loop.checkpoint_steps(str(workdir)) == [5, 8]


def test_a_checkpoint_of_another_model_fails_in_one_line(crashed, tmp_path):
    config = _config()
    config.model.hidden = [32, 64]
    defense, train_ds, _, _, _ = experiment.build(config)
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), train_ds.get(np.arange(32)))
    workdir = tmp_path / "w"
    shutil.copytree(crashed, workdir)
    with pytest.raises(errors.CheckpointMismatchError) as info:
        loop.fit(defense, state, train_ds, key=jax.random.PRNGKey(1),
                 options=_options(workdir, on_step=_crash_at(1)))
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"{workdir}/checkpoints/8 was written by a different model: classifier.params.fc1.bias was "
                       "saved with shape (64,) but the model expects (32,); resume this workdir with the config it "
                       "was trained with, or train this config in a fresh --workdir")
    assert loop.checkpoint_steps(str(workdir)) == [5, 8]


def test_a_checkpoint_past_the_end_of_the_run_is_refused(setup, unbroken_run, tmp_path):
    workdir = tmp_path / "w"
    shutil.copytree(unbroken_run[1], workdir)
    defense = setup[0]
    shorter = dataclasses.replace(defense, phases=(defense.phases[0], dataclasses.replace(defense.phases[1], num_steps=4)))
    with pytest.raises(errors.ConfigError, match=r"checkpoints/14 is at phase 1 step 9, past the end of this run"):
        _fit(setup, workdir, defense=shorter)


def test_loop_options_are_checked(tmp_path):
    with pytest.raises(errors.ConfigError, match="log_every must be a positive integer, got 0"):
        loop.LoopOptions(workdir=str(tmp_path), batch_size=8, log_every=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        loop.LoopOptions(workdir=str(tmp_path), batch_size=-1)


def test_a_batch_that_does_not_split_over_the_devices_is_a_config_error():
    from types import SimpleNamespace

    from robustjax.train import sharding

    with pytest.raises(errors.ConfigError, match=r"config\.data\.batch_size=30 does not divide evenly over 4 "
                                                 r"devices; use a multiple of 4 \(e\.g\. 28\)"):
        sharding.check_batch_size(30, SimpleNamespace(devices=np.empty(4)))
    sharding.check_batch_size(32, SimpleNamespace(devices=np.empty(4)))


def test_loss_warnings_flag_a_loss_that_explodes_without_nan():
    def records(values, phase="train"):
        return [{"phase": phase, "phase_index": 0, "global_step": 10 * (i + 1), "loss": v, "accuracy": 0.5}
                for i, v in enumerate(values)]

    assert loop.loss_warnings(records([2.3, 1.0, 0.4])) == []
    assert loop.loss_warnings(records([0.7, 3.0, 60.0])) == []  # rising, but not a hundredfold
    [limit] = loop.loss_warnings(records([2.3, 1e27, 1e28, 5e5]))
    assert limit.startswith("phase 0 ('train'): loss reached 1e+28 at global step 30, above 1e+06")
    [growth] = loop.loss_warnings(records([2.0, 50.0, 400.0]))
    assert "loss ended at 400, more than 100x its first logged value (2)" in growth
    assert loop.loss_warnings(records([0.01, 0.5, 101.0]))  # a small start: measured against 1


# ------------------------------------------------------------------------------------------------------
# Devices: data parallel over 2 (simulated) devices gives the 1-device numbers up to rounding, and a run
# checkpointed on 2 devices resumes on 1.

_TWO_DEVICES = """
import sys
import jax
import numpy as np
jax.config.update("jax_disable_most_optimizations", True)
from robustjax.train import loop, sharding
from tests.test_train import Crash, _crash_at, _options, _toy_setup
defense, init, sample, train_ds = _toy_setup()
mesh = sharding.make_mesh()
assert mesh.devices.size == 2, mesh
shard = lambda batch: sharding.shard_batch(batch, mesh)
def fit(workdir, **kw):
    state = sharding.replicate(init(jax.random.PRNGKey(0), sample), mesh)
    return loop.fit(defense, state, train_ds, key=jax.random.PRNGKey(1), options=_options(workdir, shard_batch=shard, **kw))
state = fit(sys.argv[1] + "/full")
np.savez(sys.argv[1] + "/full.npz", *[np.asarray(x) for x in jax.tree.leaves(state)])
try:
    fit(sys.argv[1] + "/crashed", on_step=_crash_at(8))
except Crash:
    pass
"""


def test_two_devices_match_one_and_resume_on_one(setup, unbroken, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _TWO_DEVICES, str(tmp_path)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "full.npz") as saved:
        two = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    # Equal up to float32 rounding, not bit for bit: the gradient is summed over the devices in another
    # order (the differences after 14 steps are ~1e-9).
    _assert_close(two, unbroken)
    assert loop.checkpoint_steps(str(tmp_path / "crashed")) == [5, 8]
    _assert_close(_fit(setup, tmp_path / "crashed"), unbroken)  # written on 2 devices, resumed on 1


def _assert_close(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)
