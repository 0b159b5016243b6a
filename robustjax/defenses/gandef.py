"""GanDef: GAN-based adversarial training with a discriminator on the classifier's logits, and
GanDef-Comb (Liu, Khalil & Khreishah, "GanDef: A GAN Based Adversarial Training Defense for Neural
Network Classifier", 2019; the paper as read here: Sec. 3.1-3.3, Algorithm 1, Sec. 4, Tables 2-4).

    defense = gandef.make(config, info, steps_per_epoch)      # configs/gandef_{mnist,cifar10}.py
    state = defense.init(key, batch)                          # {"classifier": ..., "discriminator": ...}
    logits_fn = defense.classifier(state)                     # C in eval mode: what is deployed and attacked
    defense.detector                                          # GanDef-Comb (config.defense.comb): D flags inputs

Two networks, one ``TrainState`` each:

- ``classifier`` C: ``config.model`` (LeNet of Table 3 on MNIST; allCNN of Table 4, ``variant="table4"``,
  on CIFAR-10), producing pre-softmax logits ``z``.
- ``discriminator`` D: :class:`robustjax.models.discriminators.LogitDiscriminator`, an MLP on ``z``
  alone whose output is the logit of "the input of C was adversarial" (source indicator s = 1 for
  adversarial, 0 for original).

One training step (one global iteration of Algorithm 1), with ``x`` a clean batch and ``y`` its labels:

1. ``x_adv`` = the train-time attack ``config.defense.attack`` (the paper's PGD-1: MNIST 40 x 0.01 at
   0.3, CIFAR-10 7 x 2/255 at 8/255, random start) against C in eval mode, D not involved. The training
   data of the step is clean + adversarial (Sec. 4.1: "defensive methods utilize original and PGD-1
   examples").
2. ``d_steps`` D steps (C fixed) on ``L_D`` (:func:`discriminator_loss`).
3. One C step (D fixed) on ``L_C`` (:func:`classifier_loss`).

The losses, as quantities to minimise. ``CE`` is the softmax cross-entropy with the label (the paper's
``-log q_C(z|x)``: z determines t through the softmax); ``BCE(d, s)`` the sigmoid cross-entropy of D's
logit ``d`` with the source ``s``; each expectation is a mean over the batch:

- D maximises ``E_{z~Z, s~S} log q_D(s|z)`` over all logits, clean (s = 0) and adversarial (s = 1):
  ``L_D = (mean BCE(D(z_clean), 0) + mean BCE(D(z_adv), 1)) / 2``, i.e. the mean over the 2B logits.
- C minimises the paper's ``E_{x~X,t~T}{-log q_C(z|x)} - gamma * E{-log q_D(s|z)}``. The first term is
  over all training examples X = clean + adversarial: ``CE_mix = (mean CE(z_clean) + mean CE(z_adv)) / 2``.
  The second is D's loss, which C *raises* (it hides the source from D):

  * ``classifier_loss="v2"`` (default; Sec. 3.3's GanDef V2, "the standard implementation of GanDef in
    the rest of this work"): the penalty on adversarial logits only,
    ``L_C = CE_mix - gamma * mean BCE(D(z_adv), 1)``.
  * ``"v1"`` (Sec. 3.1, the initial design): the penalty on every logit, ``L_C = CE_mix - gamma * L_D``.

  With ``gamma = 0`` both are ``CE_mix``: adversarial training on the clean and adversarial batch
  together (PGD-AT's cross-entropy on the concatenated batch; tests/test_gandef.py checks the equality
  and that one C step then equals that update). This is the saturating minimax form the paper writes
  (no non-saturating trick): ``L_C`` is not bounded below, and D must keep up for the game to stay
  balanced.

Modes and randomness. The train-time attack sees C in eval mode (the model as deployed). In both steps C
runs in train mode (dropout on, BatchNorm batch statistics) on the concatenated batch ``[x; x_adv]`` in
one call, so the game is played on the logits C's update is graded on; in the D step its new BatchNorm
statistics are dropped. At test time D scores C's eval-mode logits.

Choices where the paper is silent (each a config field; the configs' docstrings give the values):

- D's architecture (``d_hidden``): an MLP Dense(32)-ReLU-Dense(64)-ReLU-Dense(1) on the logits, the
  size the same authors used for their logit discriminator in later public code (zero-knowledge
  GanDef). D only has to read a 10-dimensional vector; a small D also keeps the C step's extra cost
  negligible next to the PGD attack.
- D steps per C step (``d_steps``): 1, as in that code and as in most GAN training loops. Algorithm 1
  samples a fresh batch for every D iteration; here every D iteration of a step uses that step's batch
  (the one the C step then uses), because a fresh batch would cost a fresh PGD attack per D iteration.
- gamma (``gamma``): 2.0, the trade-off of that code. ``gamma = 0`` is plain clean+adversarial AT.
- Optimizers: ``config.train.optimizers.classifier`` / ``.discriminator`` (over ``config.train.optimizer``).

GanDef-Comb (``comb=True``; Sec. 4.3). The deployed classifier is still C, and D becomes the defense's
:class:`robustjax.defenses.base.Detector`: an input is flagged when ``q_D(adversarial | C(x)) > threshold``
(0.5 in the paper). Scoring rule (the paper's Table 2 counts a detected adversarial example as
defended, and Comb's clean accuracy falls by the clean inputs D rejects): a flagged adversarial input
counts as correct, a flagged clean input as wrong, an unflagged input is judged by C's prediction: the
suite's ``accuracy_with_detector`` and ``detector.clean_accuracy_with_detector``. The detector's score
is D's logit (log-odds) and its threshold ``log(t / (1 - t))``: the same flags as the probability
against ``t``, but an adaptive attack on classifier and detector together (``"against_detector": True``,
:meth:`Detector.combined_logits`) gets a gradient that does not vanish where the sigmoid saturates
(float32's sigmoid is exactly 1 beyond a logit of ~17, so its gradient would be exactly 0 there: a
masked detector). The paper evaluates Comb only with attacks on C alone; the configs add the adaptive
attacks beside them.

Config (``config.defense``; ``FIELDS``): ``attack``, ``eps_ramp_epochs`` (linear eps curriculum, 0 = off),
``gamma``, ``classifier_loss`` ("v2" | "v1"), ``d_steps``, ``d_hidden``, ``comb``, ``threshold``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from robustjax import models
from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import (
    Defense,
    Detector,
    Phase,
    State,
    TrainState,
    accuracy,
    create_train_state,
    cross_entropy,
    eval_logits_fn,
    eval_variables,
    train_apply,
)
from robustjax.models.discriminators import LogitDiscriminator
from robustjax.types import Array, LogitsFn, Metrics, PRNGKey

CLASSIFIER_LOSSES = ("v2", "v1")
NETWORKS = ("classifier", "discriminator")


def _hidden_sizes(v: Any, path: str) -> list[int]:
    v = fields.plain(v)
    ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v)
    if not ok:
        raise ValueError(f"{path}: must be a non-empty list of layer sizes >= 1, e.g. [32, 64], got {v!r}")
    return [int(n) for n in v]


FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(doc="the defense's name"),
    "attack": fields.Field(fields.REQUIRED, fields.attack_spec(),
                           "the train-time PGD, e.g. {'attack': 'pgd', 'eps': 0.3, 'step_size': 0.01, "
                           "'num_steps': 40, 'random_start': True}"),
    "eps_ramp_epochs": fields.Field(0.0, fields.number(0.0),
                                    "linear curriculum of the attack's eps from 0 over this many epochs"),
    "gamma": fields.Field(2.0, fields.number(0.0), "weight of the discriminator penalty in C's loss"),
    "classifier_loss": fields.Field("v2", fields.choice(*CLASSIFIER_LOSSES),
                                    "'v2': penalty on adversarial logits only (Sec. 3.3); 'v1': on all"),
    "d_steps": fields.Field(1, fields.integer(1), "D steps per C step (Algorithm 1's inner loop)"),
    "d_hidden": fields.Field([32, 64], _hidden_sizes, "D's hidden layer sizes"),
    "comb": fields.Field(False, fields.boolean(), "deploy GanDef-Comb: D flags inputs as the detector"),
    "threshold": fields.Field(0.5, fields.number(0.0, 1.0, lo_open=True, hi_open=True),
                              "Comb flags an input when D's probability of 'adversarial' exceeds this"),
}


def read_config(config) -> dict[str, Any]:
    """``config.defense`` with GanDef's defaults filled in, checked; raises ValueError naming the field."""
    return fields.read(config.defense, FIELDS, "config.defense")


