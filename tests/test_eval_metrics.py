"""The evaluation's metrics against hand computations on a linear model (every minimal perturbation has a
closed form there), the suite's accuracy definitions, the detector curves, and the config checks of
``config.eval.metrics`` / ``detector`` / ``diagnostics`` (robustjax.evaluate.specs)."""

from __future__ import annotations

import json
import re
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from robustjax import attacks, data as data_lib
from robustjax.config import base_config, validate
from robustjax.defenses.base import Detector
from robustjax.evaluate import metrics, specs, suite

D, N = 16, 48
SHAPE = (4, 4, 1)


def _linear(state):
    return lambda x: x.reshape(x.shape[0], -1) @ state["W"] + state["b"]


@pytest.fixture(scope="module")
def problem():
    """A binary linear classifier z = (w.x + c, 0) on 4x4 images in [0.3, 0.7]: margin m = w.x + c,
    minimal L2 perturbation |m| / ||w||_2, minimal FGSM step |m| / ||w||_1 (no clipping at these sizes)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=D).astype(np.float32)
    x = rng.uniform(0.3, 0.7, size=(N,) + SHAPE).astype(np.float32)
    c = -float(w @ np.full(D, 0.5, np.float32))
    m = x.reshape(N, -1) @ w + c
    assert np.abs(m).max() < 2.0 and np.abs(m).min() > 1e-3
    pred = (m < 0).astype(np.int32)  # class 0 when its logit m is above class 1's 0
    y = pred.copy()
    y[:4] = 1 - y[:4]                # four examples the model gets wrong
    W = np.zeros((D, 2), np.float32)
    W[:, 0] = w
    state = {"W": jnp.asarray(W), "b": jnp.asarray([c, 0.0], jnp.float32)}
    train = rng.integers(0, 256, size=(300,) + SHAPE).astype(np.uint8)
    return dict(w=w, x=x, m=m, y=y, state=state, test=data_lib.ArrayDataset(x, y),
                train=data_lib.ArrayDataset(train, rng.integers(0, 2, 300).astype(np.int32)))


def _eval_cfg(**kw):
    e = base_config().eval
    e.num_examples, e.batch_size, e.progress = 0, 32, False
    e.diagnostics.enabled = False
    e.update(kw)
    return e


@pytest.fixture(scope="module")
def evaluated(problem):
    e = _eval_cfg()
    e.attacks = {"deepfool": {"attack": "deepfool", "num_steps": 5, "radii": [0.05, 0.1, 0.2]},
                 "fgsm": {"attack": "fgsm", "eps": 0.05},
                 "pgd": {"attack": "pgd", "eps": 0.05, "rel_step_size": 0.25, "num_steps": 8}}
    e.curves = {"pgd": {"attack": "pgd", "eps_grid": [0.0, 0.02, 0.1], "rel_step_size": 0.25, "num_steps": 8}}
    e.metrics = {"er": {"metric": "empirical_robustness"},
                 "dist": {"metric": "train_distance", "chunk_size": 128},
                 "dist_fgsm": {"metric": "train_distance", "attack": "fgsm", "chunk_size": 128},
                 "sens": {"metric": "loss_sensitivity"},
                 "rho": {"metric": "rho_adv", "num_bisection": 14}}
    results = suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(3),
                             train_ds=problem["train"])
    return e, results


# ---- pure parts -----------------------------------------------------------------------------------------


def test_rho_is_the_mean_norm_over_successful_examples_only():
    norms = np.array([1.0, 2.0, 4.0, 100.0])
    assert metrics.rho(norms, np.array([True, True, True, False])) == pytest.approx(7.0 / 3.0)
    assert metrics.rho(norms, np.zeros(4, bool)) is None


def test_accuracy_at_radius_uses_the_adversarial_example_only_within_the_radius():
    size = np.array([0.5, 1.0, 2.0, 0.0, 3.0])
    clean = np.array([True, True, True, False, True])
    adv = np.array([False, False, False, False, True])  # the last: the attack failed
    r = metrics.accuracy_at_radius(size, clean, adv, 1.0)
    # broken within 1.0: examples 0, 1; example 2 survives at 1.0 (needs 2.0); 3 is wrong clean; 4 unbroken
    assert r == {"robust_accuracy": pytest.approx(2 / 5), "accuracy_on_adversarial": pytest.approx(2 / 5)}
    assert metrics.accuracy_at_radius(size, clean, adv, 10.0)["robust_accuracy"] == pytest.approx(1 / 5)


def test_train_set_distance_matches_brute_force_over_chunks_and_query_blocks():
    rng = np.random.default_rng(1)
    train = data_lib.ArrayDataset(rng.integers(0, 256, (1000,) + SHAPE).astype(np.uint8), np.zeros(1000, np.int32))
    queries = rng.uniform(0, 1, (300,) + SHAPE).astype(np.float32)  # 2 query blocks of 256
    queries[:5] = train.get(np.arange(5))["image"]                   # exact members: distance 0
    got = metrics.train_set_distance(queries, train, chunk_size=333)  # 4 chunks, the last one padded
    t = train.images.reshape(1000, -1).astype(np.float64) / 255.0
    q = queries.reshape(300, -1).astype(np.float64)
    want = np.sqrt(((q[:, None, :] - t[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.all(got[:5] < 1e-5)
    assert metrics.train_set_distance(queries[:0], train).shape == (0,)


def test_train_set_distance_scales_to_the_60000_mnist_training_images(mnist_npz):
    import time

    d = np.load(mnist_npz)
    train = data_lib.ArrayDataset(d["x_train"], d["y_train"].astype(np.int32))
    rng = np.random.default_rng(0)
    queries = np.clip(d["x_test"][:300].astype(np.float32) / 255 + rng.normal(0, 0.1, (300, 28, 28, 1)), 0, 1)
    t0 = time.perf_counter()
    got = metrics.train_set_distance(queries, train)  # 15 blocks of 4096 images, 2 query blocks
    seconds = time.perf_counter() - t0
    t = train.images.reshape(60000, -1)
    for i in range(0, 300, 60):  # brute force for every 60th query, in chunks of the training set
        q = queries[i].reshape(-1).astype(np.float64)
        best = min(np.sqrt(((t[j:j + 10000].astype(np.float64) / 255 - q) ** 2).sum(1)).min()
                   for j in range(0, 60000, 10000))
        assert got[i] == pytest.approx(best, rel=1e-5)
    print(f"train_set_distance: 300 queries x 60000 MNIST images in {seconds:.1f}s")


def test_loss_gradient_norms_match_the_closed_form_of_a_linear_softmax():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(D, 3)).astype(np.float32)
    x = rng.uniform(0, 1, (5, D)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0], np.int32)
    got = metrics.loss_gradient_norms(lambda v: v @ W, jnp.asarray(x), jnp.asarray(y))
    z = x @ W
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[y]) @ W.T  # d CE / dx = W (softmax - onehot)
    np.testing.assert_allclose(got, np.linalg.norm(grad, axis=1), rtol=1e-5)


def test_threshold_sweep_and_ratio_curves_by_hand():
    clean_scores = np.array([0.1, 0.6, 0.3, 0.9])
    clean_correct = np.array([True, True, False, True])
    adv = {"a": (np.array([0.7, 0.2, 0.8, 0.4]), np.array([False, True, False, False]))}
    sweep = metrics.threshold_sweep(clean_scores, clean_correct, adv, [0.5, 0.75])
    # t = 0.5: clean flagged {0.6, 0.9} -> correct & unflagged = {0.1} -> 1/4; adv flagged {0.7, 0.8} | correct {1}
    assert sweep["flagged_clean"] == [0.5, 0.25]
    assert sweep["clean_accuracy_with_detector"] == [0.25, 0.5]
    assert sweep["attacks"]["a"]["accuracy_with_detector"] == [0.75, 0.5]
    curves = metrics.ratio_curves(sweep, 0.5, clean_accuracy=0.75, accuracy_on_adversarial={"a": 0.25},
                                  ratios=[0.0, 0.5, 1.0])
    c = curves["attacks"]["a"]
    np.testing.assert_allclose(c["with_detector"], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(c["classifier_only"], [0.75, 0.5, 0.25])
    np.testing.assert_allclose(c["best_threshold_accuracy"], [0.5, 0.5, 0.75])
    assert c["best_threshold"] == [0.75, 0.5, 0.5]


# ---- the suite on the linear model ----------------------------------------------------------------------


def test_empirical_robustness_is_the_minimal_fgsm_step_over_the_image_norm(problem, evaluated):
    _, results = evaluated
    w, x, m = problem["w"], problem["x"].reshape(N, -1), problem["m"]
    eps = np.abs(m) / np.abs(w).sum()                             # FGSM flips at |m| / ||w||_1
    ratio = eps * math.sqrt(D) / np.linalg.norm(x, axis=1)         # every pixel moves by eps
    er = results["metrics"]["er"]
    assert er["flipped"] == 1.0 and er["num_examples"] == N
    precision = 1.0 / 32 / 2 ** 10                                 # eps_max / num_grid / 2**num_bisection
    assert er["value"] == pytest.approx(ratio.mean(), abs=precision * math.sqrt(D) / 1.0)
    assert er["mean_eps"] == pytest.approx(eps.mean(), abs=precision)


def test_rho_adv_is_the_mean_minimal_l2_perturbation_to_the_stated_precision(problem, evaluated):
    _, results = evaluated
    r = results["metrics"]["rho"]
    want = np.abs(problem["m"]) / np.linalg.norm(problem["w"])     # distance to the hyperplane
    assert r["norm"] == "l2" and r["eps_hi"] == pytest.approx(math.sqrt(D))  # the box's diameter
    assert r["precision"] == pytest.approx(math.sqrt(D) / 2 ** 14)
    assert r["not_flipped"] == 0.0 and r["lower_bound"] is False
    assert r["value"] == pytest.approx(want.mean(), abs=2 * r["precision"])
    assert r["median"] == pytest.approx(np.median(want), abs=2 * r["precision"])


def test_rho_adv_with_the_margin_loss_measures_a_saturated_softmax_that_ce_pgd_cannot_move(problem):
    """The linear model's logits times 1e6 (a softmax saturated like a distilled network's at T = 1): the
    cross-entropy's input gradient is exactly zero, so CE-PGD never flips and rho_adv is only a lower bound;
    the margin loss keeps its gradient and finds the same hyperplane distances as on the unscaled model."""
    e = _eval_cfg(metrics={"ce": {"metric": "rho_adv", "num_bisection": 10},
                           "margin": {"metric": "rho_adv", "num_bisection": 10, "loss": "margin"}})
    results = suite.evaluate(lambda s: (lambda x: 1e6 * _linear(s)(x)), problem["state"], problem["test"], e,
                             jax.random.PRNGKey(3))
    ce, margin = results["metrics"]["ce"], results["metrics"]["margin"]
    assert ce["loss"] == "ce" and ce["lower_bound"] is True and ce["not_flipped"] == 1.0
    assert ce["value"] == pytest.approx(ce["eps_hi"])
    want = np.abs(problem["m"]) / np.linalg.norm(problem["w"])
    assert margin["loss"] == "margin" and margin["not_flipped"] == 0.0 and margin["lower_bound"] is False
    assert margin["value"] == pytest.approx(want.mean(), abs=2 * margin["precision"])


def test_loss_sensitivity_is_the_mean_per_example_gradient_norm(problem, evaluated):
    _, results = evaluated
    m, y, w = problem["m"], problem["y"], problem["w"]
    p0 = 1.0 / (1.0 + np.exp(-m))                                  # softmax of (m, 0)
    norms = np.abs(p0 - (y == 0)) * np.linalg.norm(w)              # d CE / dx = (p0 - [y = 0]) w
    assert results["metrics"]["sens"]["value"] == pytest.approx(norms.mean(), rel=1e-4)
    assert results["metrics"]["sens"]["median"] == pytest.approx(np.median(norms), rel=1e-4)


def test_train_distance_of_the_minimal_fgsm_and_of_an_attack_by_brute_force(problem, evaluated):
    _, results = evaluated
    f = _linear(problem["state"])
    x_adv, _, flipped = metrics.minimal_fgsm_perturbation(f, jnp.asarray(problem["x"]), eps_max=1.0, num_grid=32,
                                                          num_bisection=10, bounds=(0.0, 1.0))
    t = problem["train"].images.reshape(300, -1).astype(np.float64) / 255.0

    def brute(q):
        q = np.asarray(q).reshape(len(q), -1).astype(np.float64)
        return np.sqrt(((q[:, None] - t[None]) ** 2).sum(-1)).min(1)

    d = results["metrics"]["dist"]
    assert d["count"] == int(np.asarray(flipped).sum()) == N and d["num_train"] == 300
    assert d["value"] == pytest.approx(brute(x_adv).mean(), rel=1e-5)
    assert d["clean_value"] == pytest.approx(brute(problem["x"]).mean(), rel=1e-5)
    x_fgsm = attacks.fgsm(f, jnp.asarray(problem["x"]), jnp.asarray(problem["y"]), eps=0.05)
    fooled = (np.asarray(f(x_fgsm)).argmax(-1) != problem["y"]) & (np.asarray(f(problem["x"])).argmax(-1) == problem["y"])
    d2 = results["metrics"]["dist_fgsm"]
    assert d2["count"] == int(fooled.sum()) > 0
    assert d2["value"] == pytest.approx(brute(np.asarray(x_fgsm)[fooled]).mean(), rel=1e-5)


def test_minimal_attack_reports_rho_and_accuracy_at_radii_from_its_perturbations(problem, evaluated):
    _, results = evaluated
    r = results["attacks"]["deepfool"]
    correct = problem["y"] == (problem["m"] < 0)
    l2 = 1.02 * (np.abs(problem["m"]) / np.linalg.norm(problem["w"]) + 1e-4)  # DeepFool's one step + overshoot
    assert r["success_rate"] == 1.0
    assert r["mean_l2"] == pytest.approx(l2[correct].mean(), rel=1e-4)      # PGN's rho: successful only
    assert r["median_l2"] == pytest.approx(np.median(l2[correct]), rel=1e-4)
    for point in r["at_radius"]:
        want = (correct & (l2 > point["radius"])).mean()
        assert point["robust_accuracy"] == pytest.approx(want)
        assert point["accuracy_on_adversarial"] == pytest.approx(want)
    assert [p["radius"] for p in r["at_radius"]] == [0.05, 0.1, 0.2]
    assert r["at_radius"][0]["robust_accuracy"] > r["at_radius"][-1]["robust_accuracy"]


def test_every_attack_and_curve_point_reports_both_accuracies(problem, evaluated):
    _, results = evaluated
    clean = results["clean_accuracy"]
    assert clean == pytest.approx(44 / 48)
    for r in results["attacks"].values():
        assert r["robust_accuracy"] <= min(r["accuracy_on_adversarial"], clean) + 1e-9
    points = results["curves"]["pgd"]["points"]
    assert [p["eps"] for p in points] == [0.0, 0.02, 0.1]
    assert points[0]["robust_accuracy"] == points[0]["accuracy_on_adversarial"] == pytest.approx(clean)
    for p in points:
        assert p["robust_accuracy"] <= p["accuracy_on_adversarial"] + 1e-9 and p["budget_violations"] == 0
    assert points[1]["robust_accuracy"] > points[2]["robust_accuracy"]


def test_specs_that_differ_only_in_eps_share_one_compiled_function(problem):
    session = suite.Session(suite.Target(_linear), problem["state"], problem["test"], 16, jax.random.PRNGKey(0),
                            (0.0, 1.0))
    session.run_clean(jax.random.PRNGKey(1))
    spec = {"attack": "pgd", "step_size": 0.01, "num_steps": 3, "random_start": False}
    a = attacks.resolve({**spec, "eps": 0.02}, where="a")
    b = attacks.resolve({**spec, "eps": 0.2}, where="b")
    c = attacks.resolve({**spec, "eps": 0.2, "num_steps": 4}, where="c")
    ca, cb = session.compile(a), session.compile(b)
    assert ca.fn is cb.fn and cb.attack is b and session.compile(c).fn is not ca.fn
    run_a, run_b = session.attack(ca, 0.02, jax.random.PRNGKey(2)), session.attack(cb, 0.2, jax.random.PRNGKey(2))
    assert ca.fn._cache_size() == 1                            # one compile served both radii
    assert run_a.linf.max() <= 0.02 + 1e-6 and run_b.linf.max() > 0.02  # each ran at its own eps
    assert session.compile(b, {"adaptive": False}).fn is not ca.fn


def test_same_key_same_numbers_and_json_clean(problem, evaluated):
    e, first = evaluated
    again = suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(3),
                           train_ds=problem["train"])

    def strip(r):  # wall times ("seconds") are the only numbers allowed to differ
        return re.sub(r'"seconds": [0-9.e+-]+', '"seconds": 0',
                      json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, sort_keys=True))

    assert strip(again) == strip(first)
    other = suite.evaluate(_linear, problem["state"], problem["test"], _eval_cfg(attacks={
        "pgd": {"attack": "pgd", "eps": 0.05, "rel_step_size": 0.25, "num_steps": 8}}), jax.random.PRNGKey(4))
    assert strip(other) != strip(first)


def test_markdown_names_both_accuracies_minimal_statistics_and_metrics(evaluated):
    _, results = evaluated
    text = "\n".join(metrics.markdown(results))
    assert "| robust accuracy | accuracy on adversarial |" in text
    assert "mean L2 (rho)" in text and "| deepfool | 0.1 |" in text
    for label in ("er", "dist", "sens", "rho"):
        assert f"| {label}: " in text
    assert metrics.markdown({"attacks": {}, "curves": {}}) == []


def test_progress_bar_on_a_terminal_only(problem, monkeypatch, capsys):
    e = _eval_cfg(attacks={"fgsm": {"attack": "fgsm", "eps": 0.05}})
    e.progress = True
    suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(0))
    assert "evaluate" not in capsys.readouterr().err          # not a terminal: no bar
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(0))
    assert "evaluate" in capsys.readouterr().err
    e.progress = False
    suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(0))
    assert "evaluate" not in capsys.readouterr().err


def test_detector_threshold_sweep_and_ratio_curves_in_results(problem):
    """A detector that flags bright images: the sweep and GanDef's curve against hand computations."""
    score = lambda state: (lambda x: x.reshape(x.shape[0], -1).mean(-1))  # noqa: E731
    target = suite.Target(_linear, detector=Detector(score, threshold=0.5))
    e = _eval_cfg(attacks={"fgsm": {"attack": "fgsm", "eps": 0.05}})
    e.detector.thresholds = [0.45, 0.55]
    e.detector.ratios = [0.0, 0.25, 1.0]
    results = suite.evaluate(target, problem["state"], problem["test"], e, jax.random.PRNGKey(0))
    x, y = jnp.asarray(problem["x"]), problem["y"]
    f = _linear(problem["state"])
    x_adv = np.asarray(attacks.fgsm(f, x, jnp.asarray(y), eps=0.05))
    correct = np.asarray(f(x)).argmax(-1) == y
    adv_correct = np.asarray(f(x_adv)).argmax(-1) == y
    s_clean, s_adv = problem["x"].reshape(N, -1).mean(1), x_adv.reshape(N, -1).mean(1)
    sweep = results["detector"]["threshold_sweep"]
    assert sweep["thresholds"] == [0.45, 0.5, 0.55]  # the deployed threshold joins the sweep
    for i, t in enumerate(sweep["thresholds"]):
        assert sweep["clean_accuracy_with_detector"][i] == pytest.approx((correct & (s_clean <= t)).mean())
        assert sweep["attacks"]["fgsm"]["accuracy_with_detector"][i] == pytest.approx(((s_adv > t) | adv_correct).mean())
    curve = results["detector"]["ratio_curves"]["attacks"]["fgsm"]
    clean_det, adv_det = (correct & (s_clean <= 0.5)).mean(), ((s_adv > 0.5) | adv_correct).mean()
    for i, rho in enumerate([0.0, 0.25, 1.0]):
        assert curve["with_detector"][i] == pytest.approx((1 - rho) * clean_det + rho * adv_det)
        assert curve["classifier_only"][i] == pytest.approx((1 - rho) * correct.mean() + rho * adv_correct.mean())
    assert results["detector"]["ratio_curves"]["ratios"] == [0.0, 0.25, 1.0]
    assert "## Detector: overall accuracy" in "\n".join(metrics.markdown(results))


