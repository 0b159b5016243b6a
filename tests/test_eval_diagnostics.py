"""Gradient-masking diagnostics: a PGD-trained model passes every rule; the same model behind a
non-differentiable quantizer (no surrogate) and behind a softmax saturated by a high temperature is flagged,
each by the rules that fit its kind of masking (robustjax/evaluate/diagnostics.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import data as data_lib
from robustjax import defenses, xla
from robustjax.config import base_config
from robustjax.evaluate import diagnostics, report, suite

EPS = 0.1


@pytest.fixture(scope="module")
def trained():
    """PGD adversarial training (7 steps, eps 0.1) of a one-hidden-layer MLP on 8x8 digits: 400 steps."""
    c = base_config()
    c.data.name, c.data.source, c.data.image_size, c.data.batch_size = "digits", "digits", 8, 64
    c.model.name, c.model.hidden = "mlp", [64]
    c.defense = {"name": "pgd_at", "attack": {"attack": "pgd", "eps": EPS, "rel_step_size": 0.25, "num_steps": 7,
                                              "random_start": True}}
    c.train.steps, c.train.optimizer.learning_rate = 400, 3e-3
    train_ds, test_ds, info = data_lib.load(c.data)
    defense = defenses.make(c, info, 20)
    state = xla.jit(defense.init)(jax.random.PRNGKey(0), train_ds.get(np.arange(64)))
    step = xla.jit(defense.phases[0].train_step)
    for i, batch in zip(range(400), data_lib.train_batches(train_ds, 64, seed=0)):
        state, _ = step(state, {"image": batch["image"], "label": batch["label"]}, jax.random.PRNGKey(i))
    return defense.classifier, state, test_ds


def _eval_cfg(**diagnostics):
    e = base_config().eval
    e.num_examples, e.batch_size, e.progress = 128, 128, False
    e.attacks = {
        "fgsm": {"attack": "fgsm", "eps": EPS},
        "pgd20": {"attack": "pgd", "eps": EPS, "rel_step_size": 0.25, "num_steps": 20, "random_start": True},
        "aa": {"attack": "autoattack", "eps": EPS, "attacks": ["apgd-ce", "apgd-t"], "num_steps": 20,
               "num_targets": 3},
    }
    e.diagnostics.many_steps = 200
    e.diagnostics.update(diagnostics)
    return e


MODELS = {
    "pgd_at": lambda f: f,
    # 1-bit quantisation in front of the classifier, no surrogate: the input gradient is exactly zero.
    "quantized": lambda f: (lambda s: (lambda x: f(s)(jnp.round(x)))),
    # the same logits times 1e4: the softmax saturates beyond float32, the cross-entropy gradient vanishes.
    "temperature": lambda f: (lambda s: (lambda x: 1e4 * f(s)(x))),
}


@pytest.fixture(scope="module")
def evaluated(trained):
    classifier, state, test_ds = trained
    return {name: suite.evaluate(wrap(classifier), state, test_ds, _eval_cfg(), jax.random.PRNGKey(1))
            for name, wrap in MODELS.items()}


def _flagged(results) -> set[str]:
    out = set()
    for name, check in results["diagnostics"]["checks"].items():
        entries = check if isinstance(check, list) else [check]
        if any(e["flagged"] for e in entries):
            out.add(name)
    return out


def test_the_pgd_trained_model_is_honestly_robust_and_not_flagged(evaluated):
    r = evaluated["pgd_at"]
    assert r["clean_accuracy"] > 0.85 and r["attacks"]["pgd20"]["robust_accuracy"] > 0.6  # robust, not masked
    d = r["diagnostics"]
    assert d["warnings"] == [] and _flagged(r) == set()
    c = d["checks"]
    assert c["gradients"]["zero_fraction"] == 0.0 and c["gradients"]["nonfinite_fraction"] == 0.0
    assert c["unbounded_pgd"]["accuracy_on_adversarial"] <= 0.01
    [steps] = c["pgd_steps"]  # the suite's PGD-20 against the diagnostics' own PGD-200, same spec
    assert steps["few"] == {"label": "pgd20", "num_steps": 20, "robust_accuracy": steps["few"]["robust_accuracy"]}
    assert steps["many"]["label"] == "diagnostics" and steps["many"]["num_steps"] == 200
    assert abs(steps["gap"]) <= 0.05
    [square] = c["black_box"]
    assert square["label"] == "diagnostics' Square" and square["gap"] <= 0.05
    [aa] = c["autoattack"]
    assert aa["pgd"] == ["pgd20"] and aa["gap"] == pytest.approx(aa["pgd_robust_accuracy"] - aa["autoattack_robust_accuracy"])
    assert d["norm"] == "linf" and d["eps"] == EPS and d["num_examples"] == 128


def test_a_quantizer_without_surrogate_is_flagged(evaluated):
    r = evaluated["quantized"]
    c = r["diagnostics"]["checks"]
    assert c["gradients"]["zero_fraction"] == 1.0 and c["gradients"]["flagged"]
    assert c["unbounded_pgd"]["accuracy_on_adversarial"] > 0.5 and c["unbounded_pgd"]["flagged"]
    assert {"gradients", "unbounded_pgd"} <= _flagged(r)
    text = " ".join(r["diagnostics"]["warnings"])
    assert "exactly zero on 100.0% of 128 test points" in text and "unbounded PGD (eps = inf, 100 steps)" in text


def test_a_saturated_softmax_is_flagged_by_every_rule_that_sees_it(evaluated):
    r = evaluated["temperature"]
    c = r["diagnostics"]["checks"]
    assert c["gradients"]["zero_fraction"] > 0.5
    assert c["unbounded_pgd"]["accuracy_on_adversarial"] > 0.5
    [aa] = c["autoattack"]  # DLR losses are scale-invariant: AutoAttack breaks what CE-PGD cannot move
    assert aa["gap"] > 0.1 and aa["flagged"]
    [square] = c["black_box"]  # Square needs no gradient: as strong as against the unscaled model
    assert square["flagged"] and square["gap"] > 0.1
    assert {"gradients", "unbounded_pgd", "autoattack", "black_box"} <= _flagged(r)
    assert any(w.startswith("AutoAttack is far below PGD at linf eps=0.1") for w in r["diagnostics"]["warnings"])


def test_diagnostics_reach_results_json_and_the_report(evaluated, tmp_path):
    import json

    paths, md = report.write(str(tmp_path), evaluated["temperature"], title="t")
    saved = json.load(open(paths["results"]))["diagnostics"]
    assert saved["warnings"] == evaluated["temperature"]["diagnostics"]["warnings"]
    assert saved["thresholds"] == {"max_gap": 0.05, "max_unbounded_accuracy": 0.05, "max_zero_gradient_fraction": 0.1,
                                   "max_gradient_norm": 1e4}
    assert "## Gradient-masking diagnostics" in md and md.count("- WARNING: ") == len(saved["warnings"])
    assert "| unbounded PGD (100 steps) | accuracy " in md
    _, clean_md = report.write(str(tmp_path / "ok"), evaluated["pgd_at"], title="ok")
    assert "No rule fired" in clean_md and "WARNING" not in clean_md


def test_few_step_pgd_that_has_not_converged_is_flagged_with_the_measured_gap(trained):
    """Two suite PGDs at one radius: 2 steps of eps/20 cannot reach the edge of the ball, 60 can."""
    classifier, state, test_ds = trained
    e = _eval_cfg(square_queries=0, num_examples=32)
    e.num_examples = 128
    e.attacks = {"pgd2": {"attack": "pgd", "eps": EPS, "rel_step_size": 0.05, "num_steps": 2, "random_start": False},
                 "pgd60": {"attack": "pgd", "eps": EPS, "rel_step_size": 0.05, "num_steps": 60, "random_start": False}}
    r = suite.evaluate(classifier, state, test_ds, e, jax.random.PRNGKey(1))
    [steps] = r["diagnostics"]["checks"]["pgd_steps"]
    few, many = r["attacks"]["pgd2"]["robust_accuracy"], r["attacks"]["pgd60"]["robust_accuracy"]
    assert steps["few"]["label"] == "pgd2" and steps["many"]["label"] == "pgd60" and steps["num_examples"] == 128
    assert steps["gap"] == pytest.approx(few - many) and steps["gap"] > 0.05 and steps["flagged"]
    assert any(w.startswith("many-step PGD is clearly stronger than few-step PGD at linf eps=0.1")
               for w in r["diagnostics"]["warnings"])
    e.diagnostics.max_gap = 1.0  # the threshold is a config field
    again = suite.evaluate(classifier, state, test_ds, e, jax.random.PRNGKey(1))
    assert not again["diagnostics"]["checks"]["pgd_steps"][0]["flagged"]
    # same key, same numbers: every measurement equal, only the verdicts moved with the threshold
    untimed = {k: {f: v for f, v in x.items() if f != "seconds"} for k, x in again["attacks"].items()}
    assert untimed == {k: {f: v for f, v in x.items() if f != "seconds"} for k, x in r["attacks"].items()}
    assert again["clean_accuracy"] == r["clean_accuracy"]
    for name in ("gradients", "randomness", "unbounded_pgd"):
        assert again["diagnostics"]["checks"][name] == r["diagnostics"]["checks"][name]
    assert again["diagnostics"]["checks"]["black_box"] == r["diagnostics"]["checks"]["black_box"] == []  # no Square
    e.diagnostics.enabled = False
    assert "diagnostics" not in suite.evaluate(classifier, state, test_ds, e, jax.random.PRNGKey(1))


def test_randomised_outputs_are_flagged_unless_an_attack_averages_over_draws(trained):
    classifier, state, test_ds = trained
    noisy = suite.Target(lambda s: (lambda x, k: classifier(s)(x + 0.3 * jax.random.normal(k, x.shape))),
                         stochastic=True)
    e = _eval_cfg(square_queries=0, num_examples=32, many_steps=4, unbounded_steps=4)
    e.num_examples = 32
    e.attacks = {"fgsm": {"attack": "fgsm", "eps": EPS}}
    r = suite.evaluate(noisy, state, test_ds, e, jax.random.PRNGKey(1))
    rnd = r["diagnostics"]["checks"]["randomness"]
    assert rnd["flagged"] and rnd["max_logit_difference"] > 0 and rnd["eot_attacks"] == []
    assert any(w.startswith("randomised outputs") for w in r["diagnostics"]["warnings"])
    e.attacks.eot = {"attack": "apgd", "eps": EPS, "num_steps": 2, "stochastic": True, "eot_iter": 2}
    r = suite.evaluate(noisy, state, test_ds, e, jax.random.PRNGKey(1))
    assert not r["diagnostics"]["checks"]["randomness"]["flagged"]
    assert r["diagnostics"]["checks"]["randomness"]["eot_attacks"] == ["eot"]


def test_rise_is_the_largest_gain_of_accuracy_at_a_larger_radius():
    assert diagnostics._rise([(0.1, 0.55, "a"), (0.3, 0.61, "b")])[0] == pytest.approx(0.06)
    rise, lo, hi = diagnostics._rise([(0.0, 0.9, "0"), (0.3, 0.2, "3"), (0.1, 0.5, "1"), (0.2, 0.65, "2")])
    assert rise == pytest.approx(0.15) and (lo[2], hi[2]) == ("1", "2")      # sorted by eps first
    assert diagnostics._rise([(0.0, 0.9, "0"), (0.1, 0.5, "1"), (0.2, 0.5, "2")]) == (0.0, None, None)
    # two points at one radius (a repeated grid value, two labels of one attack): the lower one does not hide
    # the rise from a smaller radius to the higher one, and points at one radius are no rise
    rise, lo, hi = diagnostics._rise([(0.1, 0.5, "a"), (0.2, 0.3, "b"), (0.2, 0.6, "c")])
    assert rise == pytest.approx(0.1) and (lo[2], hi[2]) == ("a", "c")
    assert diagnostics._rise([(0.2, 0.3, "b"), (0.2, 0.6, "c")]) == (0.0, None, None)


def test_accuracy_that_rises_with_eps_is_flagged_from_the_suites_own_attacks_and_curves():
    """FGSM-AT's signature (label leaking): FGSM at 0.3 leaves more correct than FGSM at 0.1. Built from
    recorded runs (no model): the rule reads what the suite measured."""
    from types import SimpleNamespace

    from robustjax import attacks

    n = 100
    clean = np.ones(n, bool)
    adv = {"fgsm_0p1": np.arange(n) < 55, "fgsm_0p3": np.arange(n) < 61, "pgd_0p1": np.arange(n) < 42,
           "pgd_0p3": np.arange(n) < 1}
    step = {"pgd": {"step_size": 0.01, "num_steps": 40}, "fgsm": {}}
    specs = {k: (attacks.resolve({"attack": k.split("_")[0], "eps": int(k[-1]) / 10, **step[k.split("_")[0]]},
                                 where=k), {}) for k in adv}
    session = SimpleNamespace(specs=specs, clean_correct=clean, runs={k: SimpleNamespace(adv_correct=v) for k, v in adv.items()})
    curves = {"fgsm": {"attack": "fgsm", "norm": "linf", "points": [
                  {"eps": 0.0, "robust_accuracy": 0.99}, {"eps": 0.1, "robust_accuracy": 0.55},
                  {"eps": 0.3, "robust_accuracy": 0.61}, {"eps": 0.5, "robust_accuracy": 0.30}]},
              "bb": {"attack": "fgsm, black-box", "norm": "linf", "black_box": True, "points": [
                  {"eps": 0.1, "robust_accuracy": 0.2}, {"eps": 0.3, "robust_accuracy": 0.9}]}}
    rising = [{"eps": 0.1, "robust_accuracy": 0.2}, {"eps": 0.3, "robust_accuracy": 0.9}]
    curves["naive"] = {"attack": "pgd", "norm": "linf", "points": rising}     # other threats, as _comparable
    curves["vs_detector"] = {"attack": "pgd", "norm": "linf", "points": rising}
    options = {"naive": {"adaptive": False}, "vs_detector": {"against_detector": True}}
    cfg = {"max_gap": 0.05}
    entries, warnings = diagnostics._eps_monotonic(session, cfg, diagnostics._comparable(session), {"curves": curves},
                                                   options)
    by = {e["label"]: e for e in entries}
    assert set(by) == {"attacks fgsm_0p1, fgsm_0p3", "attacks pgd_0p1, pgd_0p3", "curve fgsm"}   # no black-box curve
    fg = by["attacks fgsm_0p1, fgsm_0p3"]
    assert fg["rise"] == pytest.approx(0.06) and fg["flagged"] and fg["low"]["label"] == "fgsm_0p1"
    assert not by["attacks pgd_0p1, pgd_0p3"]["flagged"] and by["attacks pgd_0p1, pgd_0p3"]["rise"] == 0.0
    assert by["curve fgsm"]["flagged"] and by["curve fgsm"]["rise"] == pytest.approx(0.06)
    assert len(warnings) == 2 and warnings[0].startswith(
        "robust accuracy rises with the radius under fgsm (attacks fgsm_0p1, fgsm_0p3): 0.550 at linf eps=0.1")
    cfg["max_gap"] = 0.1
    assert _eps_flagged(session, cfg, curves) == []


def _eps_flagged(session, cfg, curves):
    entries, _ = diagnostics._eps_monotonic(session, cfg, diagnostics._comparable(session), {"curves": curves},
                                            {"naive": {"adaptive": False}, "vs_detector": {"against_detector": True}})
    return [e["label"] for e in entries if e["flagged"]]


def test_markdown_is_empty_without_diagnostics():
    assert diagnostics.markdown({"attacks": {}}) == []