# ----------------------------------------------------------------------------------------------
# The losses (see the module docstring for the mapping to the paper).


def discriminator_loss(d_clean: Array, d_adv: Array) -> Array:
    """``L_D``: D's negative log-likelihood of the source, mean over clean (s = 0) and adversarial
    (s = 1) logits: ``(mean BCE(d_clean, 0) + mean BCE(d_adv, 1)) / 2``.

    Args:
      d_clean: D's logits on the clean inputs' classifier logits ``[B]``.
      d_adv: D's logits on the adversarial inputs' classifier logits ``[B]``.
    """
    clean = optax.sigmoid_binary_cross_entropy(d_clean, jnp.zeros_like(d_clean))
    adv = optax.sigmoid_binary_cross_entropy(d_adv, jnp.ones_like(d_adv))
    return 0.5 * (jnp.mean(clean) + jnp.mean(adv))


def classifier_loss(z_clean: Array, z_adv: Array, y: Array, d_clean: Array, d_adv: Array, gamma: float,
                    variant: str = "v2") -> tuple[Array, dict[str, Array]]:
    """``L_C = CE_mix - gamma * penalty``, and its parts.

    Args:
      z_clean, z_adv: C's logits on the clean and the adversarial batch ``[B, K]``.
      y: labels ``[B]``.
      d_clean, d_adv: D's logits on ``z_clean`` and ``z_adv`` ``[B]``.
      gamma: the trade-off.
      variant: "v2" (penalty = ``mean BCE(d_adv, 1)``) or "v1" (penalty = :func:`discriminator_loss`).

    Returns:
      ``(L_C, {"ce": CE_mix, "penalty": penalty})``.
    """
    ce = 0.5 * (cross_entropy(z_clean, y) + cross_entropy(z_adv, y))
    if variant == "v2":
        penalty = jnp.mean(optax.sigmoid_binary_cross_entropy(d_adv, jnp.ones_like(d_adv)))
    elif variant == "v1":
        penalty = discriminator_loss(d_clean, d_adv)
    else:
        raise ValueError(f"classifier_loss {variant!r} is not one of {CLASSIFIER_LOSSES}")
    return ce - gamma * penalty, {"ce": ce, "penalty": penalty}


