"""TRADES (Zhang et al. 2019): cross-entropy on clean examples plus ``beta`` times the KL divergence
between the clean and the adversarial prediction, the adversarial example maximising that KL.

    defense = trades.make(config, info, steps_per_epoch)
    # x_adv = PGD ascending KL(p(x) || p(x')) (eval-mode model, p(x) fixed), from a random start
    # loss  = CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x_adv_i))

The inner attack is ``config.defense.attack`` (a PGD spec: eps, step, steps, norm) with its loss replaced
by the KL from the clean prediction (:func:`kl_loss`, passed to the skeleton as ``attack_loss``). At
``x' = x`` that KL and its gradient are zero, so the attack must start off the clean point: the spec
must keep ``random_start`` (Zhang et al. start at ``x + 0.001 * N(0, I)``; PGD's random start is uniform
in the eps ball). The outer KL is differentiated through both predictions, as in Zhang et al.'s code; the
clean and adversarial batches are run separately (BatchNorm statistics of each).

Config (``config.defense``): ``attack`` (Zhang et al. on MNIST: eps 0.3, 40 steps of 0.01; CIFAR-10: 8/255,
10 steps of 2/255), ``beta`` (6.0), and the skeleton's ``adv_fraction`` and ``eps_ramp_epochs``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import accuracy, cross_entropy

FIELDS = {
    **supervised.FIELDS,
    "attack": fields.Field(fields.REQUIRED, fields.attack_spec(),
                           "the inner maximisation, a PGD spec with random_start, e.g. {'attack': 'pgd', "
                           "'eps': 0.3, 'step_size': 0.01, 'num_steps': 40, 'random_start': True}"),
    "beta": fields.Field(6.0, fields.number(0.0), "weight of the KL term (1/lambda in Zhang et al.)"),
}
NETWORKS = ("classifier",)


def read_config(config) -> dict:
    """The fields, and the attack checks TRADES needs (a PGD with a random start and no loss of its own)."""
    hp = fields.read(config.defense, FIELDS, "config.defense")
    attack, where = hp["attack"], "config.defense.attack"
    if attack["attack"] != "pgd":
        raise ValueError(f"{where}.attack: TRADES' inner maximisation is PGD on the KL; got "
                         f"{attack['attack']!r}, use 'pgd'")
    if attack.get("random_start", True) is not True:
        raise ValueError(f"{where}.random_start: must be True for TRADES: the KL from the clean prediction "
                         "has zero gradient at the clean input, so PGD started there never moves")
    if "loss" in attack:
        raise ValueError(f"{where}.loss: TRADES' attack ascends the KL from the clean prediction; leave "
                         "loss out of the spec")
    return hp


def kl_loss(logits_fn, x, y=None):
    """The attack loss ``(logits, labels) -> KL(p(x) || softmax(logits))`` ``[B]``, ``p(x)`` fixed."""
    clean = jax.lax.stop_gradient(logits_fn(x))
    return lambda logits, labels: common.kl_divergence(clean, logits)


def objective(beta: float) -> supervised.Objective:
    """``CE(f(x), y) + beta * mean_i KL(p(x_i) || p(x_adv_i))``, both predictions in train mode."""
    beta = float(beta)

    def fn(apply, params, batch_stats, batch, x_adv, key):
        y = batch["label"]
        clean, batch_stats = apply(params, batch_stats, batch["image"], key)
        adv, batch_stats = apply(params, batch_stats, x_adv, key)
        ce, robust = cross_entropy(clean, y), jnp.mean(common.kl_divergence(clean, adv))
        return ce + beta * robust, batch_stats, {"ce": ce, "kl": robust, "accuracy": accuracy(clean, y),
                                                 "accuracy_adv": accuracy(adv, y)}

    return fn


def make(config, info, steps_per_epoch: int):
    hp = read_config(config)
    return supervised.make(config, info, steps_per_epoch, name="trades", hp=hp, objective=objective(hp["beta"]),
                           attack_loss=kl_loss)
