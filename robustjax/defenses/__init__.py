"""Defenses: each module exports ``make(config, info, steps_per_epoch) -> Defense``.

    from robustjax import defenses
    defense = defenses.make(config, info, steps_per_epoch)   # config.defense.name picks the module

``DEFENSES`` is the explicit list of valid names (no registries filled by import side effects).
"""

from __future__ import annotations

from robustjax.defenses import atgan, pgd_at, standard
from robustjax.defenses.base import Defense, Phase, TrainState

DEFENSES = {
    "atgan": atgan.make,
    "standard": standard.make,
    "pgd_at": pgd_at.make,
}


def make(config, info, steps_per_epoch: int) -> Defense:
    """Builds the defense named by ``config.defense.name``."""
    name = config.defense.name
    if name not in DEFENSES:
        raise ValueError(
            f"config.defense.name={name!r} is not a known defense; choose one of {sorted(DEFENSES)}"
        )
    return DEFENSES[name](config, info, steps_per_epoch)


__all__ = ["DEFENSES", "Defense", "Phase", "TrainState", "make"]
