"""The evaluation's config, checked before training starts: attacks, curves, metrics, diagnostics, detector.

    from robustjax.evaluate import specs
    attacks, curves = specs.resolve(config.eval)     # {label: (Attack, options)}, {label: (Attack, options, grid)}
    plan = specs.resolve_all(config.eval)            # + metrics, diagnostics and detector settings
    plan.metrics["er"].name, plan.metrics["er"].params   # 'empirical_robustness', {'eps_max': 1.0, ...}

``config.validate`` calls :func:`resolve_all`, so every mistake below fails before the first training step
with a message that starts with the field's path.

Attacks and curves
------------------
``config.eval.attacks`` maps a label to an attack spec (``{"attack": "pgd", "eps": 0.3, ...}``, resolved by
:func:`robustjax.attacks.resolve`; a budget attack must give ``eps``). ``config.eval.curves`` maps a label
to a spec plus ``eps_grid`` (a non-empty list of radii; eps comes from the grid, so the spec has none).
Keys of a spec that belong to the evaluation rather than to the attack:

- ``eps_grid`` (curves only): the radii of the robustness curve.
- ``adaptive`` (default True): for a defense with a differentiable surrogate (BPDA), attack through it;
  ``False`` attacks the deployed classifier as it is (the naive attacker, shown beside the adaptive one).
- ``against_detector`` (default False): for a defense with a detector, attack classifier and detector
  together (their combined logits) instead of the classifier alone.
- ``radii`` (minimal-perturbation attacks only: deepfool, cw_l2, fab without eps): radii, in the attack's
  norm, at which the suite also reports accuracy from the attack's minimal perturbations (an example
  counts as broken at radius r when the attack fooled it with a perturbation of norm <= r).

A curve's step size. A fixed ``step_size`` is one size for every radius of the grid: too small to reach
the edge of the large balls in ``num_steps`` steps, or too coarse for the small ones. A curve whose
positive radii span more than ``CURVE_MAX_FIXED_STEP_SPAN`` (4x) must therefore give ``rel_step_size``
(the step is ``rel_step_size * eps`` at each radius); a fixed step is refused with the equivalent
relative step in the message. ``robustjax.config.linf_suite`` / ``l2_suite`` build curves with
``rel_step_size``.

Metrics (``config.eval.metrics``)
---------------------------------
``{label: {"metric": name, **fields}}``; the names, fields and defaults are :data:`METRIC_FIELDS` (the
formulas and papers: :mod:`robustjax.evaluate.metrics`). Every metric has ``num_examples`` (0: all the
examples the suite evaluates, else the first ``num_examples`` of them).

Diagnostics (``config.eval.diagnostics``) and detector curves (``config.eval.detector``)
----------------------------------------------------------------------------------------
Closed sections with the fields of :data:`DIAGNOSTICS_FIELDS` and :data:`DETECTOR_FIELDS` (the rules and
their thresholds: :mod:`robustjax.evaluate.diagnostics`; the detector curves: :mod:`robustjax.evaluate.suite`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Mapping

from robustjax import attacks as attacks_lib
from robustjax.defenses import fields as F

# Spec keys the evaluation reads itself (not passed to the attack).
SUITE_KEYS = ("eps_grid", "adaptive", "against_detector", "radii")

# A curve with a fixed step_size may span at most this ratio of its largest to its smallest positive radius.
CURVE_MAX_FIXED_STEP_SPAN = 4.0


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


def _numbers(value: Any, where: str, what: str, example: str, *, positive: bool = False,
             allow_empty: bool = False) -> list[float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{where}: must be a list of {what}, e.g. {example}, got {value!r}")
    values = list(value)
    if not values and not allow_empty:
        raise ValueError(f"{where}: is empty; give the {what}, e.g. {example}")
    out = []
    for i, v in enumerate(values):
        bad = isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or math.isinf(v)
        if bad or v < 0 or (positive and v == 0):
            raise ValueError(f"{where}[{i}]: must be a finite number {'> 0' if positive else '>= 0'}, got {v!r}")
        out.append(float(v))
    return out


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


def _check_curve_step(spec: dict, grid: list[float], where: str) -> None:
    """Refuses a fixed step_size on a curve whose positive radii span more than CURVE_MAX_FIXED_STEP_SPAN."""
    if "step_size" not in spec:
        return
    positive = [e for e in grid if 0.0 < e < math.inf]
    if len(positive) < 2:
        return
    span = max(positive) / min(positive)
    if span > CURVE_MAX_FIXED_STEP_SPAN:
        step = spec["step_size"]
        rel = step / max(positive) if isinstance(step, (int, float)) and not isinstance(step, bool) else None
        hint = f" (rel_step_size={rel:.4g} keeps this step at eps={max(positive):g})" if rel else ""
        raise ValueError(
            f"{where}.step_size: a fixed step on a curve whose radii span {span:.3g}x (more than "
            f"{CURVE_MAX_FIXED_STEP_SPAN:g}x) is too small at the large radii or too coarse at the small ones; "
            f"give rel_step_size instead (the step becomes rel_step_size * eps at each radius){hint}")


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
        atk = attacks_lib.resolve(spec, where=where)
        if "radii" in options:
            if atk.budget:
                raise ValueError(f"{where}.radii: only minimal-perturbation attacks ({list(attacks_lib.MINIMAL_ATTACKS)}"
                                 f" without eps) take radii; {atk.name} with eps already reports accuracy at its eps")
            if atk.norm not in ("l2", "linf"):
                raise ValueError(f"{where}.radii: {atk.name} measures its perturbations in {atk.norm}; radii are "
                                 "supported for l2 and linf attacks (deepfool, cw_l2, fab)")
            options["radii"] = _numbers(options["radii"], f"{where}.radii", "radii", "[1.5, 2.0]", positive=True)
        attacks[label] = (atk, options)
    for label, entry in sorted(_plain(eval_cfg.get("curves", {}) or {}).items()):
        where = f"config.eval.curves.{label}"
        spec, options = split(entry, where)
        if "eps_grid" not in options:
            raise ValueError(f"{where}.eps_grid: missing; a curve needs the radii to attack at, "
                             "e.g. eps_grid=[0.0, 0.1, 0.2, 0.3]")
        if "radii" in options:
            raise ValueError(f"{where}.radii: curves take eps_grid; radii belong to minimal-perturbation attacks")
        grid = _grid(options["eps_grid"], where)
        if "eps" in spec:
            raise ValueError(f"{where}.eps: a curve takes its radii from eps_grid; drop eps")
        atk = attacks_lib.resolve(spec, where=where, require_eps=False)
        if not atk.budget:
            raise ValueError(f"{where}.attack: {atk.name} has no eps budget, so it cannot trace a curve over "
                             f"eps; use a budget attack such as {list(attacks_lib.BUDGET_ATTACKS)}")
        _check_curve_step(spec, grid, where)
        curves[label] = (atk, options, grid)
    return attacks, curves


# ----------------------------------------------------------------------------------------------------------
# Metrics


def _model_spec(value: Any, path: str) -> dict:
    from robustjax import models

    value = F.plain(value)
    if not isinstance(value, dict) or "name" not in value:
        raise ValueError(f"{path}: must be a model config with a name, e.g. {{'name': 'small_cnn'}}, got {value!r}")
    try:
        models.check_config(value)
    except ValueError as e:
        raise ValueError(f"{path}: {str(e).replace('config.model', 'model')}") from e
    return value


def _source(value: Any, path: str) -> str:
    """``"standard"`` or a run directory holding config.json and checkpoints/."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{path}: must be 'standard' (a standard model trained on the spot) or a run directory, "
                         f"got {value!r}")
    if value == "standard":
        return value
    if not os.path.isfile(os.path.join(value, "config.json")) or not os.path.isdir(os.path.join(value, "checkpoints")):
        raise ValueError(f"{path}: {value!r} is not a run directory (it needs config.json and checkpoints/ as "
                         "main.py writes them); give a finished run's --workdir, or 'standard'")
    return value


