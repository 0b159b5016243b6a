"""GanDef: the losses against hand computations (D's, V1 and V2), gamma = 0 as clean + adversarial AT,
which network each step changes, Algorithm 1's step, GanDef-Comb's detector and its decision rule, the
logit discriminator and Table 4's allCNN, config errors in experiment.build, and smoke runs of both
configs on the real data files (offline)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import experiment, models
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import gandef, supervised
from robustjax.evaluate import specs
from robustjax.models.discriminators import LogitDiscriminator
from tests.conftest import real_data
from tests.test_config import load_config

NUM_CLASSES = 3
INFO = DataInfo(name="tiny", image_shape=(8, 8, 1), num_classes=NUM_CLASSES, num_train=16, num_test=8)


def tiny_config(**defense):
    """small_cnn at width 0.25 on 8x8x1 (no dropout, no BatchNorm: train mode = eval mode, so the hand
    computations can use the eval-mode networks), PGD-3 at 0.3, plain SGD (a step is a small gradient step)."""
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25
    c.defense = {"name": "gandef", "attack": {"attack": "pgd", "eps": 0.3, "step_size": 0.1, "num_steps": 3,
                                              "random_start": True},
                 "gamma": 1.5, "d_hidden": [8, 4]}
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 10
    c.train.optimizer = optimizer("sgd", 5e-2, momentum=0.0)
    return c


class Tiny:
    """One build of a tiny GanDef with jitted steps (shared through module-scoped fixtures)."""

    def __init__(self, config):
        self.parts = gandef.build(config, INFO, 4)
        self.defense = gandef.make(config, INFO, 4)
        rng = np.random.default_rng(0)
        self.x = jnp.asarray(rng.uniform(0.0, 1.0, (8, 8, 8, 1)), jnp.float32)
        self.x_adv = jnp.clip(self.x + jnp.asarray(rng.choice([-0.3, 0.3], self.x.shape), jnp.float32), 0, 1)
        self.y = jnp.asarray(rng.integers(0, NUM_CLASSES, 8), jnp.int32)
        self.batch = {"image": self.x, "label": self.y}
        self.state = jax.jit(self.parts.init)(jax.random.PRNGKey(0), self.batch)
        self.d_step = jax.jit(self.parts.d_step)
        self.c_step = jax.jit(self.parts.c_step)
        self.train_step = jax.jit(self.parts.train_step)
        self.attack = jax.jit(self.parts.adversarial_examples)

    def outputs(self, state, x, x_adv):
        """Raw network outputs: C's logits on x and x_adv, D's logits on them (numpy float64)."""
        c, d = state["classifier"], state["discriminator"]
        z = [self.parts.classifier_module.apply({"params": c.params}, v) for v in (x, x_adv)]
        dz = [self.parts.discriminator_module.apply({"params": d.params}, v) for v in z]
        return [np.asarray(a, np.float64) for a in (*z, *dz)]


@pytest.fixture(scope="module")
def tiny():
    return Tiny(tiny_config())


@pytest.fixture(scope="module")
def tiny_v1():
    return Tiny(tiny_config(classifier_loss="v1"))


@pytest.fixture(scope="module")
def tiny_g0():
    """gamma = 0, and a faster D (Adam 1e-2) for the test that D learns."""
    c = tiny_config(gamma=0.0)
    c.train.optimizers = {"discriminator": optimizer("adam", 1e-2)}
    return Tiny(c)


@pytest.fixture(scope="module")
def tiny_d2():
    return Tiny(tiny_config(d_steps=2, eps_ramp_epochs=1.0))


# ----------------------------------------------------------------------------------------------
# Hand computations (numpy).


def _ce(logits, y):
    logits = np.asarray(logits, np.float64)
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), np.asarray(y)])


def _bce(d, s):
    """-log q(s | d) for the sigmoid of a logit d: log(1 + e^d) for s = 0, log(1 + e^-d) for s = 1."""
    d = np.asarray(d, np.float64)
    return np.mean(np.logaddexp(0.0, d if s == 0 else -d))


def hand_terms(t: Tiny, state, x, x_adv, y, gamma, variant):
    z_clean, z_adv, d_clean, d_adv = t.outputs(state, x, x_adv)
    l_d = 0.5 * (_bce(d_clean, 0) + _bce(d_adv, 1))
    ce = 0.5 * (_ce(z_clean, y) + _ce(z_adv, y))
    penalty = _bce(d_adv, 1) if variant == "v2" else l_d
    return {"loss_d": l_d, "ce": ce, "penalty": penalty, "loss_c": ce - gamma * penalty}


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(la, lb))


def _changed(a, b):
    return [not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


# ----------------------------------------------------------------------------------------------
# The loss functions on numbers worked out by hand.


def test_discriminator_loss_by_hand():
    d_clean, d_adv = jnp.array([0.0, 2.0]), jnp.array([-1.0, 3.0])
    # clean (s = 0): log(1 + e^0) = log 2, log(1 + e^2); adversarial (s = 1): log(1 + e^1), log(1 + e^-3)
    expected = 0.5 * ((math.log(2) + math.log1p(math.e ** 2)) / 2 + (math.log1p(math.e) + math.log1p(math.e ** -3)) / 2)
    np.testing.assert_allclose(gandef.discriminator_loss(d_clean, d_adv), expected, rtol=1e-6)
    # A D that is confident and right costs ~0; confident and wrong ~|logit| (stable, finite).
    np.testing.assert_allclose(gandef.discriminator_loss(jnp.array([-50.0]), jnp.array([50.0])), 0.0, atol=1e-6)
    np.testing.assert_allclose(gandef.discriminator_loss(jnp.array([50.0]), jnp.array([-50.0])), 50.0, rtol=1e-6)


def test_classifier_loss_v1_and_v2_by_hand():
    z_clean = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    z_adv = jnp.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    y = jnp.array([0, 1])
    d_clean, d_adv = jnp.array([0.0, 1.0]), jnp.array([2.0, -2.0])
    ce_clean = (math.log(math.e ** 2 + 2) - 2 + math.log(math.e + 2) - 1) / 2
    ce_adv = (math.log(math.e + 2) + math.log(3)) / 2
    ce = (ce_clean + ce_adv) / 2
    pen_v2 = (math.log1p(math.e ** -2) + math.log1p(math.e ** 2)) / 2                   # adversarial logits, s = 1
    pen_v1 = (((math.log(2) + math.log1p(math.e)) / 2) + pen_v2) / 2                    # ... and clean, s = 0
    for variant, pen in (("v2", pen_v2), ("v1", pen_v1)):
        loss, parts = gandef.classifier_loss(z_clean, z_adv, y, d_clean, d_adv, 0.7, variant)
        np.testing.assert_allclose(parts["ce"], ce, rtol=1e-6)
        np.testing.assert_allclose(parts["penalty"], pen, rtol=1e-6)
        np.testing.assert_allclose(loss, ce - 0.7 * pen, rtol=1e-6)
    with pytest.raises(ValueError, match="classifier_loss 'v3'"):
        gandef.classifier_loss(z_clean, z_adv, y, d_clean, d_adv, 0.7, "v3")


def test_v2_penalises_adversarial_logits_only_and_v1_all():
    args = (jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.array([0, 1]))
    d_clean, d_adv = jnp.array([0.5, -1.0]), jnp.array([1.0, 0.2])
    for variant, clean_matters in (("v2", False), ("v1", True)):
        g_clean, g_adv = jax.grad(lambda a, b: gandef.classifier_loss(*args, a, b, 1.0, variant)[0], (0, 1))(
            d_clean, d_adv)
        assert bool(jnp.any(g_clean != 0)) == clean_matters, variant
        # C raises D's loss on adversarial logits: the penalty's sign pushes D's "adversarial" logit down.
        assert bool(jnp.all(g_adv > 0)), variant


def test_threshold_in_logit_space():
    assert gandef.threshold_logit(0.5) == 0.0
    np.testing.assert_allclose(1 / (1 + math.exp(-gandef.threshold_logit(0.8))), 0.8, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# The steps: hand-computed metrics, which network changes, signs, gamma = 0.


@pytest.mark.parametrize("which", ["tiny", "tiny_v1"])
def test_steps_report_the_hand_computed_losses(which, request):
    t = request.getfixturevalue(which)
    variant = t.parts.hparams["classifier_loss"]
    want = hand_terms(t, t.state, t.x, t.x_adv, t.y, 1.5, variant)
    s1, m = t.d_step(t.state, t.x, t.x_adv, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["loss_d"], want["loss_d"], rtol=2e-5)
    want = hand_terms(t, s1, t.x, t.x_adv, t.y, 1.5, variant)  # the C step faces the updated D
    _, m = t.c_step(s1, t.x, t.x_adv, t.y, jax.random.PRNGKey(2))
    for k in ("loss_c", "ce", "penalty"):
        np.testing.assert_allclose(m[k], want[k], rtol=2e-5, err_msg=k)
    assert want["penalty"] > 0.1


def test_d_step_changes_only_d(tiny):
    s0 = tiny.state
    s1, _ = tiny.d_step(s0, tiny.x, tiny.x_adv, jax.random.PRNGKey(1))
    assert _leaves_equal(s1["classifier"], s0["classifier"])  # params, optimizer state, step
    assert all(_changed(s1["discriminator"].params, s0["discriminator"].params))
    assert int(s1["discriminator"].step) == int(s0["discriminator"].step) + 1


def test_c_step_changes_only_c(tiny):
    s0 = tiny.state
    s1, _ = tiny.c_step(s0, tiny.x, tiny.x_adv, tiny.y, jax.random.PRNGKey(1))
    assert _leaves_equal(s1["discriminator"], s0["discriminator"])
    changed = _changed(s1["classifier"].params, s0["classifier"].params)
    assert sum(changed) >= 0.9 * len(changed)
    assert int(s1["classifier"].step) == int(s0["classifier"].step) + 1


@pytest.mark.parametrize("which", ["tiny", "tiny_v1"])
def test_each_step_lowers_its_own_objective(which, request):
    """Signs: D's step lowers L_D (it learns the source); C's step lowers L_C, so it raises D's loss."""
    t = request.getfixturevalue(which)
    variant = t.parts.hparams["classifier_loss"]
    before = hand_terms(t, t.state, t.x, t.x_adv, t.y, 1.5, variant)
    s1, _ = t.d_step(t.state, t.x, t.x_adv, jax.random.PRNGKey(1))
    mid = hand_terms(t, s1, t.x, t.x_adv, t.y, 1.5, variant)
    assert mid["loss_d"] < before["loss_d"]
    s2, _ = t.c_step(s1, t.x, t.x_adv, t.y, jax.random.PRNGKey(2))
    after = hand_terms(t, s2, t.x, t.x_adv, t.y, 1.5, variant)
    assert after["loss_c"] < mid["loss_c"]