# ---- config checks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e.metrics.update({"x": {"metric": "empirical_robustnes"}}),
     r"config\.eval\.metrics\.x\.metric: 'empirical_robustnes' is not a metric \(did you mean 'empirical_robustness'"),
    (lambda e: e.metrics.update({"x": {"metric": "rho_adv", "norm": "l1"}}), r"config\.eval\.metrics\.x\.norm: 'l1'"),
    (lambda e: e.metrics.update({"x": {"metric": "rho_adv", "num_bisections": 3}}),
     r"config\.eval\.metrics\.x\.num_bisections: unknown field \(did you mean 'num_bisection'"),
    (lambda e: e.metrics.update({"x": {"metric": "empirical_robustness", "eps_max": 0.0}}),
     r"config\.eval\.metrics\.x\.eps_max: must be a number"),
    (lambda e: e.metrics.update({"x": {"metric": "train_distance", "attack": "pgdd"}}),
     r"config\.eval\.metrics\.x\.attack: 'pgdd' is neither 'minimal_fgsm' nor a label"),
    (lambda e: e.metrics.update({"x": {"metric": "transfer", "source": "/no/such/run",
                                       "attack": {"attack": "fgsm", "eps": 0.1}}}),
     r"config\.eval\.metrics\.x\.source: '/no/such/run' is not a run directory"),
    (lambda e: e.metrics.update({"x": {"metric": "transfer", "source": "standard", "attack": {"attack": "fgsm"}}}),
     r"config\.eval\.metrics\.x\.attack\.eps: missing"),
    (lambda e: e.metrics.update({"x": {"metric": "transfer", "source": "standard", "model": {"name": "lenett"},
                                       "attack": {"attack": "fgsm", "eps": 0.1}}}),
     r"config\.eval\.metrics\.x\.model: .*'lenett'"),
    (lambda e: e.curves.update({"c": {"attack": "pgd", "eps_grid": [0.0, 0.05, 0.3], "step_size": 0.01,
                                      "num_steps": 10}}),
     r"config\.eval\.curves\.c\.step_size: a fixed step on a curve whose radii span 6x.*rel_step_size=0\.03333"),
    (lambda e: e.attacks.update({"p": {"attack": "pgd", "eps": 0.1, "step_size": 0.01, "num_steps": 3,
                                       "radii": [1.0]}}), r"config\.eval\.attacks\.p\.radii: only minimal"),
    (lambda e: e.attacks.update({"j": {"attack": "jsma", "radii": [1.0]}}), r"config\.eval\.attacks\.j\.radii: jsma"),
    (lambda e: e.attacks.update({"c": {"attack": "cw_l2", "radii": [1.0, -2.0]}}),
     r"config\.eval\.attacks\.c\.radii\[1\]: must be a finite number > 0"),
    (lambda e: e.diagnostics.update({"max_gapp": 0.1}),
     r"config\.eval\.diagnostics\.max_gapp: unknown field \(did you mean 'max_gap'"),
    (lambda e: setattr(e.diagnostics, "num_examples", 0), r"config\.eval\.diagnostics\.num_examples: must be an integer"),
    (lambda e: setattr(e.detector, "ratios", [0.0, 1.5]), r"config\.eval\.detector\.ratios\[1\]: must be in \[0, 1\]"),
])
def test_bad_eval_fields_fail_in_validate_naming_the_field(mutate, message):
    c = base_config()
    mutate(c.eval)
    with pytest.raises(ValueError, match=message):
        validate(c)