def threshold_logit(threshold: float) -> float:
    """The detector threshold on D's logit equivalent to ``threshold`` on its probability."""
    return math.log(threshold / (1.0 - threshold))


# ----------------------------------------------------------------------------------------------
# The defense.


@dataclasses.dataclass(frozen=True)
class Parts:
    """What ``make`` assembles, exposed for tests and for the results script.

    Attributes:
      classifier_module, discriminator_module: the C and D modules.
      hparams: the checked ``config.defense``.
      init: ``(key, batch) -> state``.
      adversarial_examples: ``(state, x, y, key) -> x_adv``: the train-time attack on C (eval mode) at
        the eps in force at C's step.
      d_step: ``(state, x, x_adv, key) -> (state, metrics)``: one D step, C fixed.
      c_step: ``(state, x, x_adv, y, key) -> (state, metrics)``: one C step, D fixed.
      train_step: the ``gandef`` phase's step (attack, ``d_steps`` D steps, one C step).
      classifier: ``state -> (x -> logits)``, C in eval mode.
      detector_logit: ``state -> (x -> D's logit [B])`` on C's eval-mode logits.
      detector: the :class:`Detector` (always built; deployed only when ``comb``).
      num_steps: length of the ``gandef`` phase.
    """

    classifier_module: Any
    discriminator_module: Any
    hparams: dict
    init: Callable[[PRNGKey, Any], State]
    adversarial_examples: Callable[..., Array]
    d_step: Callable[..., tuple[State, Metrics]]
    c_step: Callable[..., tuple[State, Metrics]]
    train_step: Callable[..., tuple[State, Metrics]]
    classifier: Callable[[State], LogitsFn]
    detector_logit: Callable[[State], Callable[[Array], Array]]
    detector: Detector
    num_steps: int