def test_gamma_zero_is_adversarial_training_on_clean_plus_adversarial(tiny_g0, tiny):
    """gamma = 0: C's loss is PGD-AT's cross-entropy objective on the batch [x; x_adv], and one C step
    is exactly the skeleton's update on that batch (same optimizer, same starting weights)."""
    t = tiny_g0
    s0 = t.state
    both = {"image": jnp.concatenate([t.x, t.x_adv]), "label": jnp.concatenate([t.y, t.y])}
    at_state, at_metrics = jax.jit(lambda c: supervised.update(c, supervised.ce_objective(), both, None,
                                                               jax.random.PRNGKey(2)))(s0["classifier"])
    s1, m = t.c_step(s0, t.x, t.x_adv, t.y, jax.random.PRNGKey(2))
    np.testing.assert_allclose(m["loss_c"], at_metrics["loss"], rtol=1e-6)
    np.testing.assert_allclose(m["loss_c"], hand_terms(t, s0, t.x, t.x_adv, t.y, 0.0, "v2")["ce"], rtol=2e-5)
    for a, b in zip(jax.tree.leaves(s1["classifier"].params), jax.tree.leaves(at_state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # and with gamma = 1.5 the same step from the same state is another one: the penalty has a gradient
    s1g, _ = tiny.c_step(s0, t.x, t.x_adv, t.y, jax.random.PRNGKey(2))
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(s1g["classifier"].params),
                                                     jax.tree.leaves(at_state.params)))


