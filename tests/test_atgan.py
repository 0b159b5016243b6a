"""ATGAN: Table 1 generators, the AC discriminator, each loss term against hand-computed values, which
network each step may change, the PGD examples of Algorithm 1, the composed classifier, config errors,
restoring a loss network from another run, and smoke runs of the three configs end to end."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from robustjax import experiment, models
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import atgan, common
from robustjax.defenses.base import train_apply
from robustjax.models import discriminators, generators
from robustjax.train import loop
from tests.conftest import real_data
from tests.test_config import load_config

NUM_CLASSES = 3
INFO = DataInfo(name="tiny", image_shape=(8, 8, 1), num_classes=NUM_CLASSES, num_train=16, num_test=8)
INFO_MNIST = DataInfo(name="mnist", image_shape=(28, 28, 1), num_classes=10, num_train=128, num_test=32)


def tiny_config(**defense):
    """A tiny ATGAN config: small_cnn body at width 0.25 on 8x8x1 images, MNIST generator at 0.25,
    FracAT with half of each batch adversarial, plain SGD (so a step is a small gradient step)."""
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25
    c.defense.name = "atgan"
    c.defense.attack = {"attack": "pgd", "eps": 0.3, "step_size": 0.1, "num_steps": 3, "random_start": True}
    c.defense.adv_fraction = 0.5  # FracAT: half of each batch adversarial
    c.defense.alpha, c.defense.beta, c.defense.gamma = 2.0, 3.0, 5.0
    c.defense.generator = "mnist"
    c.defense.generator_width = 0.25
    c.defense.loss_net_epochs = 1.0
    for k, v in defense.items():
        if k in c.defense:
            del c.defense[k]  # ConfigDict keeps a field's type; tests also set wrongly typed values
        c.defense[k] = v
    c.train.steps = 10
    c.train.optimizer = optimizer("sgd", 5e-3, momentum=0.0)
    return c


class Tiny:
    """One build of the tiny ATGAN with jitted steps (shared by the tests of a module-scoped fixture)."""

    def __init__(self, config, steps_per_epoch=2):
        self.parts = atgan.build(config, INFO, steps_per_epoch)
        self.defense = atgan.make(config, INFO, steps_per_epoch)
        rng = np.random.default_rng(0)
        self.x = jnp.asarray(rng.uniform(0.0, 1.0, (8, 8, 8, 1)), jnp.float32)
        self.y = jnp.asarray(rng.integers(0, NUM_CLASSES, 8), jnp.int32)
        self.batch = {"image": self.x, "label": self.y}
        self.state = jax.jit(self.parts.init)(jax.random.PRNGKey(0), self.batch)
        self.d_step = jax.jit(self.parts.d_step)
        self.g_step = jax.jit(self.parts.g_step)
        self.atgan_step = jax.jit(self.parts.atgan_step)
        self.pretrain_step = jax.jit(self.parts.pretrain_step)
        self.attack = jax.jit(self.parts.adversarial_examples)
        self.outputs = jax.jit(self._outputs)

    def _outputs(self, state, x, x_in):
        """The raw network outputs the hand-computed terms need (G in train mode, as in the steps; D,
        a small_cnn without BatchNorm or dropout, is the same in both modes; the loss net in eval mode)."""
        g, d, ln = state["generator"], state["discriminator"], state["loss_net"]
        fake, _ = train_apply(g, g.params, x_in, jax.random.PRNGKey(0))
        c_real, s_real = self.parts.discriminator.apply({"params": d.params}, x)
        c_fake, s_fake = self.parts.discriminator.apply({"params": d.params}, fake)
        phi = functools.partial(models.first_conv_activations, self.parts.loss_net, {"params": ln.params})
        return c_real, s_real, c_fake, s_fake, phi(fake), phi(x)


@pytest.fixture(scope="module")
def tiny():
    return Tiny(tiny_config())


# ----------------------------------------------------------------------------------------------
# Hand-computed loss terms (numpy, from the networks' raw outputs).


def _np(a):
    return np.asarray(a, np.float64)


def _ce(logits, y):
    logits = _np(logits)
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), np.asarray(y)])


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -_np(z))


def hand_terms(t: Tiny, state, x, x_in, y):
    """Every ATGAN loss term computed with numpy from the networks' raw outputs (see ``Tiny._outputs``)."""
    c_real, s_real, c_fake, s_fake, phi_fake, phi_x = t.outputs(state, x, x_in)
    hp = t.parts.hparams
    terms = {
        "l_a": _ce(c_real, y),
        "l_b": _ce(c_fake, y),
        # -L_d = -(E log D_d(x) + E log(1 - D_d(G(x~)))), with 1 - sigmoid(z) = sigmoid(-z)
        "neg_l_d": -(np.mean(_log_sigmoid(s_real)) + np.mean(_log_sigmoid(-_np(s_fake)))),
        # -L_g = -E log D_d(G(x~))  (non-saturating)
        "neg_l_g": -np.mean(_log_sigmoid(s_fake)),
        "l_f": np.mean((_np(phi_fake) - _np(phi_x)) ** 2),
        "d_real": np.mean(1.0 / (1.0 + np.exp(-_np(s_real)))),
        "d_fake": np.mean(1.0 / (1.0 + np.exp(-_np(s_fake)))),
    }
    a, b, gm = hp["alpha"], hp["beta"], hp["gamma"]
    terms["loss_d"] = a * (terms["l_a"] + b * terms["l_b"]) + terms["neg_l_d"]
    terms["loss_g"] = a * (terms["l_a"] + b * terms["l_b"]) + terms["neg_l_g"] + gm * terms["l_f"]
    return terms


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _changed_leaves(a, b):
    return [not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


# ----------------------------------------------------------------------------------------------
# Networks.


def _param_count(module, shape):
    variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(shape), train=False))
    return models.param_count(variables["params"])


