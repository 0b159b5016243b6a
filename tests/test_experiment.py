"""End to end: every config's smoke variant trains, evaluates and writes its report; main.py works
as the README says, and fails clearly on a bad config."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from robustjax import experiment
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


def _main(*args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


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
