"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, "Distillation as a Defense to
Adversarial Perturbations against Deep Neural Networks", 2016).

    defense = distillation.make(config, info, steps_per_epoch)    # configs/distillation_{mnist,cifar10}.py
    state = defense.init(key, batch)                # {"teacher": TrainState, "classifier": TrainState}
    logits_fn = defense.classifier(state)           # the student's logits: its softmax at T = 1

Two networks of the same architecture (``config.model``), one ``TrainState`` each, and two phases:

1. ``teacher``: the teacher trains on the hard labels with its softmax at temperature ``T``:
   ``L_teacher = CE(softmax(z_t / T), y)`` (:func:`teacher_loss`). Only ``teacher`` changes.
2. ``student``: the student (``classifier``) trains on the teacher's soft labels at the same
   temperature, ``L_student = -sum_k softmax(z_t / T)_k log softmax(z_s / T)_k`` averaged over the batch
   (:func:`student_loss`), on the same training images. The teacher runs in eval mode and never changes.

Deployed: the student at temperature 1, i.e. its logits ``z_s`` as they are. They are about ``T`` times
larger than the ones it was trained to calibrate, so its softmax saturates on almost every input: the
gradient masking that Carlini and Wagner ("Defensive Distillation is Not Robust to Adversarial
Examples", 2016) broke with a loss on the logits. An FGSM/PGD on the cross-entropy then sees a zero
input gradient once ``exp`` of the logit margin underflows in float32: ``robustjax.attacks.ce_loss``
survives the rounding of ``softmax_y`` to 1 (margins above ~17), but its gradient is exactly zero from a
margin of about 88 on (tests/test_distillation.py pins both). The configs therefore also evaluate PGD on the margin loss (``"loss": "margin"``, Carlini and
Wagner's): its gradient does not vanish however large the logits are, and PGD's sign step ignores its
size.

Config (``config.defense``; ``FIELDS``): ``temperature`` (T, 100 in the paper), ``teacher_epochs``
(length of the teacher phase; 0, the default: as long as the student phase, ``config.train.epochs`` /
``config.train.steps``, so one override changes both). Optimizers:
``config.train.optimizers.teacher`` / ``.classifier`` (each over ``config.train.optimizer``).

Why no ``T**2`` factor on the student loss (Hinton et al. scale it so that soft and hard targets mix):
Papernot et al. train on the soft labels alone, so there is nothing to balance; with Adam a constant
factor on the loss changes nothing anyway.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import Defense, Phase, accuracy, eval_logits_fn
from robustjax.types import Array


FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(),
    "temperature": fields.Field(100.0, fields.number(0.0, lo_open=True),
                                "T of both softmaxes in training (Papernot et al.: 100); deployed at 1"),
    "teacher_epochs": fields.Field(0.0, fields.number(0.0),
                                   "epochs of the teacher phase (0: as long as the student phase)"),
}
NETWORKS = ("teacher", "classifier")


# ----------------------------------------------------------------------------------------------
# The two losses, from raw logits.


def teacher_loss(logits: Array, labels: Array, temperature: float) -> Array:
    """Mean cross-entropy of ``softmax(logits / T)`` against hard ``labels`` (the teacher's objective)."""
    onehot = jax.nn.one_hot(labels, logits.shape[-1])
    return optax.softmax_cross_entropy(logits / temperature, onehot).mean()


def soft_labels(teacher_logits: Array, temperature: float) -> Array:
    """The teacher's soft labels ``softmax(z_t / T)`` (``[B, K]``, rows sum to 1)."""
    return jax.nn.softmax(teacher_logits / temperature, axis=-1)


def student_loss(student_logits: Array, teacher_logits: Array, temperature: float) -> Array:
    """Mean over the batch of ``-sum_k softmax(z_t / T)_k log softmax(z_s / T)_k``: cross-entropy of the
    student at temperature ``T`` against the teacher's soft labels at ``T`` (no gradient into the teacher)."""
    target = jax.lax.stop_gradient(soft_labels(teacher_logits, temperature))
    return optax.softmax_cross_entropy(student_logits / temperature, target).mean()


# ----------------------------------------------------------------------------------------------
# The defense.


def read_config(config) -> dict[str, Any]:
    return fields.read(config.defense, FIELDS, "config.defense")


def make(config, info, steps_per_epoch: int) -> Defense:
    """Defensive distillation as a :class:`Defense`: phases ``teacher`` then ``student``."""
    hp = read_config(config)
    temperature = float(hp["temperature"])
    student_steps = common.train_num_steps(config, steps_per_epoch)
    if hp["teacher_epochs"] == 0:
        teacher_steps = student_steps
    else:
        teacher_steps = max(1, int(round(float(hp["teacher_epochs"]) * steps_per_epoch)))
    _, init_teacher = supervised.classifier_network(config, info, steps_per_epoch, teacher_steps, name="teacher")
    _, init_student = supervised.classifier_network(config, info, steps_per_epoch, student_steps)

    def init(key, batch):
        k_teacher, k_student = jax.random.split(key)
        x = jnp.asarray(batch["image"])
        return {"teacher": init_teacher(k_teacher, x), "classifier": init_student(k_student, x)}

    def teacher_objective(apply, params, batch_stats, batch, x_adv, key):
        logits, batch_stats = apply(params, batch_stats, batch["image"], key)
        return teacher_loss(logits, batch["label"], temperature), batch_stats, {
            "accuracy": accuracy(logits, batch["label"])}

    def teacher_step(state, batch, key):
        teacher, metrics = supervised.update(state["teacher"], teacher_objective, batch, None, key)
        return {**state, "teacher": teacher}, {f"teacher_{k}": v for k, v in metrics.items()}

    def student_step(state, batch, key):
        # The teacher as deployed (eval mode), fixed: its soft labels are targets, not a path for gradients.
        teacher_logits = jax.lax.stop_gradient(eval_logits_fn(state["teacher"])(batch["image"]))

        def objective(apply, params, batch_stats, batch, x_adv, key):
            logits, batch_stats = apply(params, batch_stats, batch["image"], key)
            agree = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(teacher_logits, -1))
            return student_loss(logits, teacher_logits, temperature), batch_stats, {
                "accuracy": accuracy(logits, batch["label"]), "agreement_with_teacher": agree,
                "teacher_accuracy": accuracy(teacher_logits, batch["label"])}

        student, metrics = supervised.update(state["classifier"], objective, batch, None, key)
        return {**state, "classifier": student}, metrics

    def classifier(state):
        return eval_logits_fn(state["classifier"])  # the student's logits: softmax at T = 1

    return Defense(name="distillation", init=init,
                   phases=(Phase("teacher", teacher_steps, teacher_step),
                           Phase("student", student_steps, student_step)),
                   classifier=classifier, networks=NETWORKS)


__all__ = ["FIELDS", "NETWORKS", "make", "read_config", "soft_labels", "student_loss", "teacher_loss"]