@pytest.mark.parametrize("section, message", [
    ({"diagnostics": {"enabled": "yes"}}, r"config\.eval\.diagnostics\.enabled: must be True or False"),
    ({"progress": "no"}, r"config\.eval\.progress: must be True or False"),
    ({"detector": {"thresholds": [0.5, float("nan")]}}, r"config\.eval\.detector\.thresholds\[1\]: must be a finite"),
    ({"metrics": {"m": ["empirical_robustness"]}}, r"config\.eval\.metrics\.m: must be a dict"),
])
def test_values_a_configdict_would_not_hold_are_refused_too(section, message):
    """Plain-dict eval sections (scripts, JSON) reach the same checks as ConfigDicts."""
    with pytest.raises(ValueError, match=message):
        specs.resolve_all(section)


def test_a_fixed_step_is_allowed_on_a_narrow_curve_and_rel_step_on_any():
    e = base_config().eval
    e.curves = {"narrow": {"attack": "pgd", "eps_grid": [0.0, 0.1, 0.2, 0.4], "step_size": 0.01, "num_steps": 10},
                "wide": {"attack": "pgd", "eps_grid": [0.0, 0.01, 0.5], "rel_step_size": 0.25, "num_steps": 10}}
    _, curves = specs.resolve(e)
    assert set(curves) == {"narrow", "wide"}


