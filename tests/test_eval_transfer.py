"""Black-box transfer: a run directory rebuilt from its config.json and checkpoint, the transfer matrix
across runs (Zantedeschi et al.'s Table 1) against a hand computation, and the ``transfer`` metric from a
run and from a standard model trained on the spot."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks, experiment
from robustjax import data as data_lib
from robustjax.config import base_config
from robustjax.evaluate import transfer

FGSM = {"attack": "fgsm", "eps": 0.1}


def _toy(seed, hidden, **metrics):
    c = base_config()
    c.seed = seed
    c.data.name, c.data.source, c.data.num_points, c.data.batch_size = "moons", "toy2d", 512, 64
    c.model.name, c.model.hidden = "mlp", hidden
    c.defense.name = "standard"
    c.train.steps, c.train.log_every, c.train.checkpoint_every, c.train.progress = 150, 50, 150, False
    c.train.optimizer.learning_rate = 1e-2
    c.eval.num_examples, c.eval.progress = 64, False
    c.eval.attacks = {"fgsm": dict(FGSM)}
    c.eval.diagnostics.enabled = False
    c.eval.metrics = metrics
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    a = str(tmp_path_factory.mktemp("run_a"))
    b = str(tmp_path_factory.mktemp("run_b"))
    ra = experiment.run(_toy(0, [32]), a)
    rb = experiment.run(_toy(1, [16, 16], t={"metric": "transfer", "source": a, "attack": dict(FGSM),
                                             "eps_grid": [0.1, 0.3]},
                             s={"metric": "transfer", "source": "standard", "model": {"name": "mlp", "hidden": [32]},
                                "steps": 200, "batch_size": 64, "learning_rate": 1e-2,
                                "attack": {"attack": "fgsm", "eps": 0.2}}), b)
    return (a, ra), (b, rb)


@pytest.fixture(scope="module")
def table(runs):
    (a, _), (b, _) = runs
    return transfer.transfer_matrix([a, b], FGSM, num_examples=64)


def test_a_run_is_rebuilt_from_its_config_and_checkpoint(runs):
    (a, ra), _ = runs
    defense, state, config, info = transfer.load_run(a)
    assert config.model.hidden == [32] and info.num_classes == 2
    _, test_ds, _ = data_lib.load(config.data)
    x = jnp.asarray(test_ds.get(np.arange(64))["image"])
    correct = np.asarray(defense.classifier(state)(x)).argmax(-1) == test_ds.labels[:64]
    assert correct.mean() == pytest.approx(ra["clean_accuracy"])  # the trained model, not a fresh init
    assert ra["clean_accuracy"] > 0.8


def test_transfer_matrix_by_hand_and_its_diagonal_is_white_box(runs, table):
    (a, ra), (b, rb) = runs
    assert table["rows"] == "crafted on" and table["columns"] == "tested on" and table["num_examples"] == 64
    assert table["names"] == [os.path.basename(a), os.path.basename(b)]
    acc = np.asarray(table["accuracy_on_adversarial"])
    assert acc.shape == (2, 2)
    # the diagonal is each run's own white-box FGSM (deterministic attack and model, same examples)
    assert acc[0, 0] == pytest.approx(ra["attacks"]["fgsm"]["accuracy_on_adversarial"])
    assert acc[1, 1] == pytest.approx(rb["attacks"]["fgsm"]["accuracy_on_adversarial"])
    assert table["clean_accuracy"] == [pytest.approx(ra["clean_accuracy"]), pytest.approx(rb["clean_accuracy"])]
    # an off-diagonal entry by hand: FGSM on a, scored by b
    da, sa, config, _ = transfer.load_run(a)
    db, sb, _, _ = transfer.load_run(b)
    _, test_ds, _ = data_lib.load(config.data)
    x, y = jnp.asarray(test_ds.get(np.arange(64))["image"]), jnp.asarray(test_ds.labels[:64])
    x_adv = attacks.fgsm(da.classifier(sa), x, y, eps=0.1)
    tested_b = np.asarray(db.classifier(sb)(x_adv)).argmax(-1) == np.asarray(y)
    clean_b = np.asarray(db.classifier(sb)(x)).argmax(-1) == np.asarray(y)
    assert acc[0, 1] == pytest.approx(tested_b.mean())
    assert table["robust_accuracy"][0][1] == pytest.approx((tested_b & clean_b).mean())
    json.dumps(table)  # plain values for results.json / the cross-run report
    assert "| crafted on \\ tested on |" in transfer.markdown_table(table)


def test_transfer_metric_from_a_run_is_that_column_of_the_matrix(runs, table):
    (a, _), (b, rb) = runs
    t = rb["metrics"]["t"]
    assert t["source"] == a and t["attack"] == "fgsm" and t["eps"] == 0.1 and t["num_examples"] == 64
    assert t["accuracy_on_adversarial"] == t["value"] == pytest.approx(table["accuracy_on_adversarial"][0][1])
    assert t["robust_accuracy"] == pytest.approx(table["robust_accuracy"][0][1])
    assert t["source_accuracy_on_adversarial"] == pytest.approx(table["accuracy_on_adversarial"][0][0])


def test_transfer_metric_eps_grid_is_a_black_box_curve_in_the_report(runs):
    (a, _), (b, rb) = runs
    t = rb["metrics"]["t"]
    curves = transfer.transfer_curves(a, [b], {"attack": "fgsm"}, [0.1, 0.3], num_examples=64)
    assert [p["eps"] for p in t["curve"]] == [0.1, 0.3]
    for got, want, src in zip(t["curve"], curves["curves"][0], curves["source_accuracy_on_adversarial"]):
        assert got["accuracy_on_adversarial"] == pytest.approx(want["accuracy_on_adversarial"])
        assert got["robust_accuracy"] == pytest.approx(want["robust_accuracy"])
        assert got["source_accuracy_on_adversarial"] == pytest.approx(src)
    assert t["curve"][0]["accuracy_on_adversarial"] == pytest.approx(t["value"])   # the grid point at the spec's eps
    # the curve joins the white-box ones: results.json, the report's curve table and curves.png
    c = rb["curves"]["t"]
    assert c["black_box"] and c["source"] == a and c["norm"] == "linf"
    assert c["attack"] == f"fgsm, black-box from {os.path.basename(a)}"
    assert [p["accuracy_on_adversarial"] for p in c["points"]] == [p["accuracy_on_adversarial"] for p in t["curve"]]
    saved = json.load(open(os.path.join(b, "results.json")))
    assert saved["curves"]["t"]["points"] == c["points"]
    report = open(os.path.join(b, "report.md")).read()
    assert f"**t** (fgsm, black-box from {os.path.basename(a)}, linf)" in report
    assert "s" not in rb["curves"]   # a transfer metric without eps_grid draws no curve


def test_transfer_metric_eps_grid_errors(runs):
    from robustjax.evaluate import specs

    (a, _), _ = runs
    cfg = _toy(0, [8]).eval
    cfg.metrics = {"t": {"metric": "transfer", "source": a, "attack": {"attack": "deepfool"}, "eps_grid": [0.1]}}
    with pytest.raises(ValueError, match=r"metrics\.t\.eps_grid: 'deepfool' is a minimal-perturbation attack"):
        specs.resolve_metrics(cfg)
    cfg.metrics = {"t": {"metric": "transfer", "source": a, "attack": dict(FGSM), "eps_grid": [0.1, -0.2]}}
    with pytest.raises(ValueError, match=r"metrics\.t\.eps_grid\[1\]: must be a finite number > 0"):
        specs.resolve_metrics(cfg)
    cfg.curves = {"t": {"attack": "fgsm", "eps_grid": [0.1]}}
    cfg.metrics = {"t": {"metric": "transfer", "source": a, "attack": dict(FGSM), "eps_grid": [0.1]}}
    with pytest.raises(ValueError, match="the label 't', which config.eval.curves already uses"):
        specs.resolve_metrics(cfg)
    cfg.metrics = {"t": {"metric": "transfer", "source": a, "eps_grid": [0.05, 0.3],
                         "attack": {"attack": "pgd", "eps": 0.1, "num_steps": 5, "step_size": 0.01}}}
    cfg.curves = {}
    with pytest.raises(ValueError, match=r"metrics\.t\.attack\.step_size: a fixed step on a curve"):
        specs.resolve_metrics(cfg)


def test_transfer_metric_from_a_standard_model_trained_on_the_spot(runs):
    _, (_, rb) = runs
    s = rb["metrics"]["s"]
    assert s["source"] == "standard" and s["eps"] == 0.2
    assert s["source_clean_accuracy"] > 0.8                     # the surrogate did learn the task
    assert s["source_accuracy_on_adversarial"] < s["source_clean_accuracy"] - 0.2  # and its examples fool it
    assert 0.0 <= s["robust_accuracy"] <= s["accuracy_on_adversarial"] <= 1.0


def test_transfer_errors_name_the_problem(runs, tmp_path):
    (a, _), _ = runs
    with pytest.raises(ValueError, match="not a run directory: it has no config.json"):
        transfer.load_run(str(tmp_path))
    c = json.load(open(os.path.join(a, "config.json")))
    os.makedirs(tmp_path / "empty" / "checkpoints")
    json.dump(c, open(tmp_path / "empty" / "config.json", "w"))
    with pytest.raises(ValueError, match="no usable checkpoint"):
        transfer.load_run(str(tmp_path / "empty"))
    c["data"]["name"] = "circles"
    os.makedirs(tmp_path / "other")
    json.dump(c, open(tmp_path / "other" / "config.json", "w"))
    with pytest.raises(ValueError, match=r"different datasets \['circles', 'moons'\]"):
        transfer.transfer_matrix([a, str(tmp_path / "other")], FGSM)
    with pytest.raises(ValueError, match=r"transfer_matrix\.attack_spec\.eps: missing"):
        transfer.transfer_matrix([a], {"attack": "fgsm"})


def test_transfer_curves_points_are_the_matrix_entries_and_by_hand(runs, table):
    (a, _), (b, _) = runs
    curves = transfer.transfer_curves(a, [b, a], {"attack": "fgsm"}, [0.1, 0.3], num_examples=64)
    assert curves["names"] == [os.path.basename(b), os.path.basename(a)] and curves["eps_grid"] == [0.1, 0.3]
    on_b, on_a = curves["curves"]
    assert [p["eps"] for p in on_b] == [0.1, 0.3]
    # eps 0.1 is column b / the diagonal of the matrix's row a (same examples, deterministic FGSM)
    assert on_b[0]["accuracy_on_adversarial"] == pytest.approx(table["accuracy_on_adversarial"][0][1])
    assert on_b[0]["robust_accuracy"] == pytest.approx(table["robust_accuracy"][0][1])
    assert on_a[0]["accuracy_on_adversarial"] == pytest.approx(curves["source_accuracy_on_adversarial"][0])
    # eps 0.3 by hand
    da, sa, config, _ = transfer.load_run(a)
    db, sb, _, _ = transfer.load_run(b)
    _, test_ds, _ = data_lib.load(config.data)
    x, y = jnp.asarray(test_ds.get(np.arange(64))["image"]), np.asarray(test_ds.labels[:64])
    x_adv = attacks.fgsm(da.classifier(sa), x, jnp.asarray(y), eps=0.3)
    assert on_b[1]["accuracy_on_adversarial"] == pytest.approx((np.asarray(db.classifier(sb)(x_adv)).argmax(-1) == y).mean())
    assert on_a[1]["accuracy_on_adversarial"] < on_a[0]["accuracy_on_adversarial"]   # a larger step fools a more
    json.dumps(curves)
    with pytest.raises(ValueError, match="eps_grid must be a non-empty list of radii > 0"):
        transfer.transfer_curves(a, [b], {"attack": "fgsm"}, [0.0, 0.1])
    with pytest.raises(ValueError, match="at least one target"):
        transfer.transfer_curves(a, [], {"attack": "fgsm"}, [0.1])
