"""End to end: every config's smoke variant trains, evaluates and writes its report; main.py works
as the README says, and fails clearly on a bad config."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from robustjax import experiment
from tests.conftest import MNIST_NPZ
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


@pytest.mark.parametrize("name", ["standard_mnist.py", "pgd_at_mnist.py"])
def test_mnist_smoke_on_real_npz(name, tmp_path):
    c = load_config(name, "smoke")
    c.data.source, c.data.path = "npz", MNIST_NPZ
    results = experiment.run(c, str(tmp_path))
    _check_report(tmp_path, results)
    assert results["info"]["num_train"] == c.data.train_size


def test_pgd_at_mnist_smoke_on_mock_tfds(tmp_path):
    with tfds.testing.mock_data(num_examples=160):
        results = experiment.run(load_config("pgd_at_mnist.py", "smoke"), str(tmp_path))
    _check_report(tmp_path, results)


def _main(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    return subprocess.run([sys.executable, "main.py", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


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
        (["--config=configs/quickstart.py:smoke", "--config.defense.eps=-0.1"], "config.defense.eps"),
    ],
)
def test_main_rejects_bad_configs_before_training(args, message, tmp_path):
    proc = _main(*args, f"--workdir={tmp_path / 'w'}")
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert not os.path.exists(tmp_path / "w" / "checkpoints")
