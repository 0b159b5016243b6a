"""Adversarial logit pairing (ALP, Kannan et al. 2018): mixed-minibatch PGD plus a pull between the
logits of each clean example and those of its adversarial example.

    defense = logit_pairing.make(config, info, steps_per_epoch)
    # loss = alpha * CE(x) + (1 - alpha) * CE(x_adv) + pairing_weight * mean((z(x) - z(x_adv))^2)

The pairing term is the squared difference of the two logit vectors averaged over the batch and the
classes (the mean squared error that Kannan et al.'s released training code adds to the mixed-minibatch
cross-entropy); :func:`robustjax.defenses.supervised.mixed_objective` computes it.

Config (``config.defense``): ``attack`` (the PGD of the pairs), ``alpha`` (0.5: the mixed minibatch),
``pairing_weight`` (lambda: 0.5 by default, the value of Kannan et al.'s released example command; GanDef
had to lower it to 0.01 on CIFAR-10, where 0.5 diverged), and the skeleton's ``adv_fraction`` and
``eps_ramp_epochs``.
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
    "pairing_weight": fields.Field(0.5, fields.number(0.0, lo_open=True),
                                   "lambda: weight of mean((z(x) - z(x_adv))^2); > 0 (0 is mix_pgd)"),
}
NETWORKS = ("classifier",)


def make(config, info, steps_per_epoch: int):
    hp = fields.read(config.defense, FIELDS, "config.defense")
    return supervised.make(config, info, steps_per_epoch, name="logit_pairing", hp=hp,
                           objective=supervised.mixed_objective(hp["alpha"], hp["pairing_weight"]))
