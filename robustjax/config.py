"""The config schema: defaults for every field, and validation before anything trains.

    from robustjax.config import base_config, validate
    config = base_config(); config.defense.name = "pgd_at"; config.defense.eps = 0.3
    validate(config)        # ValueError naming the field if anything is off

Every config file in ``configs/`` starts from :func:`base_config`, so every field exists (and can be
overridden from the command line) in every run. Values are plain (numbers, strings, lists, dicts) so the
resolved config is saved as JSON beside the results.

Open sections - where each defense or attack brings its own keys - are ``config.defense`` (its
hyperparameters, named as in its paper; the defense's ``FIELDS`` check them), ``config.model`` (the
model's fields, checked by ``robustjax.models``) and ``config.eval.attacks`` / ``config.eval.curves`` (one
attack spec per entry, resolved by ``robustjax.attacks.resolve``). Everything else is closed: a field the
schema does not know is a typo. :func:`validate` checks all of it, so a typo fails before any training.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import math
import os
from typing import Any

import ml_collections

from robustjax.data.loader import SOURCES



def optimizer(name: str = "adam", learning_rate: float = 1e-3, **kw) -> ml_collections.ConfigDict:
    """An optimizer spec (see ``robustjax.defenses.base.make_optimizer`` for the fields)."""
    spec = dict(
        name=name, learning_rate=learning_rate, b1=0.9, b2=0.999, momentum=0.9, nesterov=False,
        weight_decay=0.0, grad_clip=0.0, schedule="constant", decay_epochs=[], decay_factor=0.1,
        warmup_epochs=0.0,
    )
    spec.update(kw)
    return ml_collections.ConfigDict(spec)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.smoke = False             # set by the ':smoke' variants: a tiny run whose numbers mean nothing

    c.data = ml_collections.ConfigDict(dict(
        name="digits",          # tfds name, or digits / two_gaussians / circles / moons
        source="digits",        # tfds | npz | digits | toy2d | synthetic
        path="",                # npz file (source=npz)
        data_dir="",            # tfds data_dir ("" = tfds default)
        download=True,          # tfds: try to download and prepare if the data is missing
        train_size=0,           # 0 = the whole split
        test_size=0,
        batch_size=128,
        image_size=16,          # digits: 8x8 resized to image_size x image_size
        num_classes=0,          # npz: 0 = max label + 1
        noise=0.1,              # toy2d
        num_points=2000,        # toy2d (train; test is a quarter of it)
    ))

    c.model = ml_collections.ConfigDict(dict(
        name="small_cnn", width=1.0, activation="relu", brelu_t=1.0,
    ))

    c.defense = ml_collections.ConfigDict(dict(name="standard"))

    c.train = ml_collections.ConfigDict(dict(
        epochs=1.0,
        steps=0,                # > 0 overrides epochs
        optimizer=optimizer(),
        optimizers=ml_collections.ConfigDict(),   # per-network overrides: {"generator": {...}}
        ema_decay=0.0,
        log_every=50,
        checkpoint_every=1000,
        keep_checkpoints=2,
        progress=True,          # progress bar (only shown on a terminal)
        data_parallel=True,     # with several devices: replicate the state, split each batch over them
    ))

    c.eval = ml_collections.ConfigDict(dict(
        num_examples=1000,      # 0 = the whole test set
        batch_size=256,
        attacks=ml_collections.ConfigDict(),   # {label: {"attack": "pgd", "eps": ..., ...}}
        curves=ml_collections.ConfigDict(),    # {label: {"attack": "pgd", "eps_grid": [...], ...}}
        metrics=ml_collections.ConfigDict(),   # {label: {"metric": "empirical_robustness", ...}} (evaluate.metrics)
        num_pictures=8,
        # The report's figures (robustjax.evaluate.figures: what each shows, the defaults, the checks).
        figures=["curves", "examples", "training", "saliency", "decision_plane", "samples"],
        saliency=ml_collections.ConfigDict(dict(num_images=4, attack="", eps=[])),
        decision_plane=ml_collections.ConfigDict(dict(
            num_images=2, sigma=0.05, m=32, scale=0.0, resolution=41, direction="random")),
        progress=True,          # progress bar over the evaluation (only shown on a terminal)
        # "full": the attacks as configured; "quick": their loop counts capped (QUICK_CAPS), for a CPU; the
        # report says so, and which fields changed: weaker than the config's evaluation (apply_eval_preset).
        preset="full",
        # Gradient-masking diagnostics (robustjax.evaluate.diagnostics): rules, thresholds, their own runs.
        diagnostics=ml_collections.ConfigDict(dict(
            enabled=True, num_examples=128, eps=0.0, few_steps=20, many_steps=200, unbounded_steps=100,
            square_queries=500, max_gap=0.05, max_unbounded_accuracy=0.05, max_zero_gradient_fraction=0.10,
            max_gradient_norm=1e4,
        )),
        # Defenses with a detector: the threshold sweep and GanDef's curve over the ratio of adversarial inputs.
        detector=ml_collections.ConfigDict(dict(thresholds=[], ratios=[i / 10 for i in range(11)])),
    ))
    return c


def _closed_sections() -> dict[str, set[str]]:
    base = base_config()
    return {
        "": set(base.keys()),
        "data": set(base.data.keys()),
        "train": set(base.train.keys()),
        "eval": set(base.eval.keys()),
    }


def _fail(field: str, problem: str) -> None:
    raise ValueError(f"config.{field}: {problem}")


def _positive_int(c, field: str, value: Any, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        _fail(field, f"must be a {'non-negative' if allow_zero else 'positive'} integer, got {value!r}")


def _nonneg(field: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) or value < 0:
        _fail(field, f"must be a number >= 0, got {value!r}")


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks names, ranges and unknown fields; raises ValueError naming the offending field."""
    closed = _closed_sections()
    for section, allowed in closed.items():
        node = config if section == "" else config.get(section)
        if node is None:
            _fail(section, "is missing (start configs from robustjax.config.base_config())")
        unknown = sorted(set(node.keys()) - allowed)
        if unknown:
            where = f"{section}." if section else ""
            _fail(f"{where}{unknown[0]}", f"unknown field; valid fields here are {sorted(allowed)}")

    d = config.data
    if d.source not in SOURCES:
        _fail("data.source", f"{d.source!r} is not one of {SOURCES}")
    if d.source == "npz" and not d.path:
        _fail("data.path", "source=npz needs a path to a .npz file with x_train/y_train/x_test/y_test")
    if d.source == "idx" and not d.path:
        _fail("data.path", "source=idx needs the folder holding train-images-idx3-ubyte(.gz) and the other "
              "three MNIST-format files (Fashion-MNIST: /usr/share/datasets/fashion-mnist from Debian's "
              "dataset-fashion-mnist)")
    _positive_int(config, "data.batch_size", d.batch_size)
    _positive_int(config, "data.train_size", d.train_size, allow_zero=True)
    _positive_int(config, "data.test_size", d.test_size, allow_zero=True)
    _positive_int(config, "data.image_size", d.image_size)
    if not isinstance(config.seed, int):
        _fail("seed", f"must be an integer, got {config.seed!r}")

    t = config.train
    _nonneg("train.epochs", t.epochs)
    _positive_int(config, "train.steps", t.steps, allow_zero=True)
    if t.steps == 0 and t.epochs <= 0:
        _fail("train.epochs", "must be > 0 when train.steps is 0")
    _positive_int(config, "train.log_every", t.log_every)
    _positive_int(config, "train.checkpoint_every", t.checkpoint_every)
    _positive_int(config, "train.keep_checkpoints", t.keep_checkpoints)
    if not 0.0 <= t.ema_decay < 1.0:
        _fail("train.ema_decay", f"must be in [0, 1), got {t.ema_decay}")
    specs = {"train.optimizer": t.optimizer}
    specs.update({f"train.optimizers.{k}": v for k, v in t.optimizers.items()})
    valid = set(optimizer().keys())
    for field, spec in specs.items():
        unknown = sorted(set(spec.keys()) - valid)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(valid), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"{field}.{unknown[0]}", f"unknown optimizer field{hint}; valid fields are {sorted(valid)}")
        if "learning_rate" in spec:
            _nonneg(f"{field}.learning_rate", spec.learning_rate)
        if "name" in spec and spec.name not in ("adam", "adamw", "sgd"):
            _fail(f"{field}.name", f"{spec.name!r} is not one of ('adam', 'adamw', 'sgd')")
        if "schedule" in spec and spec.schedule not in ("constant", "step", "cosine"):
            _fail(f"{field}.schedule", f"{spec.schedule!r} is not one of ('constant', 'step', 'cosine')")

    e = config.eval
    _positive_int(config, "eval.batch_size", e.batch_size)
    _positive_int(config, "eval.num_examples", e.num_examples, allow_zero=True)
    _positive_int(config, "eval.num_pictures", e.num_pictures, allow_zero=True)
    _check_preset(e.preset)
    from robustjax.evaluate import figures as eval_figures

    eval_figures.check_config(e)  # config.eval.figures, .saliency, .decision_plane

    # The open sections belong to their owners, who check them: the model's fields, the defense's
    # fields (and which networks config.train.optimizers may name), every evaluation attack spec.
    from robustjax import defenses, models
    from robustjax.evaluate import specs as eval_specs

    models.check_config(config.model)
    defenses.read_config(config)
    eval_specs.resolve_all(e)


