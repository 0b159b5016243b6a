"""The Defense contract's parts for the coming defenses, each exercised by a tiny test defense through
training (experiment.run) and evaluation: a detector with its decision rule (GanDef-Comb), a deployed
classifier that is not differentiable (feature squeezing: BPDA through a surrogate, and the naive
attacker beside it), and randomised logits (Defense-GAN's random starts: expectation over
transformation), plus the per-network optimizers of a two-network state."""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax import defenses, experiment, models
from robustjax.defenses import fields, supervised
from robustjax.defenses.base import Defense, Detector, Phase, bpda, eval_logits_fn
from tests.test_config import load_config

PGD = {"attack": "pgd", "eps": 0.5, "step_size": 0.1, "num_steps": 8, "random_start": False}


def _config(name, **defense):
    c = load_config("quickstart.py", "smoke")
    c.defense = {"name": name, **defense}
    c.train.steps = 3
    c.eval.curves = {}
    return c


def _run(monkeypatch, module, config, tmp_path):
    monkeypatch.setitem(defenses.DEFENSES, config.defense.name, module)
    return experiment.run(config, str(tmp_path))


# ----------------------------------------------------------------------------------------------
# A detector: a classifier plus a detector network trained to tell FGSM examples from clean ones.


def _detector_module():
    schema = {"name": fields.Field(), "attack": fields.Field(fields.REQUIRED, fields.attack_spec())}

    def make(config, info, steps_per_epoch):
        hp = fields.read(config.defense, schema, "config.defense")
        steps = 3
        _, init_cls = supervised.classifier_network(config, info, steps_per_epoch, steps)
        det_model = models.make({"name": "mlp", "hidden": [8]}, 1)
        _, init_det = supervised.classifier_network(config, info, steps_per_epoch, steps, name="detector",
                                                    model=det_model)
        attack = supervised.train_attack(hp, info, steps_per_epoch)

        def detector_objective(apply, params, stats, batch, x_adv, key):
            x = jnp.concatenate([batch["image"], x_adv])
            target = jnp.concatenate([jnp.zeros(len(x_adv)), jnp.ones(len(x_adv))])
            logit, stats = apply(params, stats, x, key)
            return optax.sigmoid_binary_cross_entropy(logit[:, 0], target).mean(), stats, {}

        def step(state, batch, key):
            k1, k2, k3 = jax.random.split(key, 3)
            cls = state["classifier"]
            x_adv = attack(eval_logits_fn(cls), batch["image"], batch["label"], k1, cls.step)
            cls, m1 = supervised.update(cls, supervised.ce_objective(), batch, None, k2)
            det, m2 = supervised.update(state["detector"], detector_objective, batch, x_adv, k3)
            return {"classifier": cls, "detector": det}, {"loss": m1["loss"], "loss_detector": m2["loss"]}

        def init(key, batch):
            k1, k2 = jax.random.split(key)
            x = jnp.asarray(batch["image"])
            return {"classifier": init_cls(k1, x), "detector": init_det(k2, x)}

        def score(state):
            return lambda x: jax.nn.sigmoid(eval_logits_fn(state["detector"])(x)[:, 0])

        return Defense(name="test_detector", init=init, phases=(Phase("train", steps, step),),
                       classifier=lambda state: eval_logits_fn(state["classifier"]),
                       networks=("classifier", "detector"), detector=Detector(score, threshold=0.5))

    return types.SimpleNamespace(FIELDS=schema, NETWORKS=("classifier", "detector"), make=make)


