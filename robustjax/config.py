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
import math
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
        num_pictures=8,
        # The report's figures (robustjax.evaluate.figures: what each shows, the defaults, the checks).
        figures=["curves", "examples", "training", "saliency", "decision_plane", "samples"],
        saliency=ml_collections.ConfigDict(dict(num_images=4, attack="", eps=[])),
        decision_plane=ml_collections.ConfigDict(dict(
            num_images=2, sigma=0.05, m=32, scale=0.0, resolution=41, direction="random")),
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
    from robustjax.evaluate import figures as eval_figures

    eval_figures.check_config(e)  # config.eval.figures, .saliency, .decision_plane

    # The open sections belong to their owners, who check them: the model's fields, the defense's
    # fields (and which networks config.train.optimizers may name), every evaluation attack spec.
    from robustjax import defenses, models
    from robustjax.evaluate import specs as eval_specs

    models.check_config(config.model)
    defenses.read_config(config)
    eval_specs.resolve(e)


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


def shrink_for_smoke(c: ml_collections.ConfigDict, *, train_size: int = 128, test_size: int = 32,
                     batch_size: int = 32, steps: int = 4) -> ml_collections.ConfigDict:
    """The ``smoke`` variant: a few steps on a few examples with a narrow model (for tests and CI).

    A dataset that would come from tfds or a file is replaced by synthetic stand-in data of the same
    shape and classes (``robustjax.data.synthetic``), so every smoke variant runs offline in seconds;
    ``config.smoke`` marks the run, and its report says that its numbers mean nothing. Tests that want
    the tfds path itself set ``config.data.source = "tfds"`` back (under ``tfds.testing.mock_data``).
    """
    from robustjax.data import synthetic

    c.smoke = True
    if c.data.source in ("tfds", "npz") and c.data.name in synthetic.SHAPES:
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
    for group in (c.eval.attacks, c.eval.curves):
        for spec in group.values():
            for k in ("num_steps",):
                if k in spec:
                    spec[k] = min(int(spec[k]), 3)
            if "eps_grid" in spec:
                spec.eps_grid = list(spec.eps_grid)[:2]
    return c


def linf_suite(c: ml_collections.ConfigDict, eps_list, *, pgd_steps: int, step_size: float,
               curve_grid=None, num_examples: int = 1000) -> ml_collections.ConfigDict:
    """Sets ``c.eval`` to FGSM + PGD-``pgd_steps`` at each eps, and a PGD curve over ``curve_grid``."""
    c.eval.num_examples = num_examples
    attacks = {}
    for eps in eps_list:
        tag = f"{eps:g}".replace(".", "p")  # field names cannot hold dots (0.3 -> 0p3)
        attacks[f"fgsm_{tag}"] = {"attack": "fgsm", "eps": float(eps)}
        attacks[f"pgd{pgd_steps}_{tag}"] = {"attack": "pgd", "eps": float(eps), "step_size": step_size,
                                             "num_steps": pgd_steps, "random_start": True}
    c.eval.attacks = attacks
    if curve_grid:
        c.eval.curves = {f"pgd{pgd_steps}": {"attack": "pgd", "eps_grid": [float(e) for e in curve_grid],
                                             "step_size": step_size, "num_steps": pgd_steps,
                                             "random_start": True}}
    return c
