"""Goodfellow et al.'s adversarial training: ``alpha * J(x) + (1 - alpha) * J(x_adv)`` (FGSM-AT, FGM-AT).

    defense = fgsm_at.make(config, info, steps_per_epoch)
    # each step: x_adv = config.defense.attack (FGSM, or L2 FGM) against the eval-mode classifier;
    # one optimizer step on alpha * CE(x) + (1 - alpha) * CE(x_adv)

Config (``config.defense``): ``attack``, the train-time attack spec (``{"attack": "fgsm", "eps": 0.3}``;
``{"attack": "fgm", "norm": "l2", "eps": 0.1}`` for the L2 variant); ``alpha``, the weight of the clean
term (Goodfellow et al.: 0.5; 0 trains on adversarial examples only); plus the skeleton's
``adv_fraction`` and ``eps_ramp_epochs`` (:mod:`robustjax.defenses.supervised`).

The module is registered twice in ``robustjax.defenses.DEFENSES``: as ``fgsm_at`` and as ``fgm_at`` (the
perturbation-generator paper's L2 baseline). Both are this objective; they differ only in the attack spec
and ``alpha``, which are config values, so FGM-AT is not a module of its own: the second name only makes
reports say which was trained (``Defense.name`` is ``config.defense.name``). Any budget attack works;
with PGD this objective is Kannan et al.'s mixed minibatch (:mod:`robustjax.defenses.mix_pgd`).
"""

from __future__ import annotations

from robustjax.defenses import fields, supervised

FIELDS = {
    **supervised.FIELDS,
    "attack": fields.Field(fields.REQUIRED, fields.attack_spec(),
                           "the train-time attack, e.g. {'attack': 'fgsm', 'eps': 0.3} or "
                           "{'attack': 'fgm', 'norm': 'l2', 'eps': 0.1}"),
    "alpha": fields.Field(0.5, fields.number(0.0, 1.0),
                          "weight of the clean term: alpha * J(x) + (1 - alpha) * J(x_adv)"),
}
NETWORKS = ("classifier",)


def make(config, info, steps_per_epoch: int):
    hp = fields.read(config.defense, FIELDS, "config.defense")
    return supervised.make(config, info, steps_per_epoch, name=hp["name"], hp=hp,
                           objective=supervised.mixed_objective(hp["alpha"]))