def test_train_step_is_algorithm_1(tiny_d2):
    """The attack on C within the eps in force (a curriculum here), d_steps D steps, one C step."""
    t = tiny_d2  # d_steps=2, eps ramped over one epoch of 4 steps: 0.075 at C's first step
    x_adv = t.attack(t.state, t.x, t.y, jax.random.PRNGKey(3))
    delta = np.abs(np.asarray(x_adv) - np.asarray(t.x))
    assert 0.03 < delta.max() <= 0.075 + 1e-6 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    logits_fn = t.parts.classifier(t.state)
    assert _ce(logits_fn(x_adv), t.y) > _ce(logits_fn(t.x), t.y)  # the attack raised C's loss
    s1, m = t.train_step(t.state, t.batch, jax.random.PRNGKey(4))
    assert int(s1["discriminator"].step) == 2 and int(s1["classifier"].step) == 1
    assert {"loss_d", "loss_c", "ce", "penalty", "d_clean", "d_adv", "acc_clean", "acc_adv", "eps"} <= set(m)
    np.testing.assert_allclose(m["eps"], 0.075, rtol=1e-6)
    assert all(np.isfinite(float(v)) for v in m.values())
    _, m = t.train_step(s1, t.batch, jax.random.PRNGKey(5))
    np.testing.assert_allclose(m["eps"], 0.15, rtol=1e-6)


