"""The attack suite from config: clean accuracy, robust accuracy per attack, curves over eps.

    results = suite.evaluate(logits_fn_of, state, test_ds, config.eval, key, bounds=info.bounds)
    results["attacks"]["pgd40"]["robust_accuracy"]

``logits_fn_of(state) -> logits_fn`` is ``defense.classifier``: the attacker sees the whole defended
model end to end (for ATGAN, D_c(G(x))). Each attack is compiled once per spec, with the state and eps
passed as arguments, so an eps grid reuses one compiled function.

Definitions (so numbers mean one thing everywhere):
- ``robust_accuracy``: the fraction of examples that are classified correctly clean AND after the attack.
- ``worst_case``: for every (norm, eps) reached by more than one budget attack, the fraction that survives
  all of them (per-example minimum): the number to quote.
- Budget attacks are checked after the fact: a perturbation outside eps (or outside the box) is reported
  as ``budget_violations`` (and should be zero; a test pins that).
- Minimal-norm attacks (DeepFool, C&W, FAB without eps, JSMA) report the success rate and the median
  L2 / L-inf norm of their successful perturbations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import attacks as attacks_lib
from robustjax import data as data_lib
from robustjax import xla
from robustjax.attacks.spec import BUDGET_ATTACKS, MINIMAL_ATTACKS  # noqa: F401  (re-exported)

# Attack names the config may use, and the name -> function table: owned by robustjax.attacks.spec.
# Keys of a spec that are the suite's, not the attack's (stripped before resolving).
_SUITE_KEYS = ("eps_grid",)


def get_attack(name: str) -> Callable:
    """The attack function called ``name`` in robustjax.attacks (alias of ``attacks.get_attack``)."""
    return attacks_lib.get_attack(name)


def _plain(spec: Any) -> dict:
    return spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)


def _norm_of(spec: Mapping) -> str:
    return str(spec.get("norm", "linf"))


def _perturbation_norms(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = (x_adv - x).reshape(x.shape[0], -1)
    return np.abs(d).max(axis=1), np.sqrt((d * d).sum(axis=1))


@dataclasses.dataclass
class _Compiled:
    name: str
    fn: Callable  # (state, x, y, key, eps) -> x_adv


def _compile_attack(logits_fn_of, spec: Mapping, bounds, where: str, require_eps: bool = True) -> _Compiled:
    atk = attacks_lib.resolve({k: v for k, v in spec.items() if k not in _SUITE_KEYS}, where,
                              require_eps=require_eps)
    bounds = tuple(bounds)

    def run(state, x, y, key, eps):
        if atk.budget:
            return atk(logits_fn_of(state), x, y, key, eps=eps, bounds=bounds)
        return atk(logits_fn_of(state), x, y, key, bounds=bounds)

    return _Compiled(atk.name, xla.jit(run))


def _predict_fn(logits_fn_of):
    return xla.jit(lambda state, x: jnp.argmax(logits_fn_of(state)(x), axis=-1))


def evaluate(
    logits_fn_of: Callable,
    state: Any,
    test_ds: data_lib.ArrayDataset,
    eval_cfg: Any,
    key: jax.Array,
    *,
    bounds=(0.0, 1.0),
    keep_examples: int = 8,
) -> dict:
    """Runs clean accuracy, every attack in ``eval_cfg.attacks`` and every curve in ``eval_cfg.curves``.

    Returns a JSON-serialisable dict (plus ``"_pictures"``: numpy arrays of a few clean/adversarial
    examples for the report, removed before saving).
    """
    n = len(test_ds) if not eval_cfg.num_examples else min(int(eval_cfg.num_examples), len(test_ds))
    ds = data_lib.ArrayDataset(test_ds.images[:n], test_ds.labels[:n])
    batch_size = min(int(eval_cfg.batch_size), n)
    predict = _predict_fn(logits_fn_of)

    clean_correct = []
    for batch in data_lib.eval_batches(ds, batch_size):
        pred = np.asarray(predict(state, batch["image"]))
        clean_correct.append((pred == np.asarray(batch["label"]))[np.asarray(batch["mask"])])
    clean_correct = np.concatenate(clean_correct)
    results: dict = {"num_examples": n, "clean_accuracy": float(clean_correct.mean()), "attacks": {},
                     "curves": {}}
    pictures: dict = {}

    def run_attack(label: str, compiled: _Compiled, spec: Mapping, eps: float, attack_index: int):
        correct, linf, l2, violations = [], [], [], 0
        for b, batch in enumerate(data_lib.eval_batches(ds, batch_size)):
            k = jax.random.fold_in(jax.random.fold_in(key, attack_index), b)
            x, y, mask = batch["image"], batch["label"], np.asarray(batch["mask"])
            x_adv = np.asarray(compiled.fn(state, x, y, k, jnp.float32(eps)))
            pred = np.asarray(predict(state, x_adv))
            correct.append((pred == np.asarray(y))[mask])
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
        if compiled.name in BUDGET_ATTACKS or "eps" in spec:
            norm = _norm_of(spec)
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
    for i, (label, spec) in enumerate(sorted(eval_cfg.attacks.items())):
        spec = _plain(spec)
        compiled = _compile_attack(logits_fn_of, spec, bounds, f"config.eval.attacks.{label}")
        eps = float(spec.get("eps", 0.0))
        out, survive = run_attack(label, compiled, spec, eps, i)
        results["attacks"][label] = out
        if "eps" in out:
            survivors.setdefault((out["norm"], out["eps"]), []).append(survive)
        print(f"[robustjax] {label}: robust accuracy {out['robust_accuracy']:.4f}", flush=True)

    results["worst_case"] = {
        f"{norm}@{eps:g}": float(np.logical_and.reduce(s).mean())
        for (norm, eps), s in sorted(survivors.items()) if len(s) > 1
    }

    for j, (label, spec) in enumerate(sorted(eval_cfg.curves.items())):
        spec = _plain(spec)
        compiled = _compile_attack(logits_fn_of, spec, bounds, f"config.eval.curves.{label}", require_eps=False)
        points = []
        for eps in spec["eps_grid"]:
            out, _ = run_attack(f"curve:{label}", compiled, spec, float(eps), 1000 + j)
            points.append({"eps": float(eps), "robust_accuracy": out["robust_accuracy"],
                           "budget_violations": out["budget_violations"]})
        results["curves"][label] = {"attack": spec["attack"], "norm": _norm_of(spec), "points": points}

    results["_pictures"] = pictures
    return results
