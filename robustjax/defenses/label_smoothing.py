"""Label smoothing (Warde-Farley and Goodfellow; Zantedeschi et al.'s baseline): cross-entropy against
soft targets in which the true class keeps ``true_label_weight`` and the rest is shared by the others.

    defense = label_smoothing.make(config, info, steps_per_epoch)
    alpha = label_smoothing.smoothing_alpha(0.9, num_classes=10)     # 1/9: optax.smooth_labels' alpha

Zantedeschi et al. set "the weight of the true label" to 0.9. ``optax.smooth_labels(onehot, alpha)``
gives the true class ``1 - alpha + alpha / K`` and every other class ``alpha / K``, so the true class
keeps exactly ``w`` when ``alpha = (1 - w) * K / (K - 1)`` (1/9 for w = 0.9, K = 10); the other classes
then get ``(1 - w) / (K - 1)`` each. (``standard``'s ``label_smoothing`` field is optax's alpha itself.)

Config (``config.defense``): ``true_label_weight`` (0.9; at least 1/K, so the true class never gets less
than another).
"""

from __future__ import annotations

from robustjax.defenses import fields, supervised

FIELDS = {
    "name": fields.Field(),
    "true_label_weight": fields.Field(0.9, fields.number(0.0, 1.0, lo_open=True),
                                      "the soft target of the true class (the others share the rest)"),
}
NETWORKS = ("classifier",)


def smoothing_alpha(true_label_weight: float, num_classes: int) -> float:
    """optax.smooth_labels' alpha that leaves the true class exactly ``true_label_weight``."""
    return (1.0 - float(true_label_weight)) * num_classes / (num_classes - 1.0)


def make(config, info, steps_per_epoch: int):
    hp = fields.read(config.defense, FIELDS, "config.defense")
    k, w = int(info.num_classes), hp["true_label_weight"]
    if k < 2 or w < 1.0 / k:
        raise ValueError(f"config.defense.true_label_weight: must be at least 1/K = {1.0 / max(k, 1):.4g} for "
                         f"the {k} classes of {info.name} (else the true class gets less than the others), "
                         f"got {w!r}")
    return supervised.make(config, info, steps_per_epoch, name="label_smoothing", hp=hp,
                           objective=supervised.ce_objective(smoothing_alpha(w, k)))