@pytest.mark.parametrize(
    "name, shape, expected",
    [
        # conv 3x3 1->8 +BN, 8->16 +BN, 16->32 +BN; 4 ResBlocks of two 3x3 32->32 convs +2 BN;
        # tconv 32->16 +BN, 16->8 +BN; conv 3x3 8->1 with bias.
        ("mnist", (1, 28, 28, 1), (72 + 16) + (1152 + 32) + (4608 + 64) + 4 * (2 * 9216 + 2 * 64)
         + (4608 + 32) + (1152 + 16) + (72 + 1)),
        # conv 4x4 3->64 +BN, 64->128 +BN; tconv 4x4 128->128 +BN, 128->64 +BN; conv 3x3 64->3 + bias.
        ("svhn", (1, 32, 32, 3), (3072 + 128) + (131072 + 256) + (262144 + 256) + (131072 + 128) + (1728 + 3)),
        # conv 4x4 3->128 +BN; tconv 4x4 128->128 +BN; conv 3x3 128->3 + bias.
        ("cifar10", (1, 32, 32, 3), (6144 + 256) + (262144 + 256) + (3456 + 3)),
    ],
)
def test_generators_follow_table1(name, shape, expected):
    g = generators.make_generator(name)
    assert _param_count(g, shape) == expected
    out = jax.eval_shape(lambda: g.apply(g.init(jax.random.PRNGKey(0), jnp.zeros(shape)), jnp.zeros(shape)))
    assert out.shape == shape


def test_generator_output_is_an_image_in_the_box():
    g = generators.make_generator("svhn", width=0.125, bounds=(-1.0, 2.0))
    x = jnp.asarray(np.random.default_rng(1).uniform(-1.0, 2.0, (2, 8, 8, 3)), jnp.float32)
    variables = jax.jit(g.init)(jax.random.PRNGKey(0), x)
    y = jax.jit(lambda v, x: g.apply(v, 50.0 * x))(variables, x)  # far outside the box: tanh saturates
    assert y.shape == x.shape
    assert float(y.min()) >= -1.0 and float(y.max()) <= 2.0
    assert float(jnp.std(y)) > 0


def test_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown generator 'cifar100'"):
        generators.make_generator("cifar100")
    with pytest.raises(ValueError, match="width must be > 0"):
        generators.make_generator("mnist", width=0.0)
    g = generators.make_generator("mnist", width=0.25)
    with pytest.raises(ValueError, match="multiples of 4"):
        jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((1, 10, 10, 1))))


