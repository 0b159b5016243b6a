"""Defenses: each module exports ``FIELDS``, ``NETWORKS`` and ``make(config, info, steps_per_epoch)``.

    from robustjax import defenses
    hp = defenses.read_config(config)                        # checks config.defense against its FIELDS
    defense = defenses.make(config, info, steps_per_epoch)   # config.defense.name picks the module

``DEFENSES`` is the explicit table of valid names (no registries filled by import side effects). A
defense module owns its config section: ``FIELDS`` (every field, its default and its check; see
:mod:`robustjax.defenses.fields`), ``NETWORKS`` (the names of its state's networks: the valid keys of
``config.train.optimizers``), optionally ``MOVED`` (what to say about fields that moved) and
``read_config(config)`` (cross-field checks), and ``make``. Single-classifier defenses are short
recipes on :mod:`robustjax.defenses.supervised`; docs/architecture.md shows how to add one.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from robustjax.defenses import (atgan, bcgan, defense_gan, distillation, feature_squeezing, fgsm_at, fields, gandef,
                                gda, label_smoothing, logit_pairing, mix_pgd, pgd_at, pgn, standard, trades, vat)
from robustjax.defenses.base import Defense, Detector, Phase, TrainState, bpda

DEFENSES: dict[str, ModuleType] = {
    "atgan": atgan,
    "gandef": gandef,
    "standard": standard,
    "pgd_at": pgd_at,
    "fgsm_at": fgsm_at,
    "fgm_at": fgsm_at,
    "mix_pgd": mix_pgd,
    "logit_pairing": logit_pairing,
    "trades": trades,
    "label_smoothing": label_smoothing,
    "gda": gda,
    "vat": vat,
    "distillation": distillation,
    "feature_squeezing": feature_squeezing,
    "defense_gan": defense_gan,
    "pgn": pgn,
    "bcgan": bcgan,
}


def module(config) -> ModuleType:
    """The module of ``config.defense.name`` (ValueError listing the valid names if unknown)."""
    name = config.defense.get("name", None)
    if name not in DEFENSES:
        raise ValueError(f"config.defense.name: {name!r} is not a known defense{fields.suggest(name, DEFENSES)}; "
                         f"choose one of {sorted(DEFENSES)}")
    return DEFENSES[name]


def read_config(config) -> dict[str, Any]:
    """Checks ``config.defense`` against its defense's fields and ``config.train.optimizers`` against
    its networks; returns the defense's fields with defaults filled in. Raises ValueError naming the field."""
    mod = module(config)
    if hasattr(mod, "read_config"):
        hp = mod.read_config(config)
    else:
        hp = fields.read(config.defense, mod.FIELDS, "config.defense", getattr(mod, "MOVED", None))
    per_network = config.train.get("optimizers", None) or {}
    for name in per_network.keys():
        if name not in mod.NETWORKS:
            raise ValueError(f"config.train.optimizers.{name}: {config.defense.name} has no network {name!r}"
                             f"{fields.suggest(name, mod.NETWORKS)}; its networks are {list(mod.NETWORKS)}")
    return hp


def make(config, info, steps_per_epoch: int) -> Defense:
    """Builds the defense named by ``config.defense.name``."""
    read_config(config)
    return module(config).make(config, info, steps_per_epoch)


__all__ = ["DEFENSES", "Defense", "Detector", "Phase", "TrainState", "bpda", "make", "module", "read_config"]