def test_detector_defense_trains_both_networks_and_is_scored_by_its_rule(monkeypatch, tmp_path):
    module = _detector_module()
    c = _config("test_detector", attack={"attack": "fgsm", "eps": 0.1})
    c.train.optimizers = {"detector": {"learning_rate": 1e-2}}
    c.eval.attacks = {"pgd": dict(PGD), "pgd_vs_both": {**PGD, "against_detector": True}}
    results = _run(monkeypatch, module, c, tmp_path)
    det = results["detector"]
    assert det["threshold"] == 0.5 and 0.0 <= det["flagged_clean"] <= 1.0
    assert det["clean_accuracy_with_detector"] <= results["clean_accuracy"]  # flagged clean inputs count wrong
    for label in ("pgd", "pgd_vs_both"):
        r = results["attacks"][label]
        assert r["accuracy_with_detector"] >= r["accuracy_on_adversarial"]  # flagged adversarial ones count right
        assert r["accuracy_with_detector"] <= r["accuracy_on_adversarial"] + r["flagged_adversarial"] + 1e-9
        assert r["budget_violations"] == 0
    c.train.optimizers = {"detektor": {"learning_rate": 1e-2}}
    monkeypatch.setitem(defenses.DEFENSES, "test_detector", module)
    with pytest.raises(ValueError, match=r"config.train.optimizers.detektor: .*did you mean 'detector'.*"
                                         r"\['classifier', 'detector'\]"):
        experiment.build(c)


def test_combined_logits_make_detection_count_as_the_true_class():
    z = jnp.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 2.0, 1.0]])
    scores = jnp.array([0.9, 0.9, 0.1])  # flagged, flagged, not flagged
    det = Detector(lambda state: (lambda x: scores), threshold=0.5)
    y = jnp.array([1, 0, 0])
    combined = det.combined_logits(None, lambda x: z, y)(jnp.zeros((3, 1)))
    assert combined.shape == (3, 3)
    np.testing.assert_array_equal(jnp.argmax(combined, -1), [1, 0, 1])  # flagged -> y; not flagged -> z's argmax
    np.testing.assert_allclose(combined[:, 1:][2], z[2, 1:])  # below the threshold: only z_y may rise,
    assert float(combined[2, 0]) < float(z[2].max())            # and never to the top


# ----------------------------------------------------------------------------------------------
# A non-differentiable deployed classifier: 1-bit quantisation in front of the network.


def _squeeze_module():
    schema = {**supervised.FIELDS}
    transform = supervised.InputTransform(fn=lambda x: jnp.round(x), surrogate=lambda x: x)

    def make(config, info, steps_per_epoch):
        return supervised.make(config, info, steps_per_epoch, name="test_squeeze", schema=schema,
                               input_transform=transform)

    return types.SimpleNamespace(FIELDS=schema, NETWORKS=("classifier",), make=make)


def test_quantizer_defense_is_attacked_through_bpda_and_naively(monkeypatch, tmp_path):
    c = _config("test_squeeze")
    c.eval.attacks = {"adaptive": dict(PGD), "naive": {**PGD, "adaptive": False}}
    results = _run(monkeypatch, _squeeze_module(), c, tmp_path)
    naive, adaptive = results["attacks"]["naive"], results["attacks"]["adaptive"]
    # The quantizer's gradient is zero: the naive attacker cannot move, so it reports clean accuracy.
    assert naive["robust_accuracy"] == results["clean_accuracy"] and naive["adaptive"] is False
    assert adaptive["robust_accuracy"] < naive["robust_accuracy"]


def test_bpda_has_the_forward_values_and_the_surrogate_gradient():
    f = bpda(lambda x: jnp.round(x) * 2.0, lambda x: x * 2.0)
    x = jnp.array([0.2, 0.7])
    np.testing.assert_allclose(f(x), [0.0, 2.0])
    np.testing.assert_allclose(jax.grad(lambda v: f(v).sum())(x), [2.0, 2.0])
    d = Defense("t", None, (), classifier=lambda s: jnp.round, surrogate=lambda s: (lambda x: x))
    np.testing.assert_allclose(jax.grad(lambda v: d.attack_model(None)(v).sum())(x), [1.0, 1.0])
    np.testing.assert_allclose(jax.grad(lambda v: d.attack_model(None, adaptive=False)(v).sum())(x), [0.0, 0.0])