def test_d_steps_alone_teach_d_to_tell_adversarial_logits(tiny_g0):
    """C fixed, D's steps separate its P(adversarial) on adversarial and clean logits."""
    t = tiny_g0
    state, first = t.d_step(t.state, t.x, t.x_adv, jax.random.PRNGKey(0))
    for i in range(40):
        state, m = t.d_step(state, t.x, t.x_adv, jax.random.PRNGKey(i + 1))
    assert float(m["loss_d"]) < float(first["loss_d"]) - 0.02
    assert float(m["d_adv"]) - float(m["d_clean"]) > float(first["d_adv"]) - float(first["d_clean"]) + 0.02


# ----------------------------------------------------------------------------------------------
# GanDef-Comb: the detector and its decision rule.


def test_comb_deploys_d_as_the_detector_with_the_papers_rule(tiny):
    assert tiny.defense.detector is None and tiny.defense.name == "gandef"
    assert tiny.defense.networks == ("classifier", "discriminator")
    x = jnp.concatenate([tiny.x, tiny.x_adv])
    z = tiny.parts.classifier_module.apply({"params": tiny.state["classifier"].params}, x)
    prob = np.asarray(jax.nn.sigmoid(tiny.parts.discriminator_module.apply(
        {"params": tiny.state["discriminator"].params}, z)))
    for t in (float(np.quantile(prob, 0.25)), 0.5, float(np.quantile(prob, 0.75))):
        comb = gandef.make(tiny_config(comb=True, threshold=t), INFO, 4)
        assert comb.name == "gandef_comb" and comb.detector is not None
        flags = np.asarray(comb.detector.flags(tiny.state, x))
        np.testing.assert_array_equal(flags, prob > t)  # D's probability of "adversarial" above t
    # GanDef-Comb deploys the same classifier C
    np.testing.assert_allclose(comb.classifier(tiny.state)(x), z, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Networks.


def test_logit_discriminator_is_an_mlp_on_the_logits():
    d = LogitDiscriminator(hidden=(32, 64))
    variables = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((5, 10))))
    assert models.param_count(variables["params"]) == (10 * 32 + 32) + (32 * 64 + 64) + (64 + 1)
    assert jax.eval_shape(d.apply, variables, jnp.zeros((5, 10))).shape == (5,)
    with pytest.raises(ValueError, match=r"expects logits \[B, K\]"):
        d.init(jax.random.PRNGKey(0), jnp.zeros((5, 2, 2)))


