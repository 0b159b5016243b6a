"""The smoke variants of the distillation, feature-squeezing and Defense-GAN configs end to end through
experiment.run (offline, synthetic stand-in data, tiny models), and their evaluation wiring: the naive
attacker beside the adaptive one, margin-loss PGD beside the cross-entropy one, Defense-GAN's
expectation-over-transformation attack and its fresh random starts for every evaluation batch."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from robustjax import data as data_lib
from robustjax import evaluate, experiment
from tests.test_config import load_config


def _run(tmp_path_factory, name, model=None):
    c = load_config(name, "smoke")
    c.train.progress = False
    if model is not None:
        c.model = model
    workdir = str(tmp_path_factory.mktemp(name[:-3]))
    return c, workdir, experiment.run(c, workdir)


@pytest.fixture(scope="module")
def distillation_mnist(tmp_path_factory):
    return _run(tmp_path_factory, "distillation_mnist.py")


@pytest.fixture(scope="module")
def feature_squeezing_mnist(tmp_path_factory):
    return _run(tmp_path_factory, "feature_squeezing_mnist.py")


@pytest.fixture(scope="module")
def defense_gan_mnist(tmp_path_factory):
    return _run(tmp_path_factory, "defense_gan_mnist.py")


def _check_run(config, workdir, results, phases):
    for name in ("config.json", "results.json", "report.md", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert set(results["attacks"]) == set(config.eval.attacks)
    for label, r in results["attacks"].items():
        assert 0.0 <= r["robust_accuracy"] <= results["clean_accuracy"], label
        assert r["budget_violations"] == 0, label
    logged = [json.loads(line)["phase"] for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert sorted(set(logged)) == sorted(phases)


def test_distillation_smoke(distillation_mnist):
    c, workdir, results = distillation_mnist
    _check_run(c, workdir, results, ["teacher", "student"])
    assert results["info"]["steps"] == 2 * c.train.steps  # the teacher phase as long as the student's
    for label, spec in c.eval.attacks.items():
        if spec["attack"] == "pgd" and not label.endswith("_margin"):
            assert c.eval.attacks[f"{label}_margin"]["loss"] == "margin"


def test_distillation_cifar10_smoke(tmp_path_factory):
    assert load_config("distillation_cifar10.py", "smoke").model.name == "resnet18"
    # A small CNN in place of the ResNet18 (whose two train steps take most of this run's compile time;
    # python main.py --config=configs/distillation_cifar10.py:smoke runs the ResNet18).
    c, workdir, results = _run(tmp_path_factory, "distillation_cifar10.py", {"name": "small_cnn", "width": 0.25})
    _check_run(c, workdir, results, ["teacher", "student"])
    assert c.data.name == "cifar10" and c.defense.temperature == 100.0


def test_feature_squeezing_smoke_shows_the_naive_attacker_beside_bpda(feature_squeezing_mnist):
    c, workdir, results = feature_squeezing_mnist
    _check_run(c, workdir, results, ["train"])
    attacks = results["attacks"]
    adaptive = [label for label in attacks if not label.endswith("_naive")]
    assert adaptive and all(f"{label}_naive" in attacks for label in adaptive)
    for label in adaptive:
        assert attacks[f"{label}_naive"]["adaptive"] is False and "adaptive" not in attacks[label]
    # FGSM from a zero gradient does not move: the naive FGSM reports clean accuracy.
    assert attacks["fgsm_0p3_naive"]["robust_accuracy"] == results["clean_accuracy"]


def test_feature_squeezing_cifar10_smoke(tmp_path_factory):
    c, workdir, results = _run(tmp_path_factory, "feature_squeezing_cifar10.py")
    _check_run(c, workdir, results, ["train"])
    assert c.defense.bit_depth == 3 and any(label.endswith("_naive") for label in results["attacks"])


def test_defense_gan_smoke_is_randomised_with_naive_and_eot_attacks(defense_gan_mnist):
    c, workdir, results = defense_gan_mnist
    _check_run(c, workdir, results, ["gan", "classifier"])
    assert results["stochastic"] is True
    attacks = results["attacks"]
    assert attacks["pgd3_0p3_naive"]["adaptive"] is False
    eot = c.eval.attacks["apgd_eot_0p3"]
    assert eot["attack"] == "apgd" and eot["stochastic"] is True and eot["eot_iter"] >= 2
    assert attacks["apgd_eot_0p3"]["attack"] == "apgd"


def test_defense_gan_evaluation_draws_fresh_starts_for_every_batch():
    c = load_config("defense_gan_mnist.py", "smoke")
    defense, train_ds, test_ds, info, _ = experiment.build(c)
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), train_ds.get(np.arange(c.data.batch_size)))
    seen = []

    def recording(state):
        f = defense.classifier(state)

        def g(x, key):
            jax.debug.callback(lambda k: seen.append(np.asarray(k).tobytes()), jax.random.key_data(key))
            return f(x, key)

        return g

    watched = dataclasses.replace(defense, classifier=recording)
    eval_cfg = c.eval.copy_and_resolve_references()
    eval_cfg.num_examples, eval_cfg.batch_size = 8, 4  # two batches
    eval_cfg.attacks = {"fgsm": {"attack": "fgsm", "eps": 0.3}}
    eval_cfg.diagnostics.enabled = False  # the diagnostics' own draws are theirs to check
    ds = data_lib.ArrayDataset(test_ds.images[:8], test_ds.labels[:8])
    evaluate.evaluate(watched, state, ds, eval_cfg, jax.random.PRNGKey(1), bounds=info.bounds)
    # Clean predictions (2 batches), then per FGSM batch one draw for the attack and one for its prediction.
    assert len(seen) >= 6 and len(set(seen)) == len(seen)
