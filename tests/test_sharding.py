"""Data parallelism over 8 devices: the same training as on 1 device for standard training (with
BatchNorm), PGD-AT and ATGAN; identical evaluation numbers; checkpoints that move between 8 devices and 1;
BatchNorm statistics over the global batch; which rows each process reads (robustjax/train/sharding.py,
docs/scaling.md).

The device count is fixed when JAX starts, so the 8-device side runs in ONE child process
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``) that does every 8-device check, and the 1-device
runs in another (both with a persistent compilation cache: every ``experiment.run`` builds new step
functions, and the cache compiles the same program once); the test process resumes the 8-device
checkpoint on its one device and compares. Every run goes through ``experiment.run``, as ``main.py`` does.
"""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import errors, experiment, xla
from robustjax import data as data_lib
from robustjax.config import base_config, optimizer
from robustjax.defenses.base import Defense, Phase
from robustjax.train import loop, sharding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRASH_AT = 3  # global step: inside ATGAN's second phase (2 loss-net steps, then 4 ATGAN steps)


class Crash(RuntimeError):
    pass


def crash_at(n):
    def hook(global_step):
        if global_step == n:
            raise Crash(f"simulated failure at global step {n}")
    return hook


def config(name: str):
    """Tiny configs of the three defenses; a batch of 32 splits into 4 rows per device on 8 devices."""
    c = base_config()
    c.data.train_size, c.data.test_size, c.data.batch_size = 128, 32, 32
    c.data.name, c.data.source, c.data.image_size = "digits", "digits", 8
    if name == "standard":  # the supervised skeleton with BatchNorm (a narrow ResNet-18)
        c.model.name, c.model.width = "resnet18", 0.125
        c.defense.name = "standard"
    elif name == "pgd_at":
        c.model.name, c.model.width = "small_cnn", 0.25
        c.defense.name = "pgd_at"
        c.defense.attack = {"attack": "pgd", "eps": 0.1, "step_size": 0.05, "num_steps": 2, "random_start": True}
    else:  # ATGAN: two phases, three networks; the generator has BatchNorm
        c.model.name, c.model.width = "small_cnn", 0.25
        c.defense.name = "atgan"
        c.defense.attack = {"attack": "pgd", "eps": 0.3, "step_size": 0.1, "num_steps": 2, "random_start": True}
        c.defense.adv_fraction = 0.5
        c.defense.generator, c.defense.generator_width = "mnist", 0.25
        c.defense.loss_net_epochs = 0.5  # 2 steps
    # SGD: an update is lr x gradient, so the two runs differ by rounding only. (Adam divides by sqrt(v):
    # a weight whose gradient is ~0 moves by up to ~lr on a rounding-level difference, in any two runs.)
    c.train.optimizer = optimizer("sgd", 0.02, momentum=0.9)
    c.train.steps = 4
    c.train.log_every, c.train.checkpoint_every, c.train.progress = 1, 2, False
    c.eval.num_examples, c.eval.batch_size, c.eval.num_pictures = 32, 32, 2
    # The diagnostics' gradient norms are floats whose last bits move with the device count (reduction
    # order); they are tested in test_eval_diagnostics. Here: the suite's accuracies, exactly.
    c.eval.diagnostics.enabled = False
    c.eval.attacks = {"pgd": {"attack": "pgd", "eps": 0.1, "step_size": 0.05, "num_steps": 2, "random_start": True}}
    return c


def template(name: str):
    """A freshly initialised state of ``config(name)`` on this process's default device (restore target)."""
    c = config(name)
    defense, train_ds, _, _, _ = experiment.build(c)
    sample = train_ds.get(np.arange(c.data.batch_size))
    return xla.jit(defense.init)(jax.random.PRNGKey(0), sample)


def numbers(results: dict) -> dict:
    """What a run reports about the model (not its timing or devices): wall times ("seconds") removed at
    every depth."""
    def untimed(v):
        if isinstance(v, dict):
            return {k: untimed(x) for k, x in v.items() if k != "seconds"}
        return [untimed(x) for x in v] if isinstance(v, list) else v

    return {k: untimed(v) for k, v in results.items() if k != "info" and not k.startswith("_")}