def test_allcnn_table4_variant_by_hand():
    conv = lambda k, i, o: k * k * i * o + o  # noqa: E731
    body = conv(3, 3, 96) + 2 * conv(3, 96, 96) + conv(3, 96, 192) + 3 * conv(3, 192, 192) + conv(1, 192, 192)
    x = jnp.zeros((1, 32, 32, 3))
    shapes = {}
    for variant, tail in (("table4", conv(1, 192, 192) + 192 * 10 + 10), ("released_code", conv(1, 192, 10) + 110)):
        m = models.make({"name": "allcnn", "variant": variant}, 10)
        shapes[variant] = jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), x))
        assert models.param_count(shapes[variant]["params"]) == body + tail, variant
    assert body + conv(1, 192, 192) + 1930 == 1_406_794 and body + conv(1, 192, 10) + 110 == 1_369_848
    feats = models.make({"name": "allcnn", "variant": "table4"}, 0)
    assert jax.eval_shape(feats.apply, shapes["table4"], x).shape == (1, 192)  # Table 4: GAP over 192 channels
    with pytest.raises(ValueError, match="config.model.variant"):
        models.make({"name": "allcnn", "variant": "table5"}, 10)


# ----------------------------------------------------------------------------------------------
# Config errors, in experiment.build, naming the field.


def _quick(**defense):
    c = load_config("quickstart.py", "smoke")
    c.defense = {"name": "gandef", "attack": {"attack": "pgd", "eps": 0.1, "step_size": 0.05, "num_steps": 2}}
    for k, v in defense.items():
        c.defense[k] = v
    return c


@pytest.mark.parametrize("change, message", [
    ({"gama": 1.0}, r"config.defense.gama: unknown field \(did you mean 'gamma'\?\)"),
    ({"gamma": -1.0}, r"config.defense.gamma: must be a number in \[0.0, inf\]"),
    ({"classifier_loss": "v3"}, r"config.defense.classifier_loss: 'v3' is not one of \['v2', 'v1'\]"),
    ({"d_steps": 0}, r"config.defense.d_steps: must be an integer >= 1"),
    ({"d_hidden": []}, r"config.defense.d_hidden: must be a non-empty list"),
    ({"d_hidden": [32, 0]}, r"config.defense.d_hidden: must be a non-empty list of layer sizes >= 1"),
    ({"comb": "yes"}, r"config.defense.comb: must be True or False"),
    ({"threshold": 1.0}, r"config.defense.threshold: must be a number in \(0.0, 1.0\)"),
    ({"attack": {"attack": "pgd", "eps": 0.1, "num_steps": 2}}, r"config.defense.attack.step_size: missing"),
])
def test_bad_config_fails_in_build_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        experiment.build(_quick(**change))


def test_missing_attack_and_unknown_network_fail_in_build():
    c = _quick()
    del c.defense["attack"]
    with pytest.raises(ValueError, match="config.defense.attack: missing"):
        experiment.build(c)
    c = _quick()
    c.train.optimizers = {"generator": {"learning_rate": 1e-3}}
    with pytest.raises(ValueError, match=r"config.train.optimizers.generator: gandef has no network 'generator'"
                                         r".*\['classifier', 'discriminator'\]"):
        experiment.build(c)


# ----------------------------------------------------------------------------------------------
# The configs: the paper's settings, and smoke runs on the real data files.


def test_configs_hold_the_papers_settings():
    m, cf = load_config("gandef_mnist.py"), load_config("gandef_cifar10.py")
    assert m.model.name == "lenet" and cf.model.name == "allcnn" and cf.model.variant == "table4"
    assert m.defense.attack.to_dict() == {"attack": "pgd", "eps": 0.3, "step_size": 0.01, "num_steps": 40,
                                          "random_start": True}
    assert (cf.defense.attack.num_steps, cf.defense.attack.step_size, cf.defense.attack.eps) == (
        7, pytest.approx(2 / 255), pytest.approx(8 / 255))
    for c, eps, bim, pgd, (n1, n2) in ((m, 0.3, 0.05, 0.01, (40, 80)), (cf, 8 / 255, 2 / 255, 2 / 255, (7, 20))):
        a = c.eval.attacks
        assert set(a) == {"fgsm", "bim", "pgd1", "pgd2", "pgd1000", "autoattack"}
        assert all(s.eps == pytest.approx(eps) for s in a.values())
        assert a.bim.step_size == pytest.approx(bim) and a.pgd1.step_size == a.pgd2.step_size == pytest.approx(pgd)
        assert (a.pgd1.num_steps, a.pgd2.num_steps, a.pgd1000.num_steps) == (n1, n2, 1000)
        assert a.autoattack.version == "standard" and "attacks" not in a.autoattack
        assert c.defense.classifier_loss == "v2" and c.defense.comb is False and c.defense.threshold == 0.5
    comb = load_config("gandef_cifar10.py", "comb")
    assert comb.defense.comb is True
    assert comb.eval.attacks.pgd2_adaptive.against_detector is True
    assert set(comb.eval.attacks) == set(cf.eval.attacks) | {f"{k}_adaptive" for k in cf.eval.attacks}
    assert load_config("gandef_mnist.py", "loss=v1,gamma=0").defense.to_dict()["gamma"] == 0.0
    for name in ("gandef_mnist.py", "gandef_cifar10.py"):
        smoke = load_config(name, "smoke,comb")
        specs.resolve(smoke.eval)  # every smoke-cheap entry resolves
        assert smoke.eval.attacks.pgd1000.num_steps <= 3 and smoke.eval.attacks.autoattack.num_steps <= 2


