"""Kannan et al.'s mixed-minibatch PGD (M-PGD): each batch's clean examples and their PGD examples.

    defense = mix_pgd.make(config, info, steps_per_epoch)
    # each step: x_adv = PGD of the batch; one optimizer step on alpha * CE(x) + (1 - alpha) * CE(x_adv)

Kannan et al. ("Adversarial Logit Pairing", 2018) train on minibatches of ``m`` clean examples together
with the ``m`` adversarial examples made from them; the mean cross-entropy over those ``2m`` is
``0.5 * CE(x) + 0.5 * CE(x_adv)`` (``alpha`` 0.5). Clean and adversarial examples pass through the network
as one batch (:func:`robustjax.defenses.supervised.mixed_objective`).

This differs from FracAT (``adv_fraction``, ATGAN's "a fraction of each mini-batch replaced by adversarial
examples"), which keeps the batch size and replaces rows: here every example appears clean *and*
attacked. ``adv_fraction`` still applies on top (the adversarial half then holds some clean rows).

Config (``config.defense``): ``attack`` (GanDef's MNIST setting: ``{"attack": "pgd", "eps": 0.3,
"step_size": 0.01, "num_steps": 40, "random_start": True}``), ``alpha`` (0.5), and the skeleton's
``adv_fraction`` and ``eps_ramp_epochs``.
"""

from __future__ import annotations

from robustjax.defenses import fields, supervised

FIELDS = {
    **supervised.FIELDS,
    "attack": fields.Field(fields.REQUIRED, fields.attack_spec(),
                           "the train-time attack, e.g. {'attack': 'pgd', 'eps': 0.3, 'step_size': 0.01, "
                           "'num_steps': 40, 'random_start': True}"),
    "alpha": fields.Field(0.5, fields.number(0.0, 1.0),
                          "weight of the clean half: alpha * CE(x) + (1 - alpha) * CE(x_adv)"),
}
NETWORKS = ("classifier",)


def make(config, info, steps_per_epoch: int):
    hp = fields.read(config.defense, FIELDS, "config.defense")
    return supervised.make(config, info, steps_per_epoch, name="mix_pgd", hp=hp,
                           objective=supervised.mixed_objective(hp["alpha"]))
