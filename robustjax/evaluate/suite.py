"""The attack suite from config: clean accuracy, robust accuracy per attack, curves over eps.

    results = suite.evaluate(defense, state, test_ds, config.eval, key, bounds=info.bounds)
    results["attacks"]["pgd40"]["robust_accuracy"]

``defense`` is a :class:`robustjax.defenses.Defense` (or just ``state -> logits_fn``). Predictions are
scored on ``defense.classifier`` (the deployed model, end to end: for ATGAN D_c(G(x))); gradient attacks
differentiate ``defense.attack_model`` (BPDA through a surrogate when the defense has one, unless the
spec says ``"adaptive": False``). Each attack is compiled once per spec, with the state and eps passed as
arguments, so an eps grid reuses one compiled function. Specs are resolved by
:mod:`robustjax.evaluate.specs` (the same check ``config.validate`` runs before training).

Definitions (so numbers mean one thing everywhere):
- ``robust_accuracy``: the fraction of examples that are classified correctly clean AND after the attack.
- ``accuracy_on_adversarial``: the fraction classified correctly after the attack (what ATGAN, GanDef and
  PGN report; it counts examples the model already got wrong clean if the attack happens to fix them).
- ``worst_case``: for every (norm, eps) reached by more than one budget attack, the fraction that survives
  all of them (per-example minimum): the number to quote.
- ``seconds``: the wall time of each attack and each curve (compilation included).
- Budget attacks are checked after the fact: a perturbation outside eps (or outside the box) is reported
  as ``budget_violations`` (and should be zero; a test pins that).
- Minimal-norm attacks (DeepFool, C&W, FAB without eps, JSMA) report the success rate and the median
  L2 / L-inf norm of their successful perturbations.
- A randomised classifier (``defense.stochastic``) is evaluated with a fresh key per batch. Attacks that
  average gradients over draws (``"stochastic": True`` in an apgd / autoattack spec) get ``(x, key) ->
  logits``; every other attack attacks one draw per batch.
- A defense with a detector (``defense.detector``; GanDef-Comb) adds, under its scoring rule (a flagged
  adversarial input counts as handled, a flagged clean input as an error): ``detector.flagged_clean`` and
  ``detector.clean_accuracy_with_detector``; per attack ``flagged_adversarial`` and
  ``accuracy_with_detector`` (adversarial inputs flagged or still classified correctly). ``"against_detector":
  True`` in a spec attacks classifier and detector together (``Detector.combined_logits``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import attacks as attacks_lib
from robustjax import data as data_lib
from robustjax import xla
from robustjax.attacks.spec import BUDGET_ATTACKS, MINIMAL_ATTACKS  # noqa: F401  (re-exported)
from robustjax.evaluate import specs as specs_lib

# Attacks that can average gradients over the draws of a randomised model (spec "stochastic": True).
_EOT_ATTACKS = ("apgd", "autoattack")


def get_attack(name: str) -> Callable:
    """The attack function called ``name`` in robustjax.attacks (alias of ``attacks.get_attack``)."""
    return attacks_lib.get_attack(name)


def _perturbation_norms(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = (x_adv - x).reshape(x.shape[0], -1)
    return np.abs(d).max(axis=1), np.sqrt((d * d).sum(axis=1))


@dataclasses.dataclass(frozen=True)
class Target:
    """What the evaluation needs of a defense: the deployed classifier, what attacks differentiate, its
    randomness and its detector. ``Target.of(defense)`` also accepts a bare ``state -> logits_fn``."""

    classifier: Callable
    surrogate: Callable | None = None
    stochastic: bool = False
    detector: Any = None

    @staticmethod
    def of(model) -> "Target":
        if isinstance(model, Target):
            return model
        if hasattr(model, "classifier") and hasattr(model, "phases"):
            return Target(model.classifier, model.surrogate, model.stochastic, model.detector)
        return Target(model)

    def logits(self, state, x, key):
        f = self.classifier(state)
        return f(x, key) if self.stochastic else f(x)

    def attack_logits_fn(self, state, key, *, adaptive: bool, two_args: bool):
        """The function an attack differentiates: ``x -> logits`` (one draw of a randomised model, from
        ``key``), or ``(x, key) -> logits`` when ``two_args`` (attacks that average over draws)."""
        f = self.classifier(state)
        if adaptive and self.surrogate is not None:
            from robustjax.defenses.base import bpda

            f = bpda(f, self.surrogate(state))
        if self.stochastic:
            return f if two_args else (lambda x: f(x, key))
        return (lambda x, k: f(x)) if two_args else f


@dataclasses.dataclass
class _Compiled:
    attack: attacks_lib.Attack
    fn: Callable  # (state, x, y, key, eps) -> x_adv

    @property
    def name(self) -> str:
        return self.attack.name


def _compile_attack(target: Target, atk: attacks_lib.Attack, options: dict, bounds) -> _Compiled:
    bounds = tuple(bounds)
    adaptive = bool(options.get("adaptive", True))
    against_detector = bool(options.get("against_detector", False))
    two_args = atk.name in _EOT_ATTACKS and bool(atk.kwargs.get("stochastic", False))
    if against_detector and target.detector is None:
        raise ValueError(f"{atk.where}.against_detector: the defense has no detector")
    if against_detector and two_args:
        raise ValueError(f"{atk.where}.against_detector: not supported together with stochastic=True")

    def run(state, x, y, key, eps):
        k_draw, k_attack = jax.random.split(key)
        logits_fn = target.attack_logits_fn(state, k_draw, adaptive=adaptive, two_args=two_args)
        if against_detector:
            logits_fn = target.detector.combined_logits(state, logits_fn, y)
        if atk.budget:
            return atk(logits_fn, x, y, k_attack, eps=eps, bounds=bounds)
        return atk(logits_fn, x, y, k_attack, bounds=bounds)

    return _Compiled(atk, xla.jit(run))


def _predict_fn(target: Target):
    return xla.jit(lambda state, x, key: jnp.argmax(target.logits(state, x, key), axis=-1))


def _flag_fn(target: Target):
    return xla.jit(lambda state, x: target.detector.flags(state, x))


def evaluate(
    model: Any,
    state: Any,
    test_ds: data_lib.ArrayDataset,
    eval_cfg: Any,
    key: jax.Array,
    *,
    bounds=(0.0, 1.0),
    keep_examples: int = 8,
) -> dict:
    """Runs clean accuracy, every attack in ``eval_cfg.attacks`` and every curve in ``eval_cfg.curves``.

    Args:
      model: a ``Defense`` (classifier, surrogate, randomness, detector) or a function ``state -> logits_fn``.
      state: the trained state ``model`` reads.
      test_ds: the test split; the first ``eval_cfg.num_examples`` examples are evaluated (0 = all).
      eval_cfg: ``config.eval``.
      key: the evaluation key (same key, same numbers).
      bounds: the dataset's pixel range.
      keep_examples: how many clean/adversarial pairs per attack to keep for the report's pictures.

    Returns a JSON-serialisable dict (plus ``"_pictures"``: numpy arrays of a few clean/adversarial
    examples for the report, removed before saving).
    """
    target = Target.of(model)
    attack_specs, curve_specs = specs_lib.resolve(eval_cfg)
    n = len(test_ds) if not eval_cfg.num_examples else min(int(eval_cfg.num_examples), len(test_ds))
    ds = data_lib.ArrayDataset(test_ds.images[:n], test_ds.labels[:n])
    batch_size = min(int(eval_cfg.batch_size), n)
    predict = _predict_fn(target)
    flag = _flag_fn(target) if target.detector is not None else None
    clean_key, key = jax.random.split(key)

    clean_correct, clean_flags = [], []
    for b, batch in enumerate(data_lib.eval_batches(ds, batch_size)):
        mask = np.asarray(batch["mask"])
        pred = np.asarray(predict(state, batch["image"], jax.random.fold_in(clean_key, b)))
        clean_correct.append((pred == np.asarray(batch["label"]))[mask])
        if flag is not None:
            clean_flags.append(np.asarray(flag(state, batch["image"]))[mask])
    clean_correct = np.concatenate(clean_correct)
    results: dict = {"num_examples": n, "clean_accuracy": float(clean_correct.mean()), "attacks": {},
                     "curves": {}}
    if flag is not None:
        clean_flags = np.concatenate(clean_flags)
        results["detector"] = {
            "threshold": float(target.detector.threshold),
            "flagged_clean": float(clean_flags.mean()),
            "clean_accuracy_with_detector": float((clean_correct & ~clean_flags).mean()),
        }
    if target.stochastic:
        results["stochastic"] = True
    pictures: dict = {}

    def run_attack(label: str, compiled: _Compiled, eps: float, attack_index: int):
        correct, flags, linf, l2, violations = [], [], [], [], 0
        for b, batch in enumerate(data_lib.eval_batches(ds, batch_size)):
            k = jax.random.fold_in(jax.random.fold_in(key, attack_index), b)
            k_attack, k_pred = jax.random.split(k)
            x, y, mask = batch["image"], batch["label"], np.asarray(batch["mask"])
            x_adv = np.asarray(compiled.fn(state, x, y, k_attack, jnp.float32(eps)))
            pred = np.asarray(predict(state, x_adv, k_pred))
            correct.append((pred == np.asarray(y))[mask])
            if flag is not None:
                flags.append(np.asarray(flag(state, x_adv))[mask])
            li, l2_ = _perturbation_norms(np.asarray(x), x_adv)
            linf.append(li[mask])
            l2.append(l2_[mask])
            lo, hi = bounds
            outside_box = (x_adv < lo - 1e-6) | (x_adv > hi + 1e-6)
            violations += int(outside_box.reshape(len(x_adv), -1).any(axis=1)[mask].sum())
            if b == 0 and label not in pictures and not label.startswith("curve:"):
                pictures[label] = (np.asarray(x)[:keep_examples], x_adv[:keep_examples],
                                   np.asarray(y)[:keep_examples], pred[:keep_examples])
        adv_correct = np.concatenate(correct)
        linf, l2 = np.concatenate(linf), np.concatenate(l2)
        survive = clean_correct & adv_correct
        out = {"attack": compiled.name, "robust_accuracy": float(survive.mean()),
               "accuracy_on_adversarial": float(adv_correct.mean())}
        if flag is not None:
            adv_flags = np.concatenate(flags)
            out.update(flagged_adversarial=float(adv_flags.mean()),
                       accuracy_with_detector=float((adv_flags | adv_correct).mean()))
        if compiled.attack.budget:
            norm = compiled.attack.norm
            size = linf if norm == "linf" else l2
            if math.isfinite(eps):
                violations += int((size > eps * (1 + 1e-4) + 1e-6).sum())
            out.update(eps=float(eps), norm=norm, budget_violations=violations)
        else:
            success = clean_correct & ~adv_correct
            out.update(
                success_rate=float(success.sum() / max(1, clean_correct.sum())),
                median_l2=float(np.median(l2[success])) if success.any() else None,
                median_linf=float(np.median(linf[success])) if success.any() else None,
                budget_violations=violations,
            )
        return out, survive

    survivors: dict[tuple[str, float], list[np.ndarray]] = {}
    for i, (label, (atk, options)) in enumerate(attack_specs.items()):
        compiled = _compile_attack(target, atk, options, bounds)
        eps = float(atk.eps) if atk.budget else 0.0
        t0 = time.perf_counter()
        out, survive = run_attack(label, compiled, eps, i)
        out["seconds"] = round(time.perf_counter() - t0, 3)  # wall time, compilation included
        if not options.get("adaptive", True) and target.surrogate is not None:
            out["adaptive"] = False
        results["attacks"][label] = out
        if "eps" in out:
            survivors.setdefault((out["norm"], out["eps"]), []).append(survive)
        print(f"[robustjax] {label}: robust accuracy {out['robust_accuracy']:.4f}", flush=True)

    results["worst_case"] = {
        f"{norm}@{eps:g}": float(np.logical_and.reduce(s).mean())
        for (norm, eps), s in sorted(survivors.items()) if len(s) > 1
    }

    for j, (label, (atk, options, grid)) in enumerate(curve_specs.items()):
        compiled = _compile_attack(target, atk, options, bounds)
        points = []
        t0 = time.perf_counter()
        for eps in grid:
            out, _ = run_attack(f"curve:{label}", compiled, float(eps), 1000 + j)
            points.append({"eps": float(eps), "robust_accuracy": out["robust_accuracy"],
                           "accuracy_on_adversarial": out["accuracy_on_adversarial"],
                           "budget_violations": out["budget_violations"]})
        results["curves"][label] = {"attack": atk.name, "norm": atk.norm, "points": points,
                                    "seconds": round(time.perf_counter() - t0, 3)}

    results["_pictures"] = pictures
    return results