def _smoke(name, npz, tmp_path_factory, arg, attacks):
    c = load_config(name, arg)
    c.data.source, c.data.path = "npz", npz
    c.eval.attacks = {k: v for k, v in c.eval.attacks.items() if k in attacks}  # fewer compiles, same paths
    workdir = str(tmp_path_factory.mktemp(name[:-3]))
    return c, experiment.run(c, workdir)


@pytest.fixture(scope="module")
def mnist_comb_run(tmp_path_factory):
    return _smoke("gandef_mnist.py", real_data("mnist.npz"), tmp_path_factory, "smoke,comb",
                  ("pgd1", "pgd1_adaptive"))


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    return _smoke("gandef_cifar10.py", real_data("cifar10_subset.npz"), tmp_path_factory, "smoke",
                  ("fgsm", "pgd1"))


def test_mnist_comb_smoke_on_real_npz(mnist_comb_run):
    c, results = mnist_comb_run
    assert results["info"]["dataset"] == "mnist" and results["info"]["num_train"] == c.data.train_size
    det = results["detector"]
    assert det["threshold"] == 0.0  # 0.5 in probability is 0 in D's log-odds
    assert det["clean_accuracy_with_detector"] <= results["clean_accuracy"]
    for label in ("pgd1", "pgd1_adaptive"):
        r = results["attacks"][label]
        assert r["budget_violations"] == 0
        assert r["accuracy_on_adversarial"] <= r["accuracy_with_detector"] <= (
            r["accuracy_on_adversarial"] + r["flagged_adversarial"] + 1e-9)


def test_cifar10_smoke_on_real_npz(cifar_run):
    c, results = cifar_run
    assert results["info"]["dataset"] == "cifar10" and "detector" not in results
    assert set(results["attacks"]) == {"fgsm", "pgd1"}
    assert all(r["budget_violations"] == 0 for r in results["attacks"].values())


def test_benchmark_keeps_its_plan_so_a_resumed_or_extended_run_trains_on_the_same_size(tmp_path):
    """benchmarks/gandef.py: the first invocation's plan (the training size it fitted to the budget) is
    reused by the next one on the same --out; other settings there are refused, naming them."""
    import argparse
    import json

    from benchmarks import gandef as bench

    a = argparse.Namespace(dataset="mnist", npz="x/mnist.npz", budget_hours=1.5, epochs=3.0, batch=128, width=1.0,
                           lr=1e-3, d_lr=1e-2, train_pgd_steps=10, ramp=1.0, eval=500, strong_eval=100, curve_eval=500,
                           tiny=False)
    assert bench.saved_plan(a, str(tmp_path)) is None
    size = {"train_size": 34304, "epochs": 3.0, "train_full": 60000}
    json.dump({"args": bench.plan_args(a), **size}, open(tmp_path / "plan.json", "w"))
    assert bench.saved_plan(a, str(tmp_path)) == size
    a.budget_hours = 2.0
    with pytest.raises(SystemExit, match=r"budget_hours.*1\.5, 2\.0.*another --out"):
        bench.saved_plan(a, str(tmp_path))