def config_module(path: str, relative_to: str | None = None):
    """The config file at ``path`` (one of ``configs/*.py``) loaded as a module.

    ``relative_to``: a file whose folder ``path`` is relative to; a config that builds on another passes
    its own ``__file__`` (``config_module("pgn_cifar10.py", __file__).paper_config(...)``).
    """
    if relative_to is not None:
        path = os.path.join(os.path.dirname(os.path.abspath(relative_to)), path)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or not os.path.isfile(path):
        raise FileNotFoundError(f"no config file {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config_file(path: str, arg: str | None = None, relative_to: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` of the config file at ``path``: what ``main.py --config=path:arg`` starts from."""
    return config_module(path, relative_to).get_config(arg)


def parse_arg(arg: str | None, allowed: dict[str, Any]) -> dict[str, Any]:
    """Parses a config-file argument such as ``"smoke"`` or ``"eps_t=8,smoke"``.

    ``allowed`` maps each known key to its default; values are converted to the default's type (flags
    like ``smoke`` are booleans set by their bare name). Unknown keys raise a ValueError listing the
    valid ones.
    """
    out = dict(allowed)
    if not arg:
        return out
    for part in str(arg).split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        if name not in allowed:
            raise ValueError(f"unknown config argument {name!r} in {arg!r}; valid: {sorted(allowed)}")
        default = allowed[name]
        if isinstance(default, bool):
            out[name] = value.lower() not in ("0", "false", "no") if value else True
        elif value == "":
            raise ValueError(f"config argument {name!r} needs a value, e.g. {name}={default}")
        else:
            try:
                out[name] = type(default)(value)
            except ValueError as e:
                raise ValueError(f"config argument {name}={value!r}: expected {type(default).__name__}") from e
    return out


# What a smoke variant leaves of each loop count (attack, curve and metric specs; the diagnostics' own runs).
SMOKE_CAPS = {"num_steps": 3, "num_queries": 10, "num_targets": 2, "restarts": 1, "binary_search_steps": 2,
              "eot_iter": 2, "num_grid": 4, "num_bisection": 2, "steps": 4}
# The diagnostics' own runs in a smoke variant: few- and many-step PGD as long as the capped suite PGD (so
# they reuse its compiled function), no Square (tests/test_eval_diagnostics.py covers it): two compiles.
SMOKE_DIAGNOSTICS = {"few_steps": 3, "many_steps": 3, "unbounded_steps": 5, "square_queries": 0}
# AutoAttack's components in a smoke variant: one (each compiles for seconds; tests/test_attacks_autoattack.py
# runs the whole ensemble).
SMOKE_AUTOATTACK = ("apgd-ce",)


def shrink_for_smoke(c: ml_collections.ConfigDict, *, train_size: int = 128, test_size: int = 32,
                     batch_size: int = 32, steps: int = 4) -> ml_collections.ConfigDict:
    """The ``smoke`` variant: a few steps on a few examples with a narrow model (for tests and CI).

    A dataset that would come from tfds or a file is replaced by synthetic stand-in data of the same
    shape and classes (``robustjax.data.synthetic``), so every smoke variant runs offline in seconds;
    ``config.smoke`` marks the run, and its report says that its numbers mean nothing. Tests that want
    the tfds path itself set ``config.data.source = "tfds"`` back (under ``tfds.testing.mock_data``).

    Every loop count of the evaluation is capped (``SMOKE_CAPS``: PGD-1000 and AutoAttack run 3 steps,
    Square 10 queries, targeted attacks 2 targets, C&W 2 binary-search steps; ``SMOKE_DIAGNOSTICS``: the
    diagnostics' own PGD runs, no Square), AutoAttack runs only APGD-CE (``SMOKE_AUTOATTACK``: compiling
    the whole ensemble takes longer than the rest of a smoke run), metrics and diagnostics run on the smoke
    test set, and curves keep their first two radii. The labels keep their names (``pgd1000_0p3`` runs 3
    steps): a smoke run checks that everything runs.
    """
    from robustjax.data import synthetic

    c.smoke = True
    if c.data.source in ("tfds", "npz", "idx") and c.data.name in synthetic.SHAPES:
        c.data.source = "synthetic"
    c.data.train_size, c.data.test_size, c.data.batch_size = train_size, test_size, batch_size
    c.train.steps = steps
    c.train.log_every = max(1, steps // 2)
    c.train.checkpoint_every = steps
    c.model.width = min(float(c.model.width), 0.25)
    c.eval.num_examples = test_size
    c.eval.batch_size = test_size
    c.eval.num_pictures = 4
    # Every figure is still drawn (the smoke run checks that it works), at its cheapest.
    c.eval.saliency.num_images = 2
    c.eval.decision_plane.num_images, c.eval.decision_plane.m, c.eval.decision_plane.resolution = 1, 4, 11
    for group in (c.eval.attacks, c.eval.curves, c.eval.metrics):
        for spec in group.values():
            _cap_counts(spec, attack_spec=group is not c.eval.metrics)
            if "attack" in spec and hasattr(spec["attack"], "keys"):  # a metric's attack spec (transfer)
                _cap_counts(spec["attack"])
            if "num_examples" in spec:
                spec.num_examples = min(int(spec.num_examples) or test_size, test_size)
            if "batch_size" in spec:
                spec.batch_size = min(int(spec.batch_size), batch_size)
            if "eps_grid" in spec:
                spec.eps_grid = list(spec.eps_grid)[:2]
            if spec.get("attack") == "autoattack" and not spec.get("attacks"):
                spec["attacks"] = list(SMOKE_AUTOATTACK)
    d = c.eval.diagnostics
    d.num_examples = min(int(d.num_examples), test_size)
    for k, cap in SMOKE_DIAGNOSTICS.items():
        d[k] = min(int(d[k]), cap)
    return c


def _cap_counts(spec, attack_spec: bool = True, caps: dict | None = None) -> dict:
    """Caps the loop counts of a spec at ``caps`` (default ``SMOKE_CAPS``); for an attack spec also the
    attack's defaults it leaves out (AutoAttack's 100 steps and 5000 queries, C&W's 1000 steps). Returns
    ``{field: [old, new]}`` for the fields it lowered."""
    import inspect

    from robustjax import attacks

    name = spec.get("attack") if attack_spec else None
    fn = attacks.ATTACKS.get(name) if isinstance(name, str) else None
    params = inspect.signature(fn).parameters if fn is not None else {}
    lowered = {}
    for k, cap in (SMOKE_CAPS if caps is None else caps).items():
        value = spec[k] if k in spec else getattr(params.get(k), "default", None)
        if isinstance(value, int) and not isinstance(value, bool):
            spec[k] = min(value, cap)
            if spec[k] < value:
                lowered[k] = [value, spec[k]]
    return lowered


EVAL_PRESETS = ("full", "quick")
# config.eval.preset="quick": the loop counts of every attack, curve and metric spec (and the diagnostics'
# own runs) are capped here. PGD-1000 runs 200 steps (enough to cross eps with the suites' steps), AutoAttack
# targets 3 classes and Square queries 1000 times, C&W runs 5 x 200. Unlike a smoke run, the data, the
# model, the example count and every attack stay; AutoAttack also attacks only what is left (chunk_size 32),
# which changes its random draws, not its strength.
QUICK_CAPS = {"num_steps": 200, "num_queries": 1000, "num_targets": 3, "binary_search_steps": 5}
QUICK_DIAGNOSTICS = {"many_steps": 200, "square_queries": 500}
QUICK_CHUNK = 32


def _check_preset(preset: Any) -> None:
    if preset not in EVAL_PRESETS:
        close = difflib.get_close_matches(str(preset), EVAL_PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail("eval.preset", f"{preset!r} is not one of {EVAL_PRESETS}{hint}")


def apply_eval_preset(eval_cfg: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, dict | None]:
    """``config.eval`` as the preset runs it, and the record of what it changed (``None`` for ``"full"``).

    ``robustjax.evaluate.evaluate`` applies it, so a caller of the suite gets it too. ``"quick"`` caps the
    loop counts (``QUICK_CAPS``, ``QUICK_DIAGNOSTICS``) and chunks AutoAttack; the record
    ``{"preset": "quick", "changed": {"attacks.aa_0p3.num_queries": [5000, 1000], ...}}`` goes into the
    results (``eval_preset``), results.json and the top of the report, which says the evaluation is weaker.
    The config itself is not changed (a copy is returned). The copy keeps the record (``preset_record``, as
    JSON), so applying the preset to it again changes nothing and returns the same record, not an empty one.

    Raises:
      ValueError: ``preset`` is not one of ``EVAL_PRESETS`` (a typo must not run a weaker evaluation).
    """
    preset = eval_cfg.get("preset", "full")
    _check_preset(preset)
    if preset == "full":
        return eval_cfg, None
    if eval_cfg.get("preset_record") is not None:   # this function's own copy: already capped
        return eval_cfg, json.loads(eval_cfg.preset_record)
    e = ml_collections.ConfigDict(eval_cfg.to_dict())
    changed = {}
    for group in ("attacks", "curves", "metrics"):
        for label, spec in e[group].items():
            where = f"{group}.{label}"
            targets = [(where, spec, group != "metrics")]
            if group == "metrics" and "attack" in spec and hasattr(spec["attack"], "keys"):
                targets.append((f"{where}.attack", spec["attack"], True))
            for path, s, is_attack in targets:
                for k, v in _cap_counts(s, attack_spec=is_attack, caps=QUICK_CAPS).items():
                    changed[f"{path}.{k}"] = v
                if is_attack and s.get("attack") == "autoattack" and s.get("chunk_size") is None:
                    s["chunk_size"] = QUICK_CHUNK
                    changed[f"{path}.chunk_size"] = [None, QUICK_CHUNK]
    d = e.diagnostics
    for k, cap in QUICK_DIAGNOSTICS.items():
        if int(d[k]) > cap:
            changed[f"diagnostics.{k}"] = [int(d[k]), cap]
            d[k] = cap
    record = {"preset": str(preset), "changed": changed}
    e.preset_record = json.dumps(record)
    return e, record


def _tag(eps: float) -> str:
    return f"{eps:g}".replace(".", "p")  # field names cannot hold dots (0.3 -> 0p3)


def _main_eps(c: ml_collections.ConfigDict, eps_list, strong_eps, norm: str) -> float:
    """``strong_eps``, else the defense's train-time eps (finite, > 0, and in this suite's ``norm``: an L2
    FGM-AT radius of 2.0 is no L-inf radius), else the largest of ``eps_list``."""
    if strong_eps is not None:
        return float(strong_eps)
    attack = c.defense.get("attack", None)
    eps = attack.get("eps", None) if hasattr(attack, "get") else None
    if hasattr(attack, "get") and attack.get("norm", "linf") != norm:
        eps = None
    if isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0.0 < eps < float("inf"):
        return float(eps)
    return float(max(eps_list))


def linf_suite(c: ml_collections.ConfigDict, eps_list, *, pgd_steps: int, step_size: float,
               curve_grid=None, num_examples: int = 1000, strong_eps: float | None = None,
               many_steps: int = 1000, autoattack: bool = True) -> ml_collections.ConfigDict:
    """Sets ``c.eval`` to a paper's L-inf evaluation plus the strong attacks that check it.

    - FGSM and PGD-``pgd_steps`` (step ``step_size``, random start) at each eps of ``eps_list``: the
      paper's protocol (labels ``fgsm_0p3``, ``pgd40_0p3``).
    - At the config's main eps (``strong_eps``; default: the defense's train-time eps, else the largest of
      ``eps_list``): PGD-``pgd_steps`` (added if that eps is not in ``eps_list``), PGD-``many_steps``
      (``pgd1000_0p3``; step ``min(step_size, eps / 4)``, random start) and AutoAttack, standard version
      (``aa_0p3``). The diagnostics (robustjax.evaluate.diagnostics) compare them: many-step PGD clearly
      stronger than few-step PGD, or AutoAttack far below PGD, is reported as a gradient-masking warning.
      ``autoattack=False`` leaves AutoAttack out; ``many_steps=0`` leaves PGD-many out.
    - A PGD-``pgd_steps`` curve over ``curve_grid`` with the step scaled to each radius:
      ``rel_step_size = max(step_size / strong_eps, 1 / pgd_steps)`` (the paper's step at the main eps,
      and never too small for the steps to reach the edge of the ball).

    ``shrink_for_smoke`` caps every loop count of these attacks for smoke variants.
    """
    c.eval.num_examples = num_examples
    main = _main_eps(c, eps_list, strong_eps, "linf")
    attacks = {}
    for eps in eps_list:
        attacks[f"fgsm_{_tag(eps)}"] = {"attack": "fgsm", "eps": float(eps)}
    for eps in list(eps_list) + ([] if main in [float(e) for e in eps_list] else [main]):
        attacks[f"pgd{pgd_steps}_{_tag(eps)}"] = {"attack": "pgd", "eps": float(eps), "step_size": step_size,
                                                  "num_steps": pgd_steps, "random_start": True}
    if many_steps and many_steps != pgd_steps:
        attacks[f"pgd{many_steps}_{_tag(main)}"] = {"attack": "pgd", "eps": main,
                                                    "step_size": min(float(step_size), main / 4),
                                                    "num_steps": int(many_steps), "random_start": True}
    if autoattack:
        attacks[f"aa_{_tag(main)}"] = {"attack": "autoattack", "eps": main, "norm": "linf", "version": "standard"}
    c.eval.attacks = attacks
    if curve_grid:
        rel = max(float(step_size) / main, 1.0 / pgd_steps)
        c.eval.curves = {f"pgd{pgd_steps}": {"attack": "pgd", "eps_grid": [float(e) for e in curve_grid],
                                             "rel_step_size": rel, "num_steps": pgd_steps,
                                             "random_start": True}}
    return c


def l2_suite(c: ml_collections.ConfigDict, eps_list, *, pgd_steps: int, rel_step_size: float = 0.25,
             curve_grid=None, num_examples: int = 1000, strong_eps: float | None = None,
             many_steps: int = 1000, autoattack: bool = True, minimal: bool = True, minimal_steps: int = 100,
             radii=()) -> ml_collections.ConfigDict:
    """Sets ``c.eval`` to an L2 evaluation (the PGN paper's kind): ``linf_suite``'s L2 counterpart.

    - FGM (L2) and PGD-``pgd_steps`` (L2, step ``rel_step_size * eps``, random start) at each eps of
      ``eps_list`` (labels ``fgm_0p5``, ``pgd20_l2_0p5``).
    - At the main eps (``strong_eps``; default: the defense's train-time eps, else the largest of
      ``eps_list``): PGD-``many_steps`` (``pgd1000_l2_0p5``) and AutoAttack L2, standard version
      (``aa_l2_0p5``).
    - With ``minimal``: DeepFool (L2) and C&W-L2, ``minimal_steps`` iterations each (PGN's Table 1 runs
      100), which report the mean (PGN's rho, Eq. 6; rho_cw for C&W) and median L2 of their successful
      perturbations, and accuracy at each of ``radii`` (L2).
    - A PGD-``pgd_steps`` L2 curve over ``curve_grid`` with ``rel_step_size``.
    """
    c.eval.num_examples = num_examples
    main = _main_eps(c, eps_list, strong_eps, "l2")
    pgd = {"attack": "pgd", "norm": "l2", "rel_step_size": float(rel_step_size), "random_start": True}
    attacks = {}
    for eps in eps_list:
        attacks[f"fgm_{_tag(eps)}"] = {"attack": "fgm", "eps": float(eps), "norm": "l2"}
    for eps in list(eps_list) + ([] if main in [float(e) for e in eps_list] else [main]):
        attacks[f"pgd{pgd_steps}_l2_{_tag(eps)}"] = {**pgd, "eps": float(eps), "num_steps": pgd_steps}
    if many_steps and many_steps != pgd_steps:
        attacks[f"pgd{many_steps}_l2_{_tag(main)}"] = {**pgd, "eps": main, "num_steps": int(many_steps)}
    if autoattack:
        attacks[f"aa_l2_{_tag(main)}"] = {"attack": "autoattack", "eps": main, "norm": "l2", "version": "standard"}
    if minimal:
        extra = {"radii": [float(r) for r in radii]} if radii else {}
        attacks["deepfool"] = {"attack": "deepfool", "norm": "l2", "num_steps": int(minimal_steps), **extra}
        attacks["cw_l2"] = {"attack": "cw_l2", "num_steps": int(minimal_steps), **extra}
    c.eval.attacks = attacks
    if curve_grid:
        c.eval.curves = {f"pgd{pgd_steps}_l2": {**pgd, "eps_grid": [float(e) for e in curve_grid],
                                                "num_steps": pgd_steps}}
    return c


def add_metrics(c: ml_collections.ConfigDict, *names: str, **with_fields) -> ml_collections.ConfigDict:
    """Adds metrics to ``c.eval.metrics`` under their own names, with their defaults or given fields.

        add_metrics(c, "empirical_robustness", "train_distance", "loss_sensitivity")   # GDA's Tables 2-3
        add_metrics(c, rho_adv={"norm": "l2", "num_examples": 200})                     # BCGAN's Table 2

    The metrics, their fields and formulas: ``robustjax.evaluate.specs.METRIC_FIELDS`` and
    ``robustjax.evaluate.metrics``.
    """
    for name in names:
        c.eval.metrics[name] = {"metric": name}
    for name, given in with_fields.items():
        c.eval.metrics[name] = {"metric": name, **dict(given)}
    return c


# Zantedeschi et al.'s attack settings (Sec. 4.1), shared by configs/gda_brelu_{mnist,cifar10}.py.
ZANTEDESCHI_ALPHA = 0.05  # Random + FGSM's Gaussian first step ("within a range of alpha = 0.05")


def zantedeschi_attacks(c: ml_collections.ConfigDict, eps_list, *, curve_grid, jsma: bool = True,
                        transfer_source: str = "standard", transfer_eps: float = 0.1,
                        transfer_steps: int = 2000) -> ml_collections.ConfigDict:
    """Adds Zantedeschi, Nicolae and Rawat's evaluation ("Efficient Defenses Against Adversarial Attacks",
    2017, Sec. 4) to ``c.eval``, beside what ``linf_suite`` put there (FGSM, PGD, PGD-1000, AutoAttack).

    - Random + FGSM both ways at each eps of ``eps_list``: the paper's (``rfgsm_gauss_0p3``: a clipped
      Gaussian first step of ``alpha = 0.05`` deducted from the budget, ``random_init="gaussian"``) and
      Tramer et al.'s (``rfgsm_sign_0p3``: a sign step of eps / 2).
    - DeepFool (L2) with "a maximum of 100 iterations" (``deepfool100``; overshoot 0.02, the authors'
      default, which the paper does not restate).
    - C&W L2 "with the default parameters from the authors' code and a confidence level of 2.3"
      (``cw_l2_k2p3``): Carlini's l2_attack.py defaults are 9 binary-search steps, learning rate 1e-2,
      initial constant 1e-3, abort early, and 10,000 iterations; 1,000 here (the library's default; on
      CPU 10,000 x 9 per batch is hours), untargeted (the paper scores accuracy).
    - With ``jsma``: JSMA with "gamma = 1, theta = 0.1". In this library's naming (as in ART, the
      authors' library, and the toy study's "feature adjustment theta = 0.1") theta is the change of a
      feature and gamma the largest fraction of features changed; untargeted with a random target. The
      variant of ART 0.x's ``SaliencyMapMethod``, which the authors' numbers come from: the two features with
      the largest gradient of the target's probability, and a feature may be pushed again until it reaches
      the box (``saliency="target_probability"``, ``reuse_features=True``; the pair search of Papernot et
      al. with each feature changed once reached 6% of an undefended CNN's images at theta 0.1). One
      gradient per iteration, no ``n x n`` pair search; an example stops at its first misclassification.
    - Curves over ``curve_grid`` (the paper: eps "ranging from 0.01 to 1", Figs. 3-5): FGSM and the
      paper's Random + FGSM (where eps <= alpha its examples are Gaussian noise of size eps, as Fig. 5 says).
    - Metrics (Tables 2-3): ``empirical_robustness`` (incremental FGSM to the minimal flipping
      perturbation), ``train_distance`` (of those examples to the training set), ``loss_sensitivity``.
    - Black-box transfers (Tables 4-5: "crafted using the ResNet model, without any defense", FGSM at
      ``transfer_eps`` = 0.1): FGSM, Random + FGSM, DeepFool, C&W and (``jsma``) JSMA crafted on
      ``transfer_source``: a finished run's directory (the faithful choice: the undefended
      ``zantedeschi_resnet`` run of the same config), or ``"standard"``: a ResNet trained here for
      ``transfer_steps`` Adam steps, once per transfer metric. The paper gives no eps for its Random + FGSM
      column; ``transfer_eps`` is used.
    """
    attacks = c.eval.attacks
    for eps in eps_list:
        attacks[f"rfgsm_gauss_{_tag(eps)}"] = {"attack": "rand_fgsm", "eps": float(eps),
                                               "alpha": ZANTEDESCHI_ALPHA, "random_init": "gaussian"}
        attacks[f"rfgsm_sign_{_tag(eps)}"] = {"attack": "rand_fgsm", "eps": float(eps), "random_init": "sign"}
    deepfool = {"attack": "deepfool", "norm": "l2", "num_steps": 100}
    cw = {"attack": "cw_l2", "confidence": 2.3, "initial_const": 1e-3, "binary_search_steps": 9,
          "num_steps": 1000, "learning_rate": 1e-2, "abort_early": True}
    jsma_spec = {"attack": "jsma", "theta": 0.1, "gamma": 1.0, "target": "random", "saliency": "target_probability",
                 "reuse_features": True}
    attacks["deepfool100"] = dict(deepfool)
    attacks["cw_l2_k2p3"] = dict(cw)
    if jsma:
        attacks["jsma"] = dict(jsma_spec)
    grid = [float(e) for e in curve_grid]
    c.eval.curves["fgsm"] = {"attack": "fgsm", "eps_grid": grid}
    c.eval.curves["rfgsm_gauss"] = {"attack": "rand_fgsm", "alpha": ZANTEDESCHI_ALPHA, "random_init": "gaussian",
                                    "eps_grid": grid}
    add_metrics(c, "empirical_robustness", "train_distance", "loss_sensitivity")
    crafted = {
        f"fgsm_{_tag(transfer_eps)}": {"attack": "fgsm", "eps": float(transfer_eps)},
        f"rfgsm_gauss_{_tag(transfer_eps)}": {"attack": "rand_fgsm", "eps": float(transfer_eps),
                                              "alpha": ZANTEDESCHI_ALPHA, "random_init": "gaussian"},
        "deepfool100": deepfool, "cw_l2_k2p3": cw, **({"jsma": jsma_spec} if jsma else {}),
    }
    for label, spec in crafted.items():
        entry = {"metric": "transfer", "source": transfer_source, "attack": dict(spec)}
        if transfer_source == "standard":
            entry.update(model={"name": "zantedeschi_resnet"}, steps=int(transfer_steps))
        c.eval.metrics[f"transfer_{label}"] = entry
    return c