def test_ac_discriminator_heads_on_a_feature_body():
    d = discriminators.make_discriminator({"name": "small_cnn", "width": 0.25}, num_classes=NUM_CLASSES)
    variables = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((5, 8, 8, 1))))
    c, s = jax.eval_shape(d.apply, variables, jnp.zeros((5, 8, 8, 1)))
    assert c.shape == (5, NUM_CLASSES) and s.shape == (5,)
    params = variables["params"]
    assert set(params) == {"body", "class_head", "source_head"}
    assert "head" not in params["body"]  # the body is built with num_classes=0: features, no logits


# ----------------------------------------------------------------------------------------------
# Loss terms.


def test_discrimination_loss_by_hand():
    real, fake = jnp.array([0.0, 2.0]), jnp.array([-1.0, 0.0])
    expected = (np.log(2) + np.log1p(np.exp(-2.0))) / 2 + (np.log1p(np.exp(-1.0)) + np.log(2)) / 2
    np.testing.assert_allclose(atgan.discrimination_loss(real, fake), expected, rtol=1e-6)
    # Confident and right: ~0; confident and wrong: ~|logit|; finite either way (stable form).
    np.testing.assert_allclose(atgan.discrimination_loss(jnp.array([100.0]), jnp.array([-100.0])), 0.0, atol=1e-6)
    np.testing.assert_allclose(atgan.discrimination_loss(jnp.array([-100.0]), jnp.array([100.0])), 200.0, rtol=1e-6)


def test_generator_adversarial_loss_by_hand():
    fake = jnp.array([-1.0, 0.0, 3.0])
    nonsat = np.mean([np.log1p(np.exp(1.0)), np.log(2), np.log1p(np.exp(-3.0))])  # -mean log sigmoid(f)
    minimax = np.mean([np.log(1 - 1 / (1 + np.exp(1.0))), np.log(0.5), np.log(1 - 1 / (1 + np.exp(-3.0)))])
    np.testing.assert_allclose(atgan.generator_adversarial_loss(fake), nonsat, rtol=1e-6)
    np.testing.assert_allclose(atgan.generator_adversarial_loss(fake, "minimax"), minimax, rtol=1e-6)
    with pytest.raises(ValueError, match="generator_loss"):
        atgan.generator_adversarial_loss(fake, "wgan")


def test_perceptual_loss_and_objectives_by_hand():
    a = jnp.array([[[[1.0, 2.0]], [[0.0, -1.0]]]])  # [1, 2, 1, 2]
    b = jnp.array([[[[0.0, 2.0]], [[2.0, -1.0]]]])
    np.testing.assert_allclose(atgan.perceptual_loss(a, b), (1.0 + 0.0 + 4.0 + 0.0) / 4)
    np.testing.assert_allclose(atgan.discriminator_objective(1.0, 2.0, 0.5, alpha=5.0, beta=4.0), 5 * (1 + 8) + 0.5)
    np.testing.assert_allclose(atgan.generator_objective(1.0, 2.0, 0.5, 0.1, alpha=5.0, beta=4.0, gamma=10.0),
                               5 * (1 + 8) + 0.5 + 1.0)


def test_d_and_g_steps_report_the_hand_computed_terms(tiny):
    t, s0 = tiny, tiny.state
    x_in = jnp.clip(t.x + 0.1, 0.0, 1.0)
    want = hand_terms(t, s0, t.x, x_in, t.y)
    s1, m = t.d_step(s0, t.x, x_in, t.y, jax.random.PRNGKey(1))
    for k_metric, k_hand in [("l_a", "l_a"), ("l_b_d", "l_b"), ("neg_l_d", "neg_l_d"), ("loss_d", "loss_d"),
                             ("d_real", "d_real"), ("d_fake", "d_fake")]:
        np.testing.assert_allclose(m[k_metric], want[k_hand], rtol=2e-5, err_msg=k_metric)
    l_a = float(m["l_a"])
    want = hand_terms(t, s1, t.x, x_in, t.y)  # the G step sees the updated D
    _, m = t.g_step(s1, t.x, x_in, t.y, jax.random.PRNGKey(2), l_a)
    for k in ("l_b", "neg_l_g", "l_f"):
        np.testing.assert_allclose(m[k], want[k], rtol=2e-5, err_msg=k)
    assert want["l_f"] > 0
    # L_a does not depend on G: the step reports L_G with the L_a it was given (the D step's value).
    a, b, gm = 2.0, 3.0, 5.0
    np.testing.assert_allclose(m["loss_g"], a * (l_a + b * want["l_b"]) + want["neg_l_g"] + gm * want["l_f"],
                               rtol=2e-5)