def test_benchmark_rows_selects_the_trained_rows_and_always_keeps_gandef():
    """benchmarks/gandef.py --rows: the CIFAR-10 table needs only pure PGD beside GanDef (and Comb, built
    from GanDef's run); the rows left out are named, a misspelled row is refused."""
    import argparse

    from benchmarks import gandef as bench

    a = argparse.Namespace(dataset="cifar10", train_pgd_steps=0, ramp=0.0, batch=128, width=0.25, epochs=1.0,
                           lr=1e-3, eval=8, tiny=False, npz="x.npz", no_v1=False, rows="pgd_at", gamma=None,
                           mix_pgd_config="mix_pgd_cifar10", logit_pairing_config="logit_pairing_cifar10")
    rows, skipped = bench.row_defenses(a)
    assert list(rows) == ["pgd_at", "gandef"]
    assert {s.split(":")[0] for s in skipped} >= {"Vanilla", "Mix PGD", "Logit Pairing", "GanDef V1"}
    a.rows = ""
    assert list(bench.row_defenses(a)[0]) == ["standard", "pgd_at", "mix_pgd", "logit_pairing", "gandef",
                                              "gandef_v1"]
    a.rows = "pgd_at,mix_pdg"
    with pytest.raises(SystemExit, match="mix_pdg"):
        bench.row_defenses(a)


def test_benchmark_gamma_sets_gandefs_rows_and_refuses_a_row_trained_at_another(tmp_path):
    """benchmarks/gandef.py --gamma: the GanDef rows (V2 and V1) take it, the baselines do not have it; a
    finished GanDef row trained at another gamma is refused instead of being reported under the new one."""
    import argparse
    import json

    from benchmarks import gandef as bench

    a = argparse.Namespace(dataset="cifar10", train_pgd_steps=0, ramp=0.0, batch=128, width=0.25, epochs=1.0,
                           lr=1e-3, eval=8, tiny=False, npz="x.npz", no_v1=False, rows="pgd_at", gamma=0.5,
                           mix_pgd_config="mix_pgd_cifar10", logit_pairing_config="logit_pairing_cifar10")
    rows, _ = bench.row_defenses(a)
    assert rows["gandef"]["gamma"] == 0.5 and "gamma" not in rows["pgd_at"]
    a.gamma = None
    assert bench.row_defenses(a)[0]["gandef"]["gamma"] == 2.0            # the config's
    done = tmp_path / "gandef"
    done.mkdir()
    (done / "results.json").write_text("{}")
    (done / "config.json").write_text(json.dumps({"defense": {"name": "gandef", "gamma": 2.0}}))
    with pytest.raises(SystemExit, match=r"trained with gamma 2\.0, not 0\.5.*another --out"):
        bench.run_row(a, str(tmp_path), "gandef", {**rows["gandef"], "gamma": 0.5}, {"train_size": 128})


def test_benchmark_convergence_feeds_images_as_the_suite_does(monkeypatch):
    """benchmarks/gandef.py's Fig. 2 once fed the stored uint8 pixels (0-255) to the classifier, which put a
    logit-pairing model at 47% where the suite measured 97%. A classifier that is right only on inputs in
    [0, 1] tells the two apart."""
    import types

    import jax.numpy as jnp
    import numpy as np

    from benchmarks import gandef as bench
    from robustjax import data as data_lib
    from robustjax.train import loop

    ds = data_lib.ArrayDataset(np.full((6, 4, 4, 1), 200, np.uint8), np.zeros(6, np.int32))

    def classifier(state):   # class 0 when every pixel is in [0, 1], else class 1
        return lambda x: jnp.stack([jnp.max(x, axis=(1, 2, 3)) <= 1, jnp.max(x, axis=(1, 2, 3)) > 1], -1) * 1.0

    monkeypatch.setattr(bench, "built", lambda config: (types.SimpleNamespace(classifier=classifier), {}, ds, None, 1))
    monkeypatch.setattr(loop, "checkpoint_steps", lambda workdir: [])
    assert bench.convergence(None, "unused", 6) == [{"epoch": 0.0, "step": 0, "clean_accuracy": 1.0}]
