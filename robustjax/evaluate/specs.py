"""The evaluation's attack specs: every one checked before training starts.

    from robustjax.evaluate import specs
    attacks, curves = specs.resolve(config.eval)     # {label: Attack}, {label: (Attack, eps_grid)}

``config.eval.attacks`` maps a label to an attack spec (``{"attack": "pgd", "eps": 0.3, ...}``, resolved by
:func:`robustjax.attacks.resolve`; a budget attack must give ``eps``). ``config.eval.curves`` maps a label
to a spec plus ``eps_grid`` (a non-empty list of radii; eps comes from the grid, so the spec has none).
Keys of a spec that belong to the evaluation rather than to the attack:

- ``eps_grid`` (curves only): the radii of the robustness curve.
- ``adaptive`` (default True): for a defense with a differentiable surrogate (BPDA), attack through it;
  ``False`` attacks the deployed classifier as it is (the naive attacker, shown beside the adaptive one).
- ``against_detector`` (default False): for a defense with a detector, attack classifier and detector
  together (their combined logits) instead of the classifier alone.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from robustjax import attacks as attacks_lib

# Spec keys the evaluation reads itself (not passed to the attack).
SUITE_KEYS = ("eps_grid", "adaptive", "against_detector")


def _plain(spec: Any) -> dict:
    return spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)


def split(spec: Mapping[str, Any], where: str) -> tuple[dict, dict]:
    """``(attack spec, suite options)`` of one entry; checks the suite's own keys."""
    spec = _plain(spec)
    options = {k: spec.pop(k) for k in SUITE_KEYS if k in spec}
    for flag in ("adaptive", "against_detector"):
        if flag in options and not isinstance(options[flag], bool):
            raise ValueError(f"{where}.{flag}: must be True or False, got {options[flag]!r}")
    return spec, options


def _grid(value: Any, where: str) -> list[float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{where}.eps_grid: must be a non-empty list of radii, e.g. [0.0, 0.1, 0.2], got {value!r}")
    grid = list(value)
    if not grid:
        raise ValueError(f"{where}.eps_grid: is empty; give the radii of the curve, e.g. [0.0, 0.1, 0.2]")
    out = []
    for i, eps in enumerate(grid):
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps) or eps < 0:
            raise ValueError(f"{where}.eps_grid[{i}]: must be a number >= 0, got {eps!r}")
        out.append(float(eps))
    return out


def resolve(eval_cfg: Any) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Resolves every attack and curve of ``config.eval``.

    Returns:
      ``({label: (Attack, options)}, {label: (Attack, options, eps_grid)})``.

    Raises:
      ValueError: the first bad spec, naming its field (``config.eval.curves.pgd.eps_grid: ...``).
    """
    attacks, curves = {}, {}
    for label, entry in sorted(_plain(eval_cfg.get("attacks", {}) or {}).items()):
        where = f"config.eval.attacks.{label}"
        spec, options = split(entry, where)
        if "eps_grid" in options:
            raise ValueError(f"{where}.eps_grid: only curves take an eps_grid; move this entry to "
                             "config.eval.curves, or give a single eps")
        attacks[label] = (attacks_lib.resolve(spec, where=where), options)
    for label, entry in sorted(_plain(eval_cfg.get("curves", {}) or {}).items()):
        where = f"config.eval.curves.{label}"
        spec, options = split(entry, where)
        if "eps_grid" not in options:
            raise ValueError(f"{where}.eps_grid: missing; a curve needs the radii to attack at, "
                             "e.g. eps_grid=[0.0, 0.1, 0.2, 0.3]")
        grid = _grid(options["eps_grid"], where)
        if "eps" in spec:
            raise ValueError(f"{where}.eps: a curve takes its radii from eps_grid; drop eps")
        atk = attacks_lib.resolve(spec, where=where, require_eps=False)
        if not atk.budget:
            raise ValueError(f"{where}.attack: {atk.name} has no eps budget, so it cannot trace a curve over "
                             f"eps; use a budget attack such as {list(attacks_lib.BUDGET_ATTACKS)}")
        curves[label] = (atk, options, grid)
    return attacks, curves
