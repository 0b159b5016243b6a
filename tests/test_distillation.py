"""Defensive distillation: both losses against numpy from the networks' raw logits, which network each
phase changes (the teacher is frozen while the student learns), the deployed classifier at T = 1, and
config mistakes refused by experiment.build naming the field."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks, experiment
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import distillation
from tests.test_config import load_config

NUM_CLASSES = 3
INFO = DataInfo(name="tiny", image_shape=(8, 8, 1), num_classes=NUM_CLASSES, num_train=16, num_test=8)
T = 4.0


def tiny_config(**defense):
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25  # no BatchNorm or dropout: train mode = eval mode
    c.defense.name = "distillation"
    c.defense.temperature = T
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 5
    c.train.optimizer = optimizer("sgd", 0.5, momentum=0.0)
    return c


@pytest.fixture(scope="module")
def tiny():
    c = tiny_config()
    defense = distillation.make(c, INFO, 2)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(0, 1, (8, 8, 8, 1)), jnp.float32),
             "label": jnp.asarray(rng.integers(0, NUM_CLASSES, 8), jnp.int32)}
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    teacher_step = jax.jit(defense.phases[0].train_step)
    student_step = jax.jit(defense.phases[1].train_step)
    return defense, state, batch, teacher_step, student_step


def _np(a):
    return np.asarray(a, np.float64)


def _log_softmax(z):
    z = _np(z) - _np(z).max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _logits(net, x):
    return net.apply_fn({"params": net.params}, x, train=False)


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_losses_by_hand():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    t = np.array([[1.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 2])
    # Teacher: CE of softmax(z / T) against y.
    want = -np.mean(_log_softmax(z / T)[np.arange(2), y])
    np.testing.assert_allclose(distillation.teacher_loss(jnp.asarray(z), jnp.asarray(y), T), want, rtol=1e-6)
    # Student: -sum_k softmax(t / T)_k log softmax(z / T)_k, averaged over the batch.
    p = np.exp(_log_softmax(t / T))
    np.testing.assert_allclose(p[1], [1 / 3, 1 / 3, 1 / 3])  # equal teacher logits: uniform soft labels
    want = -np.mean(np.sum(p * _log_softmax(z / T), -1))
    np.testing.assert_allclose(distillation.student_loss(jnp.asarray(z), jnp.asarray(t), T), want, rtol=1e-6)
    np.testing.assert_allclose(distillation.soft_labels(jnp.asarray(t), T), p, rtol=1e-6)
    # T = 1 is the usual cross-entropy; a higher T flattens the soft labels.
    sharp, flat = distillation.soft_labels(jnp.asarray(t), 1.0), distillation.soft_labels(jnp.asarray(t), 100.0)
    assert float(sharp[0].max()) > float(flat[0].max()) > 1 / 3


def test_student_loss_gives_no_gradient_to_the_teacher():
    z, t = jnp.array([[1.0, 0.0, 2.0]]), jnp.array([[0.0, 3.0, 1.0]])
    assert float(jnp.abs(jax.grad(lambda v: distillation.student_loss(z, v, T))(t)).max()) == 0.0
    assert float(jnp.abs(jax.grad(lambda v: distillation.student_loss(v, t, T))(z)).max()) > 0.0


def test_teacher_phase_changes_only_the_teacher(tiny):
    defense, s0, batch, teacher_step, _ = tiny
    want = -np.mean(_log_softmax(_np(_logits(s0["teacher"], batch["image"])) / T)[np.arange(8), batch["label"]])
    s1, m = teacher_step(s0, batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["teacher_loss"], want, rtol=1e-5)
    assert _leaves_equal(s1["classifier"], s0["classifier"])
    assert not _leaves_equal(s1["teacher"].params, s0["teacher"].params)
    assert int(s1["teacher"].step) == 1
    after = -np.mean(_log_softmax(_np(_logits(s1["teacher"], batch["image"])) / T)[np.arange(8), batch["label"]])
    assert after < want  # one SGD step lowers the teacher's loss


def test_student_phase_learns_the_teachers_soft_labels_and_leaves_the_teacher_alone(tiny):
    defense, s0, batch, teacher_step, student_step = tiny
    s1, _ = teacher_step(s0, batch, jax.random.PRNGKey(1))

    def hand(state):
        p = np.exp(_log_softmax(_np(_logits(state["teacher"], batch["image"])) / T))
        return -np.mean(np.sum(p * _log_softmax(_np(_logits(state["classifier"], batch["image"])) / T), -1))

    s2, m = student_step(s1, batch, jax.random.PRNGKey(2))
    np.testing.assert_allclose(m["loss"], hand(s1), rtol=1e-5)
    assert _leaves_equal(s2["teacher"], s1["teacher"])  # params, optimizer state, step: frozen
    assert not _leaves_equal(s2["classifier"].params, s1["classifier"].params)
    assert hand(s2) < hand(s1)
    assert 0.0 <= float(m["agreement_with_teacher"]) <= 1.0


def test_phases_and_the_deployed_classifier_at_temperature_one(tiny):
    defense, state, batch, _, _ = tiny
    assert [p.name for p in defense.phases] == ["teacher", "student"]
    assert [p.num_steps for p in defense.phases] == [5, 5]  # teacher_epochs=0: as long as the student
    assert defense.networks == ("teacher", "classifier") and not defense.stochastic and defense.surrogate is None
    # Deployed: the student's raw logits (softmax at T = 1), not divided by T, and not the teacher's.
    np.testing.assert_allclose(defense.classifier(state)(batch["image"]), _logits(state["classifier"], batch["image"]),
                               rtol=1e-6)
    longer = distillation.make(tiny_config(teacher_epochs=3.0), INFO, 2)
    assert [p.num_steps for p in longer.phases] == [6, 5]


def test_cross_entropy_gradient_vanishes_at_the_margins_of_a_deployed_student():
    """The masking the configs' margin-loss PGD is there for: a student trained at T = 100 and deployed
    at T = 1 has logit margins in the hundreds, where float32 exp underflows."""
    y = jnp.array([0])

    def ce_grad(margin):
        return jax.grad(lambda z: attacks.ce_loss(z, y).sum())(jnp.array([[margin, 0.0, -1.0]]))

    assert float(jnp.abs(ce_grad(30.0)).min()) > 0.0  # a saturated softmax, still a usable gradient
    np.testing.assert_array_equal(ce_grad(90.0), 0.0)  # exp(-90) underflows: nothing to follow
    np.testing.assert_array_equal(ce_grad(100.0 * 10.0), 0.0)
    margin = jax.grad(lambda z: attacks.margin_loss(z, y).sum())(jnp.array([[1000.0, 0.0, -1.0]]))
    np.testing.assert_array_equal(margin, [[-1.0, 1.0, 0.0]])  # the margin loss does not care


@pytest.mark.parametrize("change, message", [
    ({"temperature": 0.0}, r"config.defense.temperature: must be a number in \(0.0, inf\]"),
    ({"temperature": -100.0}, "config.defense.temperature: must be a number"),
    ({"teacher_epochs": -1.0}, r"config.defense.teacher_epochs: must be a number in \[0.0, inf\]"),
    ({"temprature": 100.0}, r"config.defense.temprature: unknown field \(did you mean 'temperature'\?\)"),
])
def test_bad_config_fails_in_build_naming_the_field(change, message):
    c = load_config("distillation_mnist.py", "smoke")
    for k, v in change.items():
        if k in c.defense:
            del c.defense[k]
        c.defense[k] = v
    with pytest.raises(ValueError, match=message):
        experiment.build(c)


def test_optimizer_of_an_unknown_network_fails_in_build():
    c = load_config("distillation_mnist.py", "smoke")
    c.train.optimizers.studnet = optimizer("adam", 1e-3)
    with pytest.raises(ValueError, match=r"config.train.optimizers.studnet: .*\['teacher', 'classifier'\]"):
        experiment.build(c)