def _optional_positive(value: Any, path: str) -> float | None:
    if value is None:
        return None
    return F.number(0.0, lo_open=True)(value, path)


_N = F.Field(0, F.integer(0), "examples (0: all the suite evaluates, else the first num_examples)")
_ADAPTIVE = F.Field(True, F.boolean(), "differentiate the BPDA surrogate where the defense has one")
_MINIMAL_FGSM = {
    "eps_max": F.Field(1.0, F.number(0.0, lo_open=True), "largest FGSM step searched (pixel units)"),
    "num_grid": F.Field(32, F.integer(1), "grid points in (0, eps_max]"),
    "num_bisection": F.Field(10, F.integer(0), "halvings of the first flipping grid cell"),
}

METRIC_FIELDS: dict[str, dict[str, F.Field]] = {
    "empirical_robustness": {"metric": F.Field(), "num_examples": _N, "adaptive": _ADAPTIVE, **_MINIMAL_FGSM},
    "train_distance": {
        "metric": F.Field(), "num_examples": _N, "adaptive": _ADAPTIVE, **_MINIMAL_FGSM,
        "attack": F.Field("minimal_fgsm", F.text(),
                          "whose adversarial examples: 'minimal_fgsm' or a label of config.eval.attacks"),
        "chunk_size": F.Field(4096, F.integer(1), "training images per distance block"),
    },
    "loss_sensitivity": {"metric": F.Field(), "num_examples": _N, "adaptive": _ADAPTIVE},
    "rho_adv": {
        "metric": F.Field(), "num_examples": _N, "adaptive": _ADAPTIVE,
        "norm": F.Field("l2", F.choice("l2", "linf"), "norm of the perturbation"),
        "eps_hi": F.Field(None, _optional_positive, "largest eps searched (None: the box's diameter)"),
        "num_bisection": F.Field(12, F.integer(1), "bisection steps (precision eps_hi / 2**num_bisection)"),
        "num_steps": F.Field(20, F.integer(1), "PGD steps per tried eps"),
        "rel_step_size": F.Field(0.25, F.number(0.0, lo_open=True), "PGD step relative to the tried eps"),
        "loss": F.Field("ce", F.choice("ce", "margin", "dlr"),
                        "PGD's loss: 'margin' (C&W's logit margin) still moves where a saturated softmax zeroes "
                        "the cross-entropy's gradient (distillation)"),
    },
    "transfer": {
        "metric": F.Field(), "num_examples": _N,
        "source": F.Field(F.REQUIRED, _source, "'standard' or a run directory to craft on"),
        "attack": F.Field(F.REQUIRED, F.attack_spec(), "the attack crafted on the source"),
        "model": F.Field({"name": "small_cnn"}, _model_spec, "source='standard': the model to train"),
        "steps": F.Field(500, F.integer(1), "source='standard': training steps"),
        "batch_size": F.Field(128, F.integer(1), "source='standard': batch size"),
        "learning_rate": F.Field(1e-3, F.number(0.0, lo_open=True), "source='standard': Adam learning rate"),
        "seed": F.Field(0, F.integer(0), "source='standard': initialisation and data order"),
        "eps_grid": F.Field([], lambda v, path: _numbers(v, path, "radii > 0", "[0.05, 0.1, 0.2, 0.3]",
                                                          positive=True, allow_empty=True),
                            "also the black-box curve: the attack at each radius, drawn with the robustness "
                            "curves under the metric's label ([]: the attack's own eps only)"),
    },
}


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """A checked entry of ``config.eval.metrics``: its name, its fields (defaults filled in), its path."""

    name: str
    params: Mapping[str, Any]
    where: str