def metrics(workdir) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in loop.read_metrics(str(workdir))]


# The children. argv[1] is the shared directory. The 1-device child runs first; the 8-device child continues
# two of its workdirs (atgan-1-crashed, pgd_at-1-finished).
_PREAMBLE = r"""
import json, shutil, sys
import jax
import numpy as np
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_compilation_cache_dir", sys.argv[1] + f"/xla_cache_{jax.device_count()}")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
from robustjax import experiment
from robustjax.train import loop, sharding
from tests.test_sharding import Crash, CRASH_AT, config, crash_at, numbers, template
"""

_ONE_DEVICE = _PREAMBLE + r"""
tmp = sys.argv[1]
assert jax.device_count() == 1, jax.devices()
out = {}
for name in ("standard", "pgd_at"):
    out[name] = numbers(experiment.run(config(name), f"{tmp}/{name}-1"))
shutil.copytree(f"{tmp}/pgd_at-1", f"{tmp}/pgd_at-1-finished")     # the 8-device child evaluates it
try:
    experiment.run(config("atgan"), f"{tmp}/atgan-1", on_step=crash_at(CRASH_AT))
except Crash:
    pass
shutil.copytree(f"{tmp}/atgan-1", f"{tmp}/atgan-1-crashed")        # the 8-device child resumes it
out["atgan"] = numbers(experiment.run(config("atgan"), f"{tmp}/atgan-1"))
with open(f"{tmp}/one.json", "w") as f:
    json.dump(out, f)
"""

_CHILD = _PREAMBLE + r"""
tmp = sys.argv[1]
assert jax.device_count() == 8, jax.devices()
out = {}
for name in ("standard", "pgd_at"):
    out[name] = numbers(experiment.run(config(name), f"{tmp}/{name}-8"))
try:
    experiment.run(config("atgan"), f"{tmp}/atgan-8", on_step=crash_at(CRASH_AT))
except Crash:
    pass
shutil.copytree(f"{tmp}/atgan-8", f"{tmp}/atgan-8-crashed")        # the test process resumes it on 1 device
out["atgan"] = numbers(experiment.run(config("atgan"), f"{tmp}/atgan-8"))
out["atgan_1_resumed_on_8"] = numbers(experiment.run(config("atgan"), f"{tmp}/atgan-1-crashed"))
out["pgd_at_1_evaluated_on_8"] = numbers(experiment.run(config("pgd_at"), f"{tmp}/pgd_at-1-finished"))

# Orbax restores a 1-device checkpoint straight onto the mesh (the target's sharding).
mesh = sharding.make_mesh()
state, meta = loop.restore_latest(f"{tmp}/pgd_at-1-finished", sharding.replicate(template("pgd_at"), mesh))
out["restored_device_counts"] = sorted({len(x.sharding.device_set) for x in jax.tree.leaves(state)})

# BatchNorm in train mode on a batch split over 8 devices: under jit the statistics are global.
import flax.linen as nn
from jax.sharding import NamedSharding, PartitionSpec as P
bn = nn.BatchNorm(use_running_average=False, momentum=0.0)   # momentum 0: running stats = batch stats
rng = np.random.default_rng(0)
x = (rng.normal(size=(64, 3)) + np.arange(64)[:, None] / 4.0).astype(np.float32)  # rows differ per device
variables = bn.init(jax.random.PRNGKey(0), x)
apply = lambda v, x: bn.apply(v, x, mutable=["batch_stats"])
xs = jax.device_put(x, NamedSharding(mesh, P("data")))
y8, s8 = jax.jit(apply)(variables, xs)
y1, s1 = jax.jit(apply)(variables, x)                          # the same program on one device
per_device = jax.shard_map(lambda v, x: apply(v, x)[1]["batch_stats"]["mean"][None], mesh=mesh,
                           in_specs=(P(), P("data")), out_specs=P("data"))(variables, xs)
out["bn"] = {
    "mean_8": np.asarray(s8["batch_stats"]["mean"]).tolist(), "mean_1": np.asarray(s1["batch_stats"]["mean"]).tolist(),
    "var_8": np.asarray(s8["batch_stats"]["var"]).tolist(), "var_1": np.asarray(s1["batch_stats"]["var"]).tolist(),
    "y_max_diff": float(np.abs(np.asarray(y8) - np.asarray(y1)).max()),
    "numpy_mean": x.mean(0).tolist(), "per_device_means": np.asarray(per_device).tolist(),
    "all_reduce_in_hlo": "all-reduce" in jax.jit(apply).lower(variables, xs).compile().as_text(),
}
with open(f"{tmp}/child.json", "w") as f:
    json.dump(out, f)
"""


