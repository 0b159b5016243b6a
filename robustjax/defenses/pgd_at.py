"""Madry et al.'s PGD adversarial training (and FracAT / Goodfellow-style clean+adversarial mixes).

    defense = pgd_at.make(config, info, steps_per_epoch)
    # each step: x_adv = config.defense.attack against the eval-mode classifier; one optimizer step on x_adv

Config (``config.defense``): ``attack``, the train-time attack as a spec in the format of
``config.eval.attacks`` (Madry on MNIST: ``{"attack": "pgd", "eps": 0.3, "step_size": 0.01,
"num_steps": 40, "random_start": True}``; any budget attack works: ``fgsm`` gives FGSM-AT, ``norm: "l2"``
L2 PGD-AT); ``adv_fraction`` (1.0 = Madry; 0.5 = half clean, half adversarial); ``eps_ramp_epochs``
(linear eps curriculum from 0; MNIST at eps 0.3 stalls without one, see docs/results.md). A recipe on
:mod:`robustjax.defenses.supervised` with the default cross-entropy objective.

The attack sees the classifier in eval mode (BatchNorm running statistics): the model as it is deployed.
"""

from __future__ import annotations

from robustjax.defenses import fields, supervised

FIELDS = {
    **supervised.FIELDS,
    "attack": fields.Field(fields.REQUIRED, fields.attack_spec(),
                           "the train-time attack, e.g. {'attack': 'pgd', 'eps': 0.3, 'step_size': 0.01, "
                           "'num_steps': 40, 'random_start': True}"),
}
NETWORKS = ("classifier",)
# The flat attack fields of earlier versions, and where they went.
MOVED = {k: f"the train-time attack is config.defense.attack now (e.g. --config.defense.attack.{k}=...)"
         for k in ("eps", "step_size", "num_steps", "norm", "loss", "random_start")}


def make(config, info, steps_per_epoch: int):
    return supervised.make(config, info, steps_per_epoch, name="pgd_at", schema=FIELDS, hints=MOVED)