def resolve_metrics(eval_cfg: Any) -> dict[str, MetricSpec]:
    """Checks ``config.eval.metrics``; returns ``{label: MetricSpec}`` (sorted by label)."""
    out = {}
    attack_labels = set(_plain(eval_cfg.get("attacks", {}) or {}))
    curve_labels = set(_plain(eval_cfg.get("curves", {}) or {}))
    for label, entry in sorted(_plain(eval_cfg.get("metrics", {}) or {}).items()):
        where = f"config.eval.metrics.{label}"
        entry = F.plain(entry)
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a dict {{'metric': name, ...}}, got {entry!r}")
        name = entry.get("metric")
        if name not in METRIC_FIELDS:
            raise ValueError(f"{where}.metric: {name!r} is not a metric{F.suggest(name, METRIC_FIELDS)}; "
                             f"valid metrics are {sorted(METRIC_FIELDS)}")
        params = F.read(entry, METRIC_FIELDS[name], where)
        params.pop("metric")
        if name == "train_distance" and params["attack"] != "minimal_fgsm" and params["attack"] not in attack_labels:
            raise ValueError(f"{where}.attack: {params['attack']!r} is neither 'minimal_fgsm' nor a label of "
                             f"config.eval.attacks ({sorted(attack_labels)}){F.suggest(params['attack'], attack_labels)}")
        if name == "transfer" and params["eps_grid"]:
            atk = attacks_lib.resolve(params["attack"], where=f"{where}.attack")
            if not atk.budget:
                raise ValueError(f"{where}.eps_grid: {atk.name!r} is a minimal-perturbation attack with no radius "
                                 "to sweep; give a budget attack (fgsm, pgd, ...) or drop eps_grid")
            _check_curve_step(dict(params["attack"]), params["eps_grid"], f"{where}.attack")
            if label in curve_labels:
                raise ValueError(f"{where}.eps_grid: its black-box curve is drawn under the label {label!r}, which "
                                 "config.eval.curves already uses; rename the metric or the curve")
        out[label] = MetricSpec(name, params, where)
    return out