def _child(script: str, tmp, devices: int) -> None:
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"{devices}-device child:\n{proc.stderr[-4000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every run, once: the 1-device ones in one child, the 8-device ones in another, and the 8 -> 1
    resume here."""
    tmp = tmp_path_factory.mktemp("sharding")
    _child(_ONE_DEVICE, tmp, 1)
    _child(_CHILD, tmp, 8)
    with open(tmp / "one.json") as f:
        one = json.load(f)
    with open(tmp / "child.json") as f:
        eight = json.load(f)
    resumed = experiment.run(config("atgan"), str(tmp / "atgan-8-crashed"))
    one["atgan_8_resumed_on_1"] = json.loads(json.dumps(numbers(resumed)))  # as the children's, through JSON
    return SimpleNamespace(tmp=tmp, one=one, eight=eight)


def _assert_states_close(a, b, init, what):
    """``a`` equals ``b`` up to float32 rounding: every float leaf to 1e-3 of how far training moved it
    from ``init`` (measured: at most 8e-5 with BatchNorm, 3e-7 without; a per-device BatchNorm or a
    wrong batch moves leaves by amounts of the order of the movement itself); integer leaves exactly."""
    paths = jax.tree_util.tree_flatten_with_path(init)[0]
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(paths) == len(leaves_a) == len(leaves_b), what
    for (path, x0), x, y in zip(paths, leaves_a, leaves_b):
        x0, x, y = np.asarray(x0), np.asarray(x), np.asarray(y)
        where = f"{what}: {jax.tree_util.keystr(path)}"
        if not np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_equal(x, y, err_msg=where)
            continue
        moved = float(np.abs(y.astype(np.float64) - x0).max()) if x.size else 0.0
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-3 * moved + 1e-7, err_msg=f"{where} (moved {moved:.3g})")


def _final_state(name, workdir):
    state, meta = loop.restore_latest(str(workdir), template(name))
    assert meta is not None, workdir
    return state


def _assert_metrics_close(a, b):
    assert [(r["phase"], r["step"]) for r in a] == [(r["phase"], r["step"]) for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                np.testing.assert_allclose(ra[k], rb[k], rtol=1e-4, atol=1e-6, err_msg=f"{k} at {ra['step']}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["standard", "pgd_at", "atgan"])
def test_eight_devices_train_what_one_device_trains(runs, name):
    one = _final_state(name, runs.tmp / f"{name}-1")
    eight = _final_state(name, runs.tmp / f"{name}-8")  # saved from the 8-device mesh, restored on 1
    _assert_states_close(eight, one, template(name), f"{name}: 8 devices vs 1")
    if name != "pgd_at":  # BatchNorm statistics moved, and match (standard: every conv; ATGAN: the generator)
        net = "classifier" if name == "standard" else "generator"
        stats = jax.tree.leaves(one[net].batch_stats)
        assert stats and any(np.abs(np.asarray(s)).max() > 1e-3 for s in stats)
    _assert_metrics_close(metrics(runs.tmp / f"{name}-8"), metrics(runs.tmp / f"{name}-1"))
    assert runs.eight[name] == runs.one[name]  # accuracies on 32 examples: equal, not just close


@pytest.mark.slow
def test_evaluation_on_eight_devices_is_identical(runs):
    # The finished 1-device run, evaluated again by the child on 8 devices (no training): same numbers.
    assert runs.eight["pgd_at_1_evaluated_on_8"] == runs.one["pgd_at"]
    assert runs.eight["restored_device_counts"] == [8]  # orbax put the 1-device checkpoint on the mesh


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["8 -> 1", "1 -> 8"])
def test_a_checkpoint_moves_between_eight_devices_and_one(runs, direction):
    resumed = {"8 -> 1": "atgan_8_resumed_on_1", "1 -> 8": "atgan_1_resumed_on_8"}[direction]
    workdir = {"8 -> 1": "atgan-8-crashed", "1 -> 8": "atgan-1-crashed"}[direction]
    results = runs.one[resumed] if direction == "8 -> 1" else runs.eight[resumed]
    assert results == runs.one["atgan"]
    _assert_states_close(_final_state("atgan", runs.tmp / workdir), _final_state("atgan", runs.tmp / "atgan-1"),
                         template("atgan"), f"ATGAN crashed at global step {CRASH_AT}, resumed {direction}")
    _assert_metrics_close(metrics(runs.tmp / workdir), metrics(runs.tmp / "atgan-1"))


@pytest.mark.slow
def test_batchnorm_statistics_are_over_the_global_batch(runs):
    bn = runs.eight["bn"]
    np.testing.assert_allclose(bn["mean_8"], bn["numpy_mean"], rtol=1e-5)
    np.testing.assert_allclose(bn["mean_8"], bn["mean_1"], rtol=1e-6)
    np.testing.assert_allclose(bn["var_8"], bn["var_1"], rtol=1e-5)
    assert bn["y_max_diff"] < 1e-5
    assert bn["all_reduce_in_hlo"]  # XLA reduces the moments across the devices
    # What per-device statistics (pmap without an axis name, or shard_map) would have used instead:
    # far from the global ones, so the checks above would catch them.
    per_device = np.asarray(bn["per_device_means"])
    assert per_device.shape == (8, 3)
    assert np.abs(per_device - np.asarray(bn["numpy_mean"])).max() > 1.0


# ----------------------------------------------------------------------------------------------------------
# Several processes for real: two main.py --distributed processes with 4 CPU devices each (8 in all), talking
# over the loopback interface (gloo), against one device in this process.


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_evaluate_what_one_device_does(tmp_path):
    from tests.test_config import load_config

    workdir = tmp_path / "two-processes"
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "main.py", "--distributed", f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
         f"--process_id={i}", "--config=configs/quickstart.py:smoke", f"--workdir={workdir}",
         "--config.eval.diagnostics.enabled=False"],  # float gradient norms: see config()
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"process {i}:\n{out[-3000:]}"

    config = load_config("quickstart.py", "smoke")
    config.eval.diagnostics.enabled = False
    one = experiment.run(config, str(tmp_path / "one-device"))
    with open(workdir / "results.json") as f:
        two = json.load(f)
    assert len(two["info"]["devices"]) == 8
    assert numbers(two) == json.loads(json.dumps(numbers(one)))  # the evaluation's numbers, exactly
    defense, train_ds, _, _, _ = experiment.build(config)
    init = xla.jit(defense.init)(jax.random.PRNGKey(0), train_ds.get(np.arange(config.data.batch_size)))
    restored = [loop.restore_latest(str(w), init)[0] for w in (workdir, tmp_path / "one-device")]
    _assert_states_close(restored[0], restored[1], init, "2 processes x 4 devices vs 1 device")
    # Process 0 alone writes metrics.jsonl: each record once, as one device writes them.
    _assert_metrics_close(metrics(workdir), metrics(tmp_path / "one-device"))


# ----------------------------------------------------------------------------------------------------------
# Several processes, simulated: which rows each reads, and the mesh it needs.


def _devices(owners):
    return [SimpleNamespace(process_index=p, id=100 * p + k) for k, p in enumerate(owners)]


def test_input_shard_follows_the_mesh_blocks():
    mesh = SimpleNamespace(devices=np.asarray(_devices([0, 0, 1, 1, 2, 2, 3, 3]), dtype=object))
    assert [sharding.input_shard(mesh, process_index=p) for p in range(4)] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    one = SimpleNamespace(devices=np.asarray(_devices([0] * 8), dtype=object))
    assert sharding.input_shard(one, process_index=0) == (0, 1)
    interleaved = SimpleNamespace(devices=np.asarray(_devices([0, 1, 0, 1]), dtype=object))
    with pytest.raises(ValueError, match="not one of equal contiguous blocks"):
        sharding.input_shard(interleaved, process_index=0)


def test_make_mesh_groups_each_process_s_devices():
    shuffled = [SimpleNamespace(process_index=p, id=i) for i, p in [(5, 1), (0, 0), (4, 1), (1, 0)]]
    assert [(d.process_index, d.id) for d in sharding.mesh_order(shuffled)] == [(0, 0), (0, 1), (1, 4), (1, 5)]
    mesh = sharding.make_mesh(jax.devices()[::-1])
    assert list(mesh.devices) == sharding.mesh_order(jax.devices())
    assert sharding.input_shard(mesh) == (0, 1)  # one process: the whole batch


def _noop_defense(steps):
    """A defense whose step changes nothing but a counter: the loop's data feeding in isolation."""
    def step(state, batch, key):
        return {"n": state["n"] + 1}, {"rows": jnp.asarray(batch["label"].shape[0], jnp.float32)}

    return Defense(name="noop", init=lambda key, batch: {"n": jnp.zeros((), jnp.int32)},
                   phases=(Phase("train", steps, step),), classifier=lambda state: (lambda x: x))