# ----------------------------------------------------------------------------------------------
# Randomised logits: Gaussian noise on the input of the deployed classifier.


def _noisy_module():
    schema = {**supervised.FIELDS}

    def make(config, info, steps_per_epoch):
        inner = supervised.make(config, info, steps_per_epoch, name="test_noisy", schema=schema)

        def classifier(state):
            f = inner.classifier(state)
            return lambda x, key: f(x + 0.3 * jax.random.normal(key, x.shape))

        return dataclasses.replace(inner, classifier=classifier, stochastic=True)

    return types.SimpleNamespace(FIELDS=schema, NETWORKS=("classifier",), make=make)


def test_randomised_classifier_is_evaluated_with_fresh_draws_and_eot(monkeypatch, tmp_path):
    c = _config("test_noisy")
    c.eval.attacks = {"pgd_one_draw": dict(PGD),
                      "apgd_eot": {"attack": "apgd", "eps": 0.5, "num_steps": 4, "stochastic": True, "eot_iter": 3}}
    results = _run(monkeypatch, _noisy_module(), c, tmp_path)
    assert results["stochastic"] is True
    for r in results["attacks"].values():
        assert 0.0 <= r["robust_accuracy"] <= 1.0 and r["budget_violations"] == 0
    module = _noisy_module()
    defense = module.make(c, types.SimpleNamespace(num_classes=10, bounds=(0.0, 1.0)), 4)
    x = jnp.full((2, 16, 16, 1), 0.5)
    state = defense.init(jax.random.PRNGKey(0), {"image": x})
    f = defense.classifier(state)
    assert not np.allclose(f(x, jax.random.PRNGKey(1)), f(x, jax.random.PRNGKey(2)))


def test_train_time_attack_goes_through_the_transform_by_bpda_and_the_objective_sees_its_output():
    seen = {}

    def objective(apply, params, batch_stats, batch, x_adv, key):
        logits, batch_stats = apply(params, batch_stats, x_adv, key)
        seen["grid"] = jnp.all((x_adv == 0.0) | (x_adv == 1.0)) & jnp.all((batch["image"] == 0.0) | (batch["image"] == 1.0))
        seen["moved"] = jnp.mean(x_adv != batch["image"])
        return jnp.mean(logits ** 2), batch_stats, {"grid": seen["grid"], "moved": seen["moved"]}

    c = _config("test_squeeze", attack=dict(PGD))
    info = types.SimpleNamespace(num_classes=10, bounds=(0.0, 1.0))
    hp = fields.read(c.defense, supervised.FIELDS, "config.defense")
    transform = supervised.InputTransform(fn=lambda x: jnp.round(x), surrogate=lambda x: x)
    defense = supervised.make(c, info, 4, name="t", hp=hp, objective=objective, input_transform=transform)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(0, 1, (8, 16, 16, 1)), jnp.float32),
             "label": jnp.asarray(rng.integers(0, 10, 8), jnp.int32)}
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    _, m = jax.jit(defense.phases[0].train_step)(state, batch, jax.random.PRNGKey(1))
    assert bool(m["grid"])             # the objective trains on squeezed inputs
    assert float(m["moved"]) > 0.01    # the attack moved pixels across the quantiser: its gradient went through


def test_report_shows_the_detector_numbers_under_its_rule():
    from robustjax.evaluate import report

    results = {"detector": {"threshold": 0.5, "flagged_clean": 0.25, "clean_accuracy_with_detector": 0.7},
               "attacks": {"pgd": {"flagged_adversarial": 0.6, "accuracy_with_detector": 0.8,
                                   "accuracy_on_adversarial": 0.3}, "fgsm": {"accuracy_on_adversarial": 0.5}}}
    text = report.detector_section(results)
    assert "flagged clean input as an error" in text and "| pgd | 0.6000 | 0.8000 | 0.3000 |" in text
    assert "| fgsm" not in text and report.detector_section({"attacks": {}}) == ""