# ----------------------------------------------------------------------------------------------------------
# Diagnostics and detector curves


def _flag(value: Any, path: str) -> bool:
    return F.boolean()(value, path)


DIAGNOSTICS_FIELDS: dict[str, F.Field] = {
    "enabled": F.Field(True, _flag, "run the gradient-masking diagnostics"),
    "num_examples": F.Field(128, F.integer(1), "examples the diagnostics' own attacks run on (the first ones)"),
    "eps": F.Field(0.0, F.number(0.0), "radius of the attack comparisons; 0: the eps of the suite's attack "
                                       "with the most steps"),
    "few_steps": F.Field(20, F.integer(1), "PGD steps of the few-step run, when the suite has no PGD there"),
    "many_steps": F.Field(200, F.integer(1), "PGD steps of the many-step run, when the suite has none there"),
    "unbounded_steps": F.Field(100, F.integer(1), "steps of the unbounded (eps = inf) PGD"),
    "square_queries": F.Field(500, F.integer(0), "Square queries when the suite has no Square (0: skip)"),
    "max_gap": F.Field(0.05, F.number(0.0, 1.0), "largest tolerated gap (accuracy) between two attacks"),
    "max_unbounded_accuracy": F.Field(0.05, F.number(0.0, 1.0), "largest tolerated accuracy under "
                                                                "unbounded PGD"),
    "max_zero_gradient_fraction": F.Field(0.10, F.number(0.0, 1.0), "largest tolerated fraction of test "
                                                                    "points with a zero input gradient"),
    "max_gradient_norm": F.Field(1e4, F.number(0.0, lo_open=True), "largest tolerated input-gradient L2 norm"),
}

DEFAULT_RATIOS = [i / 10 for i in range(11)]
DETECTOR_FIELDS: dict[str, F.Field] = {
    "thresholds": F.Field([], None, "thresholds of the sweep ([]: 21 points over the observed scores)"),
    "ratios": F.Field(DEFAULT_RATIOS, None, "ratios rho of adversarial inputs of the rho curve"),
}


def resolve_diagnostics(eval_cfg: Any) -> dict[str, Any]:
    """``config.eval.diagnostics`` checked, defaults filled in (a missing section: the defaults)."""
    return F.read(eval_cfg.get("diagnostics", None), DIAGNOSTICS_FIELDS, "config.eval.diagnostics")


def resolve_detector(eval_cfg: Any) -> dict[str, Any]:
    """``config.eval.detector`` checked, defaults filled in."""
    where = "config.eval.detector"
    out = F.read(eval_cfg.get("detector", None), DETECTOR_FIELDS, where)
    thresholds = out["thresholds"]
    if isinstance(thresholds, (str, bytes)) or not hasattr(thresholds, "__iter__"):
        raise ValueError(f"{where}.thresholds: must be a list of numbers ([] for an automatic grid), got {thresholds!r}")
    for i, t in enumerate(list(thresholds)):
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise ValueError(f"{where}.thresholds[{i}]: must be a finite number, got {t!r}")
    out["thresholds"] = sorted(float(t) for t in thresholds)
    ratios = _numbers(out["ratios"], f"{where}.ratios", "ratios in [0, 1]", "[0.0, 0.5, 1.0]")
    for i, r in enumerate(ratios):
        if r > 1.0:
            raise ValueError(f"{where}.ratios[{i}]: must be in [0, 1], got {r!r}")
    out["ratios"] = ratios
    return out


def _progress(eval_cfg: Any) -> bool:
    value = eval_cfg.get("progress", True)
    if not isinstance(value, bool):
        raise ValueError(f"config.eval.progress: must be True or False, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything ``config.eval`` asks for, checked."""

    attacks: dict
    curves: dict
    metrics: dict[str, MetricSpec]
    diagnostics: dict[str, Any]
    detector: dict[str, Any]
    progress: bool


def resolve_all(eval_cfg: Any) -> Plan:
    """Checks the whole of ``config.eval`` (what ``config.validate`` runs) and returns it resolved.

    Raises:
      ValueError: the first problem, naming its field.
    """
    attacks, curves = resolve(eval_cfg)
    return Plan(attacks, curves, resolve_metrics(eval_cfg), resolve_diagnostics(eval_cfg),
                resolve_detector(eval_cfg), _progress(eval_cfg))
