"""End to end: every config's smoke variant trains, evaluates and writes its report; main.py works
as the README says, fails clearly on a bad config, and exits 143/130 on SIGTERM/SIGINT after
checkpointing; a resume with a config that changes training is refused (docs/reliability.md)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import pytest
import tensorflow_datasets as tfds

from robustjax import data as data_lib
from robustjax import errors, experiment
from robustjax.config import base_config
from robustjax.train import loop
from tests.test_config import ROOT, load_config


def _check_report(workdir, results):
    for name in ("config.json", "results.json", "report.md", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert 0.0 <= results["clean_accuracy"] <= 1.0
    for label, r in results["attacks"].items():
        assert 0.0 <= r["robust_accuracy"] <= results["clean_accuracy"] + 1e-9, label
        assert r["budget_violations"] == 0, label
    saved = json.load(open(os.path.join(workdir, "results.json")))
    assert saved["clean_accuracy"] == results["clean_accuracy"]


def test_quickstart_smoke(tmp_path):
    results = experiment.run(load_config("quickstart.py", "smoke"), str(tmp_path))
    _check_report(tmp_path, results)
    assert set(results["attacks"]) == {"fgsm", "pgd20"}
    assert os.path.exists(tmp_path / "curves.png") and os.path.exists(tmp_path / "examples.png")
    # One way: the suite's pictures reach the report and the caller; results.json holds no "_" keys.
    assert set(results["_pictures"]) == {"fgsm", "pgd20"}
    assert results["_report"] == (tmp_path / "report.md").read_text()
    assert results["_paths"]["report"] == str(tmp_path / "report.md")
    assert not [k for k in json.load(open(tmp_path / "results.json")) if k.startswith("_")]


@pytest.mark.parametrize("name", ["standard_mnist.py", "pgd_at_mnist.py"])
def test_mnist_smoke_on_real_npz(name, tmp_path, mnist_npz):
    c = load_config(name, "smoke")
    c.data.source, c.data.path = "npz", mnist_npz
    results = experiment.run(c, str(tmp_path))
    _check_report(tmp_path, results)
    assert results["info"]["num_train"] == c.data.train_size


def test_pgd_at_mnist_smoke_on_mock_tfds(tmp_path):
    c = load_config("pgd_at_mnist.py", "smoke")
    c.data.source = "tfds"  # the tfds path itself, on tfds's mock data
    with tfds.testing.mock_data(num_examples=160):
        results = experiment.run(c, str(tmp_path))
    _check_report(tmp_path, results)


def _main(*args, cwd=ROOT, env=None, wait=True):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_DISABLE_MOST_OPTIMIZATIONS="1", **(env or {}))
    command = [sys.executable, os.path.join(ROOT, "main.py"), *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_main_without_workdir_writes_the_report_under_runs(tmp_path):
    """README command 1's way: no --workdir, run from another directory; the report lands in
    ./runs/<config>-<args>-<timestamp>/ and main.py prints it."""
    proc = _main(f"--config={ROOT}/configs/quickstart.py:smoke", "--config.train.steps=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = os.listdir(tmp_path / "runs")
    assert len(runs) == 1 and re.fullmatch(r"quickstart-smoke-\d{8}-\d{6}", runs[0]), runs
    report = tmp_path / "runs" / runs[0] / "report.md"
    assert report.exists()
    assert "Clean accuracy" in proc.stdout and f"runs/{runs[0]}/report.md" in proc.stdout
    assert "SMOKE RUN" in report.read_text()


def test_default_workdir_names_keep_config_arguments_readable():
    import main

    t = time.mktime((2026, 11, 23, 10, 15, 0, 0, 0, -1))
    assert main.default_workdir("configs/quickstart.py", t) == "runs/quickstart-20261123-101500"
    assert main.default_workdir("configs/atgan_svhn.py:eps_t=8", t) == "runs/atgan_svhn-eps_t8-20261123-101500"
    assert main.default_workdir("/x/configs/atgan_mnist.py:eps_t=0.2,frac=0.5,smoke", t) == (
        "runs/atgan_mnist-eps_t0.2-frac0.5-smoke-20261123-101500")
    assert main.default_workdir("configs/a.py:x=../../etc", t) == "runs/a-x....etc-20261123-101500"


def test_main_runs_quickstart_smoke_with_overrides(tmp_path):
    proc = _main("--config=configs/quickstart.py:smoke", f"--workdir={tmp_path}", "--config.train.steps=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Clean accuracy" in proc.stdout
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["train"]["steps"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=configs/no_such_config.py"], "no_such_config"),
        (["--config=configs/quickstart.py", "--config.train.epoch=3"], "epoch"),
        (["--config=configs/quickstart.py:smok"], "unknown config argument 'smok'"),
        (["--config=configs/quickstart.py:smoke", "--config.defense.attack.eps=-0.1"], "config.defense.attack.eps"),
    ],
)
def test_main_rejects_bad_configs_before_training(args, message, tmp_path):
    proc = _main(*args, f"--workdir={tmp_path / 'w'}")
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_main_user_error_is_one_line_unless_a_traceback_is_asked_for(tmp_path):
    bad = ["--config=configs/quickstart.py:smoke", "--config.defense.attack.eps=-0.1", f"--workdir={tmp_path / 'w'}"]
    proc = _main(*bad)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [
        "[robustjax] error: config.defense.attack.eps: must be a number >= 0 (inf allowed), got -0.1."]
    proc = _main("--config=configs/quickstart.py:smoke", "--config.data.source=npz",
                 f"--config.data.path={tmp_path / 'missing.npz'}", f"--workdir={tmp_path / 'w'}")
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("[robustjax] error: npz file ") and "missing.npz' does not exist" in line
    proc = _main(*bad, env={"ROBUSTJAX_TRACEBACK": "1"})
    assert proc.returncode != 0 and proc.returncode != 2
    assert "Traceback (most recent call last)" in proc.stderr and "ConfigError: config.defense.attack.eps" in proc.stderr


def test_main_diverged_training_is_one_line_with_status_3(tmp_path):
    proc = _main("--config=configs/quickstart.py:smoke", "--config.train.optimizer.learning_rate=1e38",
                 f"--workdir={tmp_path}")
    assert proc.returncode == 3, proc.stderr[-3000:]
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("[robustjax] error: phase 0 ('train'): metric(s) ['loss'] became NaN/inf")
    assert loop.checkpoint_steps(str(tmp_path)) == []


def _wait_for_training(workdir, proc, after_lines=0, timeout=240):
    path = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if os.path.exists(path) and len(open(path).readlines()) > after_lines:
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no training progress in {timeout}s: {proc.communicate()}")


def test_main_exits_143_on_sigterm_and_130_on_sigint_after_checkpointing(tmp_path):
    workdir = str(tmp_path / "w")
    args = ["--config=configs/quickstart.py:smoke", f"--workdir={workdir}", "--config.train.steps=100000",
            "--config.train.log_every=1", "--config.train.checkpoint_every=1000"]
    proc = _main(*args, wait=False)
    _wait_for_training(workdir, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    [saved] = loop.checkpoint_steps(workdir)  # the step the signal stopped at, not a periodic one
    assert f"SIGTERM: stopped after phase 0 ('train') step {saved}, global step {saved}; checkpoint saved" in err
    assert f"re-run the same command with --workdir={workdir} to resume" in err

    lines = len(open(os.path.join(workdir, "metrics.jsonl")).readlines())
    proc = _main(*args, wait=False)
    _wait_for_training(workdir, proc, after_lines=lines)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert f"resuming from checkpoint {saved}: phase 0 (train), step {saved}" in err
    assert "SIGINT: stopped after" in err and "Traceback" not in err
    steps = [json.loads(line)["global_step"] for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert steps == list(range(1, len(steps) + 1))  # every step logged once, none twice
    assert loop.checkpoint_steps(workdir)[-1] == steps[-1]


def _toy(**train):
    c = base_config()
    c.data.name, c.data.source, c.data.num_points, c.data.batch_size = "moons", "toy2d", 256, 32
    c.model.name, c.defense.name = "mlp", "standard"
    c.train.steps, c.train.log_every, c.train.checkpoint_every, c.train.progress = 6, 2, 3, False
    c.eval.num_examples = 32
    c.train.update(train)
    return c


def test_resume_with_a_config_that_changes_training_is_refused_unless_allowed(tmp_path):
    w = str(tmp_path)
    first = experiment.run(_toy(), w)
    assert first["info"]["steps"] == 6
    saved_config = open(os.path.join(w, "config.json")).read()

    lr = _toy()
    lr.train.optimizer.learning_rate = 0.1
    with pytest.raises(errors.ConfigChangedError, match=r"config\.train\.optimizer\.learning_rate \(0\.001 -> 0\.1\) "
                                                        r"change training.*fresh --workdir.*--allow_config_change"):
        experiment.run(lr, w)
    # Fewer steps: refused, and even when allowed the longer-trained checkpoint is not evaluated as 3 steps.
    with pytest.raises(errors.ConfigChangedError, match=r"config\.train\.steps \(6 -> 3\)"):
        experiment.run(_toy(steps=3), w)
    with pytest.raises(errors.ConfigError, match="past the end of this run"):
        experiment.run(_toy(steps=3), w, allow_config_change=True)
    assert open(os.path.join(w, "config.json")).read() == saved_config
    assert json.load(open(os.path.join(w, "results.json")))["info"]["steps"] == 6

    longer = experiment.run(_toy(steps=8), w, allow_config_change=True)
    assert longer["info"]["steps"] == 8 and json.load(open(os.path.join(w, "config.json")))["train"]["steps"] == 8
    [record] = [r for r in experiment.config_changes(w) if r["alters_training"]]
    assert record["changed"]["train.steps"] == [6, 8] and record["alters_training"] == ["train.steps"]
    assert "CONFIG CHANGED DURING TRAINING: config.train.steps changed on a resume" in longer["_report"]


def test_resume_may_change_evaluation_and_logging_and_records_it(tmp_path):
    w = str(tmp_path)
    experiment.run(_toy(), w)
    c = _toy(log_every=3, checkpoint_every=2, keep_checkpoints=3)
    c.eval.num_examples = 16
    results = experiment.run(c, w)
    assert results["num_examples"] == 16
    [record] = experiment.config_changes(w)
    assert record["alters_training"] == []
    assert set(record["changed"]) == {"eval.num_examples", "train.log_every", "train.checkpoint_every",
                                      "train.keep_checkpoints"}
    assert "CONFIG CHANGED DURING TRAINING" not in results["_report"]


def test_resume_with_the_same_data_file_spelled_another_way_is_not_a_training_change(tmp_path, monkeypatch):
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.savez(data / "d.npz", x_train=rng.random((64, 8, 8, 1), np.float32), y_train=rng.integers(0, 2, 64),
             x_test=rng.random((16, 8, 8, 1), np.float32), y_test=rng.integers(0, 2, 16))

    def cfg(path):
        c = _toy()
        c.data.name, c.data.source, c.data.path = "mnist", "npz", path
        c.model.name, c.model.hidden = "mlp", [8]
        c.eval.attacks, c.eval.curves, c.eval.metrics = {}, {}, {}
        c.eval.num_examples, c.eval.diagnostics.enabled = 16, False
        return c

    w = str(tmp_path / "run")
    experiment.run(cfg(str(data / "d.npz")), w)
    monkeypatch.chdir(data)
    results = experiment.run(cfg("d.npz"), w)     # relative, from another working directory: same file
    [record] = experiment.config_changes(w)
    assert record["changed"] == {"data.path": [str(data / "d.npz"), "d.npz"]} and record["alters_training"] == []
    assert results["info"]["steps"] == 6
    (data / "e.npz").write_bytes((data / "d.npz").read_bytes())   # a copy is another file: refused
    with pytest.raises(errors.ConfigChangedError, match=r"config\.data\.path"):
        experiment.run(cfg("e.npz"), w)
    # a run started with a relative path: the directory it was relative to is unknown, so the same name read
    # from here could be another file; refused, even where it happens to be the same one
    w2 = str(tmp_path / "run2")
    experiment.run(cfg("d.npz"), w2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(errors.ConfigChangedError, match=r"config\.data\.path"):
        experiment.run(cfg(str(data / "d.npz")), w2)


def test_quick_eval_preset_is_stated_at_the_top_of_the_report(tmp_path):
    c = _toy()
    c.eval.attacks = {"pgd1000": {"attack": "pgd", "eps": 0.3, "num_steps": 1000, "step_size": 0.01}}
    c.eval.diagnostics.enabled = False
    c.eval.preset = "quick"
    results = experiment.run(c, str(tmp_path))
    assert results["eval_preset"] == {"preset": "quick", "changed": {"attacks.pgd1000.num_steps": [1000, 200]}}
    head = results["_report"].split("## ")[0]
    assert "EVALUATION PRESET QUICK: loop counts capped: weaker attacks" in head and "num_steps 1000->200" in head
    assert json.load(open(tmp_path / "results.json"))["eval_preset"] == results["eval_preset"]
    assert json.load(open(tmp_path / "config.json"))["eval"]["attacks"]["pgd1000"]["num_steps"] == 1000  # as asked
    # the suite applies the preset itself: a library caller of evaluate() gets the same record
    from robustjax import evaluate as evaluate_lib
    from robustjax.evaluate import transfer

    defense, state, _, info = transfer.load_run(str(tmp_path))
    _, test_ds, _ = data_lib.load(c.data)
    direct = evaluate_lib.evaluate(defense, state, test_ds, c.eval, jax.random.PRNGKey(0), bounds=info.bounds)
    assert direct["eval_preset"] == results["eval_preset"]
    c.eval.preset = "full"   # evaluation only: the finished run is re-evaluated in full, nothing retrained
    again = experiment.run(c, str(tmp_path))
    assert "eval_preset" not in again and "EVALUATION PRESET" not in again["_report"]


def test_a_loss_that_explodes_without_nan_is_a_warning_in_the_report(tmp_path):
    c = _toy(steps=20, log_every=5)
    c.train.optimizer.learning_rate = 1e6  # Adam: finite losses around 1e20, no NaN
    results = experiment.run(c, str(tmp_path))
    assert results["warnings"] and all("training diverged" in w for w in results["warnings"])
    assert "- WARNING: phase 0 ('train'): loss reached" in results["_report"]
    assert json.load(open(tmp_path / "results.json"))["warnings"] == results["warnings"]
    assert "warnings" not in experiment.run(_toy(), str(tmp_path / "sane"))
