"""The training loop: resume after a crash or an interrupt ends bit-identical to an unbroken run;
non-finite losses stop the run naming the phase; metrics are logged."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import experiment
from robustjax.config import base_config
from robustjax.defenses.base import Defense, Phase
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


@pytest.fixture(scope="module")
def setup():
    config = _config()
    defense, train_ds, test_ds, info, spe = experiment.build(config)
    step = defense.phases[0].train_step
    # Two phases (with a partial epoch in each) so resume is tested across a phase boundary.
    two_phase = dataclasses.replace(defense, phases=(Phase("first", 5, step), Phase("second", 9, step)))
    init = jax.jit(two_phase.init)
    sample = train_ds.get(np.arange(config.data.batch_size))
    return two_phase, init, sample, train_ds


def _fit(setup, workdir, **kw):
    defense, init, sample, train_ds = setup
    state = init(jax.random.PRNGKey(0), sample)
    return loop.fit(defense, state, train_ds, workdir=str(workdir), key=jax.random.PRNGKey(1),
                    batch_size=32, seed=3, log_every=2, checkpoint_every=3, progress=False, **kw)


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
def unbroken(setup, tmp_path_factory):
    return _fit(setup, tmp_path_factory.mktemp("unbroken"))


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
        loop.fit(bad, init(jax.random.PRNGKey(0), sample), train_ds, workdir=str(tmp_path),
                 key=jax.random.PRNGKey(1), batch_size=32, log_every=2, progress=False)


def test_batch_larger_than_dataset_is_rejected(setup, tmp_path):
    defense, init, sample, train_ds = setup
    with pytest.raises(ValueError, match="fewer than one batch"):
        loop.fit(defense, init(jax.random.PRNGKey(0), sample), train_ds, workdir=str(tmp_path),
                 key=jax.random.PRNGKey(1), batch_size=10**6, progress=False)