def test_each_step_lowers_its_own_objective(tiny):
    """Signs: with plain SGD and a small learning rate, the D step lowers L_D and the G step L_G."""
    t, s0 = tiny, tiny.state
    x_in = jnp.clip(t.x + 0.1, 0.0, 1.0)
    s1, _ = t.d_step(s0, t.x, x_in, t.y, jax.random.PRNGKey(1))
    assert hand_terms(t, s1, t.x, x_in, t.y)["loss_d"] < hand_terms(t, s0, t.x, x_in, t.y)["loss_d"]
    s2, _ = t.g_step(s1, t.x, x_in, t.y, jax.random.PRNGKey(2), 0.0)
    assert hand_terms(t, s2, t.x, x_in, t.y)["loss_g"] < hand_terms(t, s1, t.x, x_in, t.y)["loss_g"]


def test_gan_terms_alone_push_d_and_g_the_right_way():
    """alpha = gamma = 0 leaves only the GAN terms: D learns to tell clean from generated, G to fool D."""
    t = Tiny(tiny_config(alpha=0.0, gamma=0.0, loss_net_epochs=0.0))
    x_in = jnp.clip(t.x + 0.1, 0.0, 1.0)
    before = hand_terms(t, t.state, t.x, x_in, t.y)
    s1, _ = t.d_step(t.state, t.x, x_in, t.y, jax.random.PRNGKey(1))
    mid = hand_terms(t, s1, t.x, x_in, t.y)
    assert mid["neg_l_d"] < before["neg_l_d"]
    assert mid["d_real"] - mid["d_fake"] > before["d_real"] - before["d_fake"]
    s2, _ = t.g_step(s1, t.x, x_in, t.y, jax.random.PRNGKey(2), 0.0)
    after = hand_terms(t, s2, t.x, x_in, t.y)
    assert after["d_fake"] > mid["d_fake"]  # G's outputs look more real to the D it just faced


# ----------------------------------------------------------------------------------------------
# Which network each step changes.


def test_d_step_changes_only_d(tiny):
    s0 = tiny.state
    s1, _ = tiny.d_step(s0, tiny.x, tiny.x, tiny.y, jax.random.PRNGKey(1))
    assert _leaves_equal(s1["generator"], s0["generator"])  # params, BatchNorm statistics, optimizer state
    assert _leaves_equal(s1["loss_net"], s0["loss_net"])
    assert all(_changed_leaves(s1["discriminator"].params, s0["discriminator"].params))
    assert int(s1["discriminator"].step) == int(s0["discriminator"].step) + 1


def test_g_step_changes_only_g(tiny):
    s0 = tiny.state
    s1, _ = tiny.g_step(s0, tiny.x, tiny.x, tiny.y, jax.random.PRNGKey(1), 0.0)
    assert _leaves_equal(s1["discriminator"], s0["discriminator"])
    assert _leaves_equal(s1["loss_net"], s0["loss_net"])
    changed = _changed_leaves(s1["generator"].params, s0["generator"].params)
    assert sum(changed) >= 0.9 * len(changed)
    assert not _leaves_equal(s1["generator"].batch_stats, s0["generator"].batch_stats)  # G ran in train mode


def test_phases_pretrain_changes_only_the_loss_net_and_atgan_never_does(tiny):
    assert [p.name for p in tiny.defense.phases] == ["pretrain_loss_net", "atgan"]
    assert tiny.defense.phases[0].num_steps == 2  # loss_net_epochs=1 x steps_per_epoch=2
    s0 = tiny.state
    s1, m = tiny.pretrain_step(s0, tiny.batch, jax.random.PRNGKey(1))
    assert "loss_net_loss" in m
    assert _leaves_equal(s1["generator"], s0["generator"]) and _leaves_equal(s1["discriminator"], s0["discriminator"])
    assert any(_changed_leaves(s1["loss_net"].params, s0["loss_net"].params))
    s2 = s1
    for i in range(2):
        s2, m = tiny.atgan_step(s2, tiny.batch, jax.random.PRNGKey(10 + i))
    assert _leaves_equal(s2["loss_net"], s1["loss_net"])
    assert any(_changed_leaves(s2["generator"].params, s1["generator"].params))
    assert any(_changed_leaves(s2["discriminator"].params, s1["discriminator"].params))
    np.testing.assert_allclose(m["eps"], 0.3, rtol=1e-6)
    assert all(np.isfinite(float(v)) for v in m.values())