def _both(c: TrainState, params, x: Array, x_adv: Array, key: PRNGKey) -> tuple[Array, Array, Any]:
    """C in train mode on ``[x; x_adv]`` in one call: (z_clean, z_adv, new batch_stats)."""
    z, stats = train_apply(c, params, jnp.concatenate([x, x_adv]), key)
    return z[: x.shape[0]], z[x.shape[0]:], stats


def _d_apply(d: TrainState, params, z: Array) -> Array:
    return d.apply_fn({"params": params}, z, train=False)


def build(config, info, steps_per_epoch: int) -> Parts:
    """Builds GanDef's networks, optimizers and steps from ``config`` (see the module docstring)."""
    hp = read_config(config)
    num_steps = common.train_num_steps(config, steps_per_epoch)
    classifier_module = models.make(config.model, int(info.num_classes))
    discriminator_module = LogitDiscriminator(hidden=tuple(hp["d_hidden"]))
    tx_c = common.optimizer_for(config, "classifier", steps_per_epoch, num_steps)
    tx_d = common.optimizer_for(config, "discriminator", steps_per_epoch, num_steps * hp["d_steps"])
    ema = float(config.train.get("ema_decay", 0.0))
    attack = supervised.train_attack(hp, info, steps_per_epoch)
    gamma, variant, d_steps = float(hp["gamma"]), hp["classifier_loss"], int(hp["d_steps"])

    def init(key, batch):
        kc, kd = jax.random.split(key)
        x = jnp.asarray(batch["image"])
        c = create_train_state(classifier_module, kc, x, tx_c, ema)
        z = jax.eval_shape(lambda: classifier_module.apply(eval_variables(c, c.params), x, train=False))
        d = create_train_state(discriminator_module, kd, jnp.zeros(z.shape, jnp.float32), tx_d)
        return {"classifier": c, "discriminator": d}

    def adversarial_examples(state, x, y, key):
        c = state["classifier"]
        return attack(eval_logits_fn(c), x, y, key, c.step)

    def d_step(state, x, x_adv, key):
        c, d = state["classifier"], state["discriminator"]
        z_clean, z_adv, _ = _both(c, c.params, x, x_adv, key)  # C fixed: its new statistics are dropped
        z_clean, z_adv = jax.lax.stop_gradient(z_clean), jax.lax.stop_gradient(z_adv)

        def loss_fn(params):
            d_clean, d_adv = _d_apply(d, params, z_clean), _d_apply(d, params, z_adv)
            return discriminator_loss(d_clean, d_adv), (d_clean, d_adv)

        (loss, (d_clean, d_adv)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
        d = d.apply_gradients(grads=grads)
        return {**state, "discriminator": d}, {
            "loss_d": loss,
            "d_clean": jnp.mean(jax.nn.sigmoid(d_clean)),  # D's mean P(adversarial) on clean logits
            "d_adv": jnp.mean(jax.nn.sigmoid(d_adv)),       # ... and on adversarial logits
        }

    def c_step(state, x, x_adv, y, key):
        c, d = state["classifier"], state["discriminator"]

        def loss_fn(params):
            z_clean, z_adv, stats = _both(c, params, x, x_adv, key)
            d_clean, d_adv = _d_apply(d, d.params, z_clean), _d_apply(d, d.params, z_adv)  # D fixed
            loss, parts = classifier_loss(z_clean, z_adv, y, d_clean, d_adv, gamma, variant)
            return loss, (stats, {**parts, "acc_clean": accuracy(z_clean, y), "acc_adv": accuracy(z_adv, y)})

        (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(c.params)
        c = c.apply_gradients(grads=grads, batch_stats=stats)
        return {**state, "classifier": c}, {"loss_c": loss, **aux}

    def train_step(state, batch, key):
        k_attack, k_d, k_c = jax.random.split(key, 3)
        x, y = batch["image"], batch["label"]
        eps_now = attack.eps(state["classifier"].step)
        x_adv = adversarial_examples(state, x, y, k_attack)
        d_metrics = {}
        for i in range(d_steps):  # static and small: unrolled
            state, d_metrics = d_step(state, x, x_adv, jax.random.fold_in(k_d, i))
        state, c_metrics = c_step(state, x, x_adv, y, k_c)
        return state, {**d_metrics, **c_metrics, "eps": eps_now}

    def classifier(state):
        return eval_logits_fn(state["classifier"])

    def detector_logit(state):
        c, d = state["classifier"], state["discriminator"]
        logits_fn = eval_logits_fn(c)
        return lambda x: _d_apply(d, d.params, logits_fn(x))

    detector = Detector(score=detector_logit, threshold=threshold_logit(float(hp["threshold"])))
    return Parts(
        classifier_module=classifier_module, discriminator_module=discriminator_module, hparams=hp, init=init,
        adversarial_examples=adversarial_examples, d_step=d_step, c_step=c_step, train_step=train_step,
        classifier=classifier, detector_logit=detector_logit, detector=detector, num_steps=num_steps,
    )


def make(config, info, steps_per_epoch: int) -> Defense:
    """GanDef (``comb=False``) or GanDef-Comb (``comb=True``: with D as the detector) as a Defense."""
    parts = build(config, info, steps_per_epoch)
    comb = bool(parts.hparams["comb"])
    return Defense(name="gandef_comb" if comb else "gandef", init=parts.init,
                   phases=(Phase("gandef", parts.num_steps, parts.train_step),),
                   classifier=parts.classifier, networks=NETWORKS, detector=parts.detector if comb else None)


# ----------------------------------------------------------------------------------------------
# The paper's evaluation (Table 2's columns), for the configs.


def table2_attacks(eps: float, *, bim_step: float, pgd_step: float, pgd1_steps: int, pgd2_steps: int,
                   bim_steps: int = 10) -> dict[str, dict]:
    """The paper's Table 2 columns as ``config.eval.attacks`` specs (Sec. 4.1), plus PGD-1000 and
    AutoAttack (standard) at the same eps.

    FGSM at eps; BIM with step ``bim_step`` (the paper gives no number of steps: CleverHans'
    BasicIterativeMethod default, 10, which the paper used); PGD-1 and PGD-2 with ``pgd_step`` and a
    random start (CleverHans' MadryEtAl default); PGD-1000 with the same step; AutoAttack "standard".
    """
    pgd = {"attack": "pgd", "eps": float(eps), "step_size": float(pgd_step), "random_start": True}
    return {
        "fgsm": {"attack": "fgsm", "eps": float(eps)},
        "bim": {"attack": "bim", "eps": float(eps), "step_size": float(bim_step), "num_steps": int(bim_steps)},
        "pgd1": {**pgd, "num_steps": int(pgd1_steps)},
        "pgd2": {**pgd, "num_steps": int(pgd2_steps)},
        "pgd1000": {**pgd, "num_steps": 1000},
        "autoattack": {"attack": "autoattack", "eps": float(eps), "version": "standard"},
    }


def adaptive(attacks: dict[str, dict]) -> dict[str, dict]:
    """Each spec again as an attack on classifier and detector together (label ``<label>_adaptive``)."""
    return {f"{label}_adaptive": {**spec, "against_detector": True} for label, spec in attacks.items()}


__all__ = [
    "CLASSIFIER_LOSSES",
    "FIELDS",
    "NETWORKS",
    "Parts",
    "adaptive",
    "build",
    "classifier_loss",
    "discriminator_loss",
    "make",
    "read_config",
    "table2_attacks",
    "threshold_logit",
]