def test_every_metric_name_has_an_implementation_and_defaults_validate():
    assert set(specs.METRIC_FIELDS) == set(metrics.IMPLEMENTED)
    e = base_config().eval
    e.metrics = {name: {"metric": name} for name in specs.METRIC_FIELDS if name != "transfer"}
    e.metrics.t = {"metric": "transfer", "source": "standard", "attack": {"attack": "fgsm", "eps": 0.1}}
    plan = specs.resolve_all(e)
    assert plan.metrics["rho_adv"].params["eps_hi"] is None and plan.metrics["t"].params["steps"] == 500
    assert plan.diagnostics["enabled"] is True and plan.diagnostics["max_gap"] == 0.05


def test_a_metric_that_needs_the_training_set_names_itself_without_it(problem):
    e = _eval_cfg(metrics={"d": {"metric": "train_distance"}})
    with pytest.raises(ValueError, match=r"config\.eval\.metrics\.d: train_distance needs the training set.*train_ds="):
        suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(0))


def test_an_eval_config_without_the_new_sections_still_evaluates(problem):
    """Older configs (and scripts that build config.eval by hand) lack metrics/diagnostics/detector/progress."""
    e = ml_collections.ConfigDict(dict(num_examples=16, batch_size=16, curves={}, attacks={
        "fgsm": {"attack": "fgsm", "eps": 0.05}}))
    results = suite.evaluate(_linear, problem["state"], problem["test"], e, jax.random.PRNGKey(0))
    assert "metrics" not in results and results["diagnostics"]["warnings"] == []  # diagnostics default on