# ----------------------------------------------------------------------------------------------
# Algorithm 1's adversarial examples, FracAT, and what an attacker sees.


def test_pgd_examples_stay_within_eps_t_and_the_box(tiny):
    x_adv = tiny.attack(tiny.state, tiny.x, tiny.y, jax.random.PRNGKey(3), 0.3)
    delta = np.abs(np.asarray(x_adv) - np.asarray(tiny.x))
    assert delta.max() <= 0.3 + 1e-6
    assert delta.max() > 0.1  # it moved
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    x_small = tiny.attack(tiny.state, tiny.x, tiny.y, jax.random.PRNGKey(3), 0.05)  # eps is traced
    assert np.abs(np.asarray(x_small) - np.asarray(tiny.x)).max() <= 0.05 + 1e-6


def test_pgd_raises_the_loss_of_the_composed_classifier(tiny):
    logits_fn = tiny.parts.classifier(tiny.state)
    x_adv = tiny.attack(tiny.state, tiny.x, tiny.y, jax.random.PRNGKey(3), 0.3)
    assert _ce(logits_fn(x_adv), tiny.y) > _ce(logits_fn(tiny.x), tiny.y)


def test_atgan_step_feeds_the_fracat_mix_to_the_generator(tiny):
    t = tiny
    key = jax.random.PRNGKey(7)
    k_attack, _, _ = jax.random.split(key, 3)
    x_adv = t.attack(t.state, t.x, t.y, k_attack, 0.3)
    x_in = common.mix_adversarial(t.x, x_adv, 0.5)
    assert np.array_equal(np.asarray(x_in[4:]), np.asarray(t.x[4:])) and not np.array_equal(x_in[:4], t.x[:4])
    _, m = t.atgan_step(t.state, t.batch, key)
    np.testing.assert_allclose(m["l_b_d"], hand_terms(t, t.state, t.x, x_in, t.y)["l_b"], rtol=2e-5)
    assert abs(float(m["l_b_d"]) - hand_terms(t, t.state, t.x, t.x, t.y)["l_b"]) > 1e-4