@pytest.mark.parametrize("process_count", [2, 4])
def test_simulated_processes_feed_the_step_their_rows_of_every_global_batch(tmp_path, process_count):
    """Several processes, simulated through LoopOptions(process_index, process_count): each process's
    loop hands shard_batch only its block of rows, and the blocks of all processes, in order, are the
    one-process global batches, from step 0 and after a crash and a resume (which seeks by the step)."""
    labels = np.arange(40, dtype=np.int32)
    train_ds = data_lib.ArrayDataset(np.zeros((40, 2), np.float32), labels)  # the label is the example's index
    steps, batch_size = 7, 8  # 5 steps per epoch: the run crosses an epoch boundary

    def fit(p, workdir, seen, on_step=None):
        def shard(local):  # records the process's rows; the global-size batch it returns is a stand-in
            seen.append(np.asarray(local["label"]))
            return {k: np.concatenate([v] * process_count) for k, v in local.items()}

        defense = _noop_defense(steps)
        options = loop.LoopOptions(workdir=str(workdir), batch_size=batch_size, seed=4, log_every=1,
                                   checkpoint_every=2, progress=False, shard_batch=shard, on_step=on_step,
                                   process_index=p, process_count=process_count)
        return loop.fit(defense, defense.init(None, None), train_ds, key=jax.random.PRNGKey(0), options=options)

    whole = [b["label"] for b, _ in zip(data_lib.train_batches(train_ds, batch_size, seed=4), range(steps))]
    rows = batch_size // process_count
    for p in range(process_count):
        seen = []
        assert int(fit(p, tmp_path / f"p{p}", seen)["n"]) == steps
        assert [s.tolist() for s in seen] == [w[p * rows:(p + 1) * rows].tolist() for w in whole]
        resumed = []
        with pytest.raises(Crash):
            fit(p, tmp_path / f"crash{p}", resumed, on_step=crash_at(5))
        assert loop.checkpoint_steps(str(tmp_path / f"crash{p}")) == [2, 4]
        fit(p, tmp_path / f"crash{p}", resumed)  # resumes at step 4
        assert [s.tolist() for s in resumed] == [w[p * rows:(p + 1) * rows].tolist() for w in whole[:5] + whole[4:]]


def test_loop_options_refuse_a_batch_that_does_not_split_over_the_processes(tmp_path):
    with pytest.raises(errors.ConfigError, match="batch_size 30 does not split evenly over 4 processes"):
        loop.LoopOptions(workdir=str(tmp_path), batch_size=30, process_index=1, process_count=4,
                         shard_batch=lambda b: b)
    with pytest.raises(errors.ConfigError, match="need shard_batch"):
        loop.LoopOptions(workdir=str(tmp_path), batch_size=32, process_index=1, process_count=4)


def test_several_processes_refuse_to_train_without_data_parallelism(monkeypatch, tmp_path):
    c = config("pgd_at")
    c.train.data_parallel = False
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(errors.ConfigError, match=r"config\.train\.data_parallel=False, but this run has 2 processes"):
        experiment.run(c, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()
