"""Plain (clean) training: the baseline every defense is compared with.

    defense = standard.make(config, info, steps_per_epoch)

Cross-entropy on clean batches (``config.defense.label_smoothing``: 0 = none). A recipe on
:mod:`robustjax.defenses.supervised` with no train-time attack.
"""

from __future__ import annotations

from robustjax.defenses import fields, supervised

FIELDS = {
    "name": fields.Field(),
    "label_smoothing": fields.Field(0.0, fields.number(0.0, 1.0, hi_open=True),
                                    "optax.smooth_labels' alpha: the true class keeps 1 - alpha + alpha / K"),
}
NETWORKS = ("classifier",)


def make(config, info, steps_per_epoch: int):
    return supervised.make(config, info, steps_per_epoch, name="standard", schema=FIELDS)