def test_classifier_is_dc_of_g_in_eval_mode(tiny):
    state, _ = tiny.atgan_step(tiny.state, tiny.batch, jax.random.PRNGKey(5))  # non-trivial BN statistics
    g, d = state["generator"], state["discriminator"]
    g_out = tiny.parts.generator.apply({"params": g.params, "batch_stats": g.batch_stats}, tiny.x, train=False)
    expected, _ = tiny.parts.discriminator.apply({"params": d.params}, g_out, train=False)
    np.testing.assert_allclose(tiny.defense.classifier(state)(tiny.x), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Config errors.


@pytest.mark.parametrize(
    "change, message",
    [
        ({"eps_tt": 0.3}, "config.defense.eps_tt: unknown field"),
        ({"eps_t": 0.3}, "config.defense.eps_t: unknown field: the train-time PGD is config.defense.attack now"),
        ({"alpah": 1.0}, r"config.defense.alpah: unknown field \(did you mean 'alpha'\?\)"),
        ({"generator": "celeba"}, "config.defense.generator: 'celeba' is not one of"),
        ({"generator_loss": "hinge"}, "config.defense.generator_loss"),
        ({"adv_fraction": 1.5}, r"config.defense.adv_fraction: must be a number in \[0.0, 1.0\]"),
        ({"attack": {"attack": "pgd", "eps": 0.3, "step_size": 0.1, "num_steps": 2.5}},
         "config.defense.attack.num_steps: must be an integer"),
        ({"attack": {"attack": "pgd", "step_size": 0.1, "num_steps": 2}}, "config.defense.attack.eps: missing"),
        ({"loss_net_epochs": 0.0}, "config.defense.loss_net_epochs: is 0 but gamma > 0"),
        ({"loss_net_workdir": "/tmp/x"}, "config.defense.loss_net_workdir: is set together with loss_net_epochs"),
    ],
)
def test_bad_defense_config_names_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        atgan.build(tiny_config(**change), INFO, 2)


def test_missing_field_is_named():
    c = tiny_config()
    del c.defense["attack"]
    with pytest.raises(ValueError, match="config.defense.attack: missing"):
        atgan.build(c, INFO, 2)


# ----------------------------------------------------------------------------------------------
# Smoke runs of the three configs through experiment.run, and restoring a loss network.


def _check_report(workdir, results):
    for name in ("config.json", "results.json", "report.md", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert 0.0 <= results["clean_accuracy"] <= 1.0
    assert results["attacks"]
    for label, r in results["attacks"].items():
        assert 0.0 <= r["robust_accuracy"] <= 1.0, label
    phases = {json.loads(line)["phase"] for line in open(os.path.join(workdir, "metrics.jsonl"))}
    assert phases == {"pretrain_loss_net", "atgan"}


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    c = load_config("atgan_mnist.py", "smoke")
    c.data.source, c.data.path = "npz", real_data("mnist.npz")
    workdir = str(tmp_path_factory.mktemp("atgan_mnist"))
    return c, workdir, experiment.run(c, workdir)


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("atgan_cifar10"))
    c = load_config("atgan_cifar10.py", "smoke")
    c.data.source = "tfds"  # the tfds path itself, on tfds's mock data
    with tfds.testing.mock_data(num_examples=96):
        results = experiment.run(c, workdir)
    return workdir, results


def test_mnist_smoke_on_real_npz(mnist_run):
    c, workdir, results = mnist_run
    _check_report(workdir, results)
    assert results["info"]["num_train"] == c.data.train_size


def test_cifar10_smoke_on_mock_tfds(cifar_run):
    _check_report(*cifar_run)


def test_svhn_smoke_on_mock_tfds(tmp_path):
    c = load_config("atgan_svhn.py", "smoke")
    assert c.data.name == "svhn_cropped" and c.data.source == "synthetic" and c.smoke
    c.data.source = "tfds"  # the tfds path itself, on tfds's mock data
    with tfds.testing.mock_data(num_examples=96):
        results = experiment.run(c, str(tmp_path))
    _check_report(str(tmp_path), results)


def test_config_args_set_eps_t_in_paper_units():
    assert load_config("atgan_svhn.py", "eps_t=4").defense.attack.eps == pytest.approx(4 / 255)
    assert load_config("atgan_cifar10.py").defense.attack.eps == pytest.approx(8 / 255)
    c = load_config("atgan_mnist.py", "eps_t=0.2,frac=0.5")
    assert c.defense.attack.eps == pytest.approx(0.2) and c.defense.adv_fraction == 0.5
    svhn = load_config("atgan_svhn.py")
    assert svhn.train.optimizers.discriminator.decay_epochs == [20, 30]
    assert svhn.train.optimizers.generator.b1 == 0.5


def test_loss_net_restored_from_a_run(mnist_run):
    c, workdir, _ = mnist_run
    sample = {"image": jnp.zeros((c.data.batch_size, 28, 28, 1)), "label": jnp.zeros((c.data.batch_size,), jnp.int32)}
    template = jax.eval_shape(atgan.build(c, INFO_MNIST, 4).init, jax.random.PRNGKey(0), sample)
    saved, meta = loop.restore_latest(workdir, template)
    assert meta is not None

    c2 = c.copy_and_resolve_references()
    c2.defense.loss_net_epochs, c2.defense.loss_net_workdir = 0.0, workdir
    reuse = atgan.make(c2, INFO_MNIST, 4)
    assert [p.name for p in reuse.phases] == ["atgan"]
    state = jax.jit(reuse.init)(jax.random.PRNGKey(1), sample)
    assert _leaves_equal(state["loss_net"].params, saved["loss_net"].params)


def test_loss_net_skips_a_damaged_newest_checkpoint_of_the_other_run(mnist_run, tmp_path, capfd):
    """load_network falls back to the next older checkpoint, with one warning line, as resuming does; with
    none usable it says so."""
    import glob
    import shutil

    c, workdir, _ = mnist_run
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    steps = loop.checkpoint_steps(copy)
    assert len(steps) >= 2, steps
    sample = {"image": jnp.zeros((c.data.batch_size, 28, 28, 1)), "label": jnp.zeros((c.data.batch_size,), jnp.int32)}
    template = jax.eval_shape(atgan.build(c, INFO_MNIST, 4).init, jax.random.PRNGKey(0), sample)
    like = {"params": template["loss_net"].params, "batch_stats": template["loss_net"].batch_stats}
    newest = atgan.load_network(copy, like)
    for step in steps[:-2]:
        shutil.rmtree(os.path.join(copy, "checkpoints", str(step)))
    files = glob.glob(os.path.join(copy, "checkpoints", str(steps[-1]), "state", "**", "d", "*"), recursive=True)
    assert files
    for f in files:
        os.truncate(f, os.path.getsize(f) // 2)
    capfd.readouterr()
    older = atgan.load_network(copy, like)
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and f"checkpoints/{steps[-1]} cannot be used" in warnings[0], err
    assert "using an older one" in warnings[0]
    # The loss network is frozen in ATGAN's phase: both checkpoints hold it, unchanged.
    assert _leaves_equal(older["params"], newest["params"])
    shutil.rmtree(os.path.join(copy, "checkpoints", str(steps[-2])))
    with pytest.raises(ValueError, match="none of its checkpoints can be restored"):
        atgan.load_network(copy, like)


def test_loss_net_restore_errors_before_training(mnist_run, cifar_run, tmp_path):
    c, _, _ = mnist_run
    c2 = c.copy_and_resolve_references()
    c2.defense.loss_net_epochs = 0.0
    c2.defense.loss_net_workdir = str(tmp_path)
    with pytest.raises(ValueError, match="loss_net_workdir.*no checkpoints/ directory"):
        atgan.make(c2, INFO_MNIST, 4)
    c2.defense.loss_net_workdir = cifar_run[0]  # a ResNet18 run: not the C&W CNN
    with pytest.raises(ValueError, match="does not match config.model"):
        atgan.make(c2, INFO_MNIST, 4)


def test_configs_follow_the_papers_grids_attack_step_and_resnet():
    mnist = load_config("atgan_mnist.py")
    assert mnist.eval.curves.pgd40.eps_grid == pytest.approx([0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
    assert mnist.eval.curves.pgd40.rel_step_size == pytest.approx(2.5 / 40)  # the step reaches every eps_i
    assert mnist.defense.attack.step_size == mnist.eval.attacks.pgd40_0p3.step_size == 0.01
    assert mnist.eval.attacks.pgd40c_0p3.step_size == pytest.approx(2.5 * 0.3 / 40)  # Table 5, converging reading
    assert load_config("atgan_mnist.py", "eps_t=0.2").eval.attacks.pgd40c_0p2.eps == 0.2
    literal = load_config("atgan_mnist.py", "pgd_step=1.0")  # Sec. 4.2's alpha = 1, taken literally
    assert literal.defense.attack.step_size == literal.eval.attacks.pgd40_0p3.step_size == 1.0
    for name in ("atgan_svhn.py", "atgan_cifar10.py"):
        c = load_config(name)
        assert c.eval.curves.pgd7.eps_grid == pytest.approx([0.0] + [e / 255 for e in range(2, 21, 2)])
        pgd = c.eval.attacks[f"pgd7_{8 / 255:g}".replace(".", "p")]
        assert (pgd.num_steps, pgd.step_size) == (7, pytest.approx(2 / 255))  # Table 5's PGD-7 of 2/255
    cifar = load_config("atgan_cifar10.py")
    assert cifar.model.name == "resnet18" and cifar.model.preact  # He et al.'s identity-mapping ResNet


@pytest.mark.parametrize("dataset", ["mnist", "svhn", "cifar10"])
def test_baseline_configs_are_the_discriminator_body_with_atgans_budget_and_attack(dataset):
    for arg in (None, "frac=0.5"):
        a, b = load_config(f"atgan_{dataset}.py", arg), load_config(f"atgan_baseline_{dataset}.py", arg)
        assert b.defense.name == "pgd_at" and b.defense.attack.to_dict() == a.defense.attack.to_dict()
        assert b.defense.adv_fraction == a.defense.adv_fraction
        assert b.model.to_dict() == a.model.to_dict() and b.data.to_dict() == a.data.to_dict()
        assert b.train.optimizer.to_dict() == a.train.optimizers.discriminator.to_dict() and not b.train.optimizers
        assert (b.train.epochs, b.train.steps) == (a.train.epochs, a.train.steps)
        assert b.eval.to_dict() == a.eval.to_dict()
    plain = load_config(f"atgan_baseline_{dataset}.py", "eps_t=0")
    assert plain.defense.name == "standard" and load_config(f"atgan_{dataset}.py", "eps_t=0").defense.adv_fraction == 0


def test_sweep_script_plans_the_papers_runs_with_the_plain_cnn_first_and_atgan_reusing_it(tmp_path, capsys):
    """benchmarks/atgan_sweep.py: eps_t 0 (the loss network) first; FracAT only where eps_t > 0; ATGAN reads
    the plain CNN's run; the budget overrides reach the config and the printed main.py command."""
    import sys

    from benchmarks import atgan_sweep as sweep

    argv = ["atgan_sweep.py", "--dataset", "mnist", "--npz", "x.npz", "--out", str(tmp_path), "--eps_t", "0.3",
            "--frac", "1", "0.5", "--train", "512", "--train_steps", "5", "--print"]
    old, sys.argv = sys.argv, argv
    try:
        sweep.main()
    finally:
        sys.argv = old
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.rsplit("--workdir=", 1)[1] for line in lines]
    assert names == [os.path.join(str(tmp_path), n) for n in (
        "baseline-eps_t0", "atgan-eps_t0", "baseline-eps_t0.3", "atgan-eps_t0.3", "baseline-eps_t0.3-frac0.5",
        "atgan-eps_t0.3-frac0.5")]
    assert not any(os.scandir(tmp_path))  # --print runs nothing
    assert "configs/atgan_mnist.py:eps_t=0.3,frac=0.5" in lines[5] and "configs/atgan_baseline_mnist.py:eps_t=0 " in lines[0]
    assert "defense.loss_net_workdir=" + os.path.join(str(tmp_path), "baseline-eps_t0") in lines[3]
    assert "defense.attack" not in lines[0] and "defense.attack.step_size=0.15" in lines[2]  # 2.5 * 0.3 / 5

    class A:  # the parsed arguments overrides() reads
        npz, paper, train, epochs, eval, train_steps, ramp = "x.npz", False, 512, 2.0, 64, 5, 1.0
    run = {"model": "atgan", "eps_t": 0.3}
    c = sweep.load_config("atgan_mnist", "eps_t=0.3,frac=0.5")
    o = sweep.overrides(A, run, c, str(tmp_path))
    assert (c.data.train_size, c.eval.num_examples, c.train.epochs, c.defense.adv_fraction) == (512, 64, 2.0, 0.5)
    assert (c.defense.attack.num_steps, c.defense.attack.step_size) == (5, pytest.approx(0.15))
    assert c.defense.loss_net_epochs == 0.0 and o["defense.loss_net_workdir"] == c.defense.loss_net_workdir
    # the comparison covers every finished run under --out (a sweep run in parts), in the plan's order
    for name in ("atgan-eps_t0.3-frac0.5", "baseline-eps_t0.3", "atgan-eps_t0", "baseline-eps_t0.2", "compare",
                 "baseline-eps_t0.3-frac0.5", "baseline-eps_t0", "atgan-eps_t0.3"):
        os.makedirs(tmp_path / name)
        if name not in ("compare", "atgan-eps_t0.3"):  # no results.json: not finished (or not a run)
            (tmp_path / name / "results.json").write_text("{}")
    assert sweep.finished_runs(str(tmp_path)) == [
        "baseline-eps_t0", "atgan-eps_t0", "baseline-eps_t0.2", "baseline-eps_t0.3", "baseline-eps_t0.3-frac0.5",
        "atgan-eps_t0.3-frac0.5"]
    assert sweep.finished_runs(str(tmp_path / "absent")) == []

    A.paper = True
    c = sweep.load_config("atgan_mnist", "eps_t=0.3")
    sweep.overrides(A, run, c, str(tmp_path))
    assert (c.train.epochs, c.defense.attack.num_steps, c.defense.attack.step_size) == (50, 40, 0.01)
