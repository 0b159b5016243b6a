"""The attack suite from config: clean accuracy, robust accuracy per attack, curves, metrics, diagnostics.

    results = suite.evaluate(defense, state, test_ds, config.eval, key, bounds=info.bounds, train_ds=train_ds)
    results["attacks"]["pgd40"]["robust_accuracy"]

``defense`` is a :class:`robustjax.defenses.Defense` (or just ``state -> logits_fn``). Predictions are
scored on ``defense.classifier`` (the deployed model, end to end: for ATGAN D_c(G(x))); gradient attacks
differentiate ``defense.attack_model`` (BPDA through a surrogate when the defense has one, unless the
spec says ``"adaptive": False``). Each attack is compiled once per spec, with the state and eps passed as
arguments, so an eps grid (and every spec that differs only in eps) reuses one compiled function.
``config.eval`` is resolved by
:mod:`robustjax.evaluate.specs` (the same check ``config.validate`` runs before training). The same key
gives the same numbers. A progress bar over the attacked batches is shown on a terminal
(``config.eval.progress``).

Definitions (so numbers mean one thing everywhere):
- ``robust_accuracy``: the fraction of examples that are classified correctly clean AND after the attack.
- ``accuracy_on_adversarial``: the fraction classified correctly after the attack (what ATGAN, GanDef and
  PGN report; it counts examples the model already got wrong clean if the attack happens to fix them).
  Every attack and every curve point reports both.
- ``worst_case``: for every (norm, eps) reached by more than one budget attack, the fraction that survives
  all of them (per-example minimum): the number to quote.
- ``seconds``: the wall time of each attack and each curve (compilation included).
- Budget attacks are checked after the fact: a perturbation outside eps (or outside the box) is reported
  as ``budget_violations`` (and should be zero; a test pins that).
- Minimal-norm attacks (DeepFool, C&W, FAB without eps, JSMA) report the success rate (successful =
  correct clean, wrong after the attack), ``mean_l2`` / ``median_l2`` and ``mean_linf`` / ``median_linf``
  of their successful perturbations. ``mean_l2`` is the PGN paper's rho ("Adversarial Training with
  Perturbation Generator Networks", Eq. 6: the mean L2 norm over the successful adversarial examples;
  rho_cw for C&W). With ``radii`` in the spec, ``at_radius`` lists
  for each radius r (in the attack's norm) ``robust_accuracy`` (correct clean and not fooled by a
  perturbation of norm <= r) and ``accuracy_on_adversarial`` (the prediction on the adversarial example
  where its perturbation is within r, on the clean input otherwise): the way to compare minimal-norm
  attacks at a radius instead of by success rate.
- A randomised classifier (``defense.stochastic``) is evaluated with a fresh key per batch. Attacks that
  average gradients over draws (``"stochastic": True`` in an apgd / autoattack spec) get ``(x, key) ->
  logits``; every other attack attacks one draw per batch.
- A defense with a detector (``defense.detector``; GanDef-Comb) adds, under its scoring rule (a flagged
  adversarial input counts as handled, a flagged clean input as an error, an unflagged input is judged by
  the classifier): ``detector.flagged_clean`` and ``detector.clean_accuracy_with_detector``; per attack
  ``flagged_adversarial`` and ``accuracy_with_detector`` (adversarial inputs flagged or still classified
  correctly); ``detector.threshold_sweep`` and ``detector.ratio_curves`` (GanDef's Fig. 4; keys in
  :mod:`robustjax.evaluate.metrics`). ``"against_detector": True`` in a spec attacks classifier and
  detector together (``Detector.combined_logits``).
- ``metrics`` (``config.eval.metrics``): :mod:`robustjax.evaluate.metrics`; ``diagnostics``
  (``config.eval.diagnostics``): :mod:`robustjax.evaluate.diagnostics`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
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

# Key streams: attack i folds i, curve j folds CURVE_KEYS + j, metric k METRIC_KEYS + k, the diagnostics
# DIAGNOSTIC_KEYS + their index: no two computations share a key.
CURVE_KEYS, METRIC_KEYS, DIAGNOSTIC_KEYS = 1000, 2000, 3000


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


def _score_fn(target: Target):
    return xla.jit(lambda state, x: target.detector.score(state)(x))


@dataclasses.dataclass
class AttackRun:
    """Per-example outcome of one attack on the first ``n`` evaluated examples (numpy arrays ``[n]``)."""

    adv_correct: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    scores: np.ndarray | None   # detector scores of the adversarial inputs
    violations: int             # examples outside the box (budget violations are added by the caller)
    x_adv: np.ndarray | None    # kept only when asked for


class _Progress:
    """A tqdm bar over attacked batches, only on a terminal and only when ``config.eval.progress``."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled and total > 0 and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="evaluate", unit="batch", dynamic_ncols=True, leave=False)

    def stage(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            if self.bar.n + n > self.bar.total:  # metrics and diagnostics attack batches of their own
                self.bar.total = self.bar.n + n
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Session:
    """One evaluation: the model, the evaluated examples, their clean results and the per-example
    outcome of every suite attack. Metrics and diagnostics run their own attacks through it (same
    batching, key streams and bounds).

    Attributes:
      target, state, bounds, key: the model, its state, the pixel range and the evaluation key.
      ds: the evaluated examples (the first ``config.eval.num_examples`` of the test set).
      batch_size: evaluation batch size.
      clean_correct, clean_pred: ``[n]`` numpy arrays.
      clean_scores: ``[n]`` detector scores of the clean inputs (None without a detector).
      runs: ``{label: AttackRun}`` of the suite's attacks; ``specs``: ``{label: (Attack, options)}``.
      train_ds: the training set (None when the caller did not pass it).
    """

    def __init__(self, target: Target, state, ds: data_lib.ArrayDataset, batch_size: int, key, bounds,
                 train_ds=None, progress: _Progress | None = None):
        self.target, self.state, self.ds, self.bounds = target, state, ds, tuple(float(b) for b in bounds)
        self.batch_size, self.key, self.train_ds = batch_size, key, train_ds
        self.progress = progress or _Progress(False, 0)
        self.predict = _predict_fn(target)
        self.score = _score_fn(target) if target.detector is not None else None
        self.runs: dict[str, AttackRun] = {}
        self.specs: dict = {}
        self._compiled: dict = {}
        self.clean_correct = self.clean_pred = self.clean_scores = None

    @property
    def n(self) -> int:
        return len(self.ds)

    def batches(self, n: int | None = None):
        """Batches of the first ``n`` evaluated examples (all by default), padded to one shape."""
        n = self.n if not n else min(int(n), self.n)
        ds = self.ds if n == self.n else data_lib.ArrayDataset(self.ds.images[:n], self.ds.labels[:n])
        return data_lib.eval_batches(ds, min(self.batch_size, n))

    def run_clean(self, clean_key) -> None:
        correct, pred, scores = [], [], []
        for b, batch in enumerate(self.batches()):
            mask = np.asarray(batch["mask"])
            p = np.asarray(self.predict(self.state, batch["image"], jax.random.fold_in(clean_key, b)))
            pred.append(p[mask])
            correct.append((p == np.asarray(batch["label"]))[mask])
            if self.score is not None:
                scores.append(np.asarray(self.score(self.state, batch["image"]))[mask])
            self.progress.update()
        self.clean_correct, self.clean_pred = np.concatenate(correct), np.concatenate(pred)
        self.clean_scores = np.concatenate(scores) if scores else None

    def compile(self, atk: attacks_lib.Attack, options: dict | None = None) -> _Compiled:
        """The compiled attack; specs that differ only in eps (or label) share one compiled function (eps is
        an argument of it), e.g. ``pgd40_0p1`` and ``pgd40_0p3``."""
        options = options or {}
        key = (atk.name, atk.hyperparameters, atk.rel_step_size, atk.norm, atk.budget,
               bool(options.get("adaptive", True)), bool(options.get("against_detector", False)))
        try:
            hash(key)
        except TypeError:  # an unhashable hyperparameter (a caller's object): no sharing
            return _compile_attack(self.target, atk, options, self.bounds)
        if key not in self._compiled:
            self._compiled[key] = _compile_attack(self.target, atk, options, self.bounds)
        return dataclasses.replace(self._compiled[key], attack=atk)

    def attack(self, compiled: _Compiled, eps: float, key, *, n: int | None = None, keep_adv: bool = False,
               on_first_batch: Callable | None = None) -> AttackRun:
        """Runs ``compiled`` at ``eps`` on the first ``n`` examples; batch ``b`` uses ``fold_in(key, b)``."""
        correct, scores, linf, l2, advs, violations = [], [], [], [], [], 0
        lo, hi = self.bounds
        for b, batch in enumerate(self.batches(n)):
            k_attack, k_pred = jax.random.split(jax.random.fold_in(key, b))
            x, y, mask = batch["image"], batch["label"], np.asarray(batch["mask"])
            x_adv = np.asarray(compiled.fn(self.state, x, y, k_attack, jnp.float32(eps)))
            pred = np.asarray(self.predict(self.state, x_adv, k_pred))
            correct.append((pred == np.asarray(y))[mask])
            if self.score is not None:
                scores.append(np.asarray(self.score(self.state, x_adv))[mask])
            li, l2_ = _perturbation_norms(np.asarray(x), x_adv)
            linf.append(li[mask])
            l2.append(l2_[mask])
            outside_box = (x_adv < lo - 1e-6) | (x_adv > hi + 1e-6)
            violations += int(outside_box.reshape(len(x_adv), -1).any(axis=1)[mask].sum())
            if keep_adv:
                advs.append(x_adv[mask])
            if b == 0 and on_first_batch is not None:
                on_first_batch(np.asarray(x), x_adv, np.asarray(y), pred)
            self.progress.update()
        return AttackRun(np.concatenate(correct), np.concatenate(linf), np.concatenate(l2),
                         np.concatenate(scores) if scores else None, violations,
                         np.concatenate(advs) if keep_adv else None)


def _minimal_stats(run: AttackRun, clean_correct: np.ndarray, norm: str, radii) -> dict:
    from robustjax.evaluate import metrics

    success = clean_correct & ~run.adv_correct

    def median(values):
        return float(np.median(values[success])) if success.any() else None

    out = dict(
        success_rate=float(success.sum() / max(1, clean_correct.sum())),
        mean_l2=metrics.rho(run.l2, success), median_l2=median(run.l2),  # mean_l2: PGN's rho (Eq. 6)
        mean_linf=metrics.rho(run.linf, success), median_linf=median(run.linf),
    )
    if radii:
        size = run.l2 if norm == "l2" else run.linf
        out["at_radius"] = [dict(radius=float(r), **metrics.accuracy_at_radius(size, clean_correct, run.adv_correct, r))
                            for r in radii]
    return out


def evaluate(
    model: Any,
    state: Any,
    test_ds: data_lib.ArrayDataset,
    eval_cfg: Any,
    key: jax.Array,
    *,
    bounds=(0.0, 1.0),
    keep_examples: int = 8,
    train_ds: data_lib.ArrayDataset | None = None,
) -> dict:
    """Runs clean accuracy, every attack, curve and metric of ``eval_cfg``, and the diagnostics.

    Args:
      model: a ``Defense`` (classifier, surrogate, randomness, detector) or a function ``state -> logits_fn``.
      state: the trained state ``model`` reads.
      test_ds: the test split; the first ``eval_cfg.num_examples`` examples are evaluated (0 = all).
      eval_cfg: ``config.eval``.
      key: the evaluation key (same key, same numbers).
      bounds: the dataset's pixel range.
      keep_examples: how many clean/adversarial pairs per attack to keep for the report's pictures.
      train_ds: the training split: needed by the ``train_distance`` metric and by ``transfer`` from a
        standard model trained on the spot (a clear error names the metric when it is missing).

    Returns a JSON-serialisable dict (plus ``"_pictures"``: numpy arrays of a few clean/adversarial
    examples for the report, removed before saving).
    """
    from robustjax import config as config_lib
    from robustjax.evaluate import diagnostics as diagnostics_lib
    from robustjax.evaluate import metrics as metrics_lib

    eval_cfg, preset = config_lib.apply_eval_preset(eval_cfg)   # "quick": capped loop counts, recorded below
    if preset:
        print(f"[robustjax] evaluation preset {preset['preset']!r}: loop counts capped "
              f"({len(preset['changed'])} fields), weaker than the config's evaluation", flush=True)
    target = Target.of(model)
    plan = specs_lib.resolve_all(eval_cfg)
    metrics_lib.check_inputs(plan.metrics, train_ds)
    n = len(test_ds) if not eval_cfg.num_examples else min(int(eval_cfg.num_examples), len(test_ds))
    ds = data_lib.ArrayDataset(test_ds.images[:n], test_ds.labels[:n])
    batch_size = min(int(eval_cfg.batch_size), n)
    num_batches = -(-n // batch_size)
    total = num_batches * (1 + len(plan.attacks) + sum(len(g) for _, _, g in plan.curves.values()))
    progress = _Progress(plan.progress, total)
    clean_key, key = jax.random.split(key)
    session = Session(target, state, ds, batch_size, key, bounds, train_ds, progress)
    session.specs = plan.attacks
    try:
        progress.stage("clean")
        session.run_clean(clean_key)
        results = _run_suite(session, plan, keep_examples)
        if preset:
            results["eval_preset"] = preset
        if plan.metrics:
            progress.stage("metrics")
            results["metrics"] = metrics_lib.run(session, plan.metrics, jax.random.fold_in(key, METRIC_KEYS))
            results["curves"].update(metrics_lib.black_box_curves(results["metrics"]))
        if target.detector is not None:
            results["detector"].update(metrics_lib.detector_curves(session, plan.detector))
        if plan.diagnostics["enabled"]:
            progress.stage("diagnostics")
            results["diagnostics"] = diagnostics_lib.run(session, plan, results,
                                                         jax.random.fold_in(key, DIAGNOSTIC_KEYS))
            for w in results["diagnostics"]["warnings"]:
                print(f"[robustjax] diagnostics warning: {w}", file=sys.stderr, flush=True)
    finally:
        progress.close()
    return results


def _run_suite(session: Session, plan: specs_lib.Plan, keep_examples: int) -> dict:
    target, clean_correct = session.target, session.clean_correct
    results: dict = {"num_examples": session.n, "clean_accuracy": float(clean_correct.mean()), "attacks": {},
                     "curves": {}}
    if session.clean_scores is not None:
        flags = session.clean_scores > target.detector.threshold
        results["detector"] = {
            "threshold": float(target.detector.threshold),
            "flagged_clean": float(flags.mean()),
            "clean_accuracy_with_detector": float((clean_correct & ~flags).mean()),
        }
    if target.stochastic:
        results["stochastic"] = True
    pictures: dict = {}
    keep_adv = {spec.params["attack"] for spec in plan.metrics.values() if spec.name == "train_distance"}

    survivors: dict[tuple[str, float], list[np.ndarray]] = {}
    for i, (label, (atk, options)) in enumerate(plan.attacks.items()):
        session.progress.stage(label)
        compiled = session.compile(atk, options)
        eps = float(atk.eps) if atk.budget else 0.0

        def keep(x, x_adv, y, pred, label=label):
            pictures[label] = (x[:keep_examples], x_adv[:keep_examples], y[:keep_examples], pred[:keep_examples])

        t0 = time.perf_counter()
        run = session.attack(compiled, eps, jax.random.fold_in(session.key, i), keep_adv=label in keep_adv,
                             on_first_batch=keep)
        seconds = round(time.perf_counter() - t0, 3)  # wall time, compilation included
        session.runs[label] = run
        out, survive = _summary(session, compiled, run, eps)
        out["seconds"] = seconds
        if not atk.budget:
            out.update(_minimal_stats(run, clean_correct, atk.norm, options.get("radii")))
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

    for j, (label, (atk, options, grid)) in enumerate(plan.curves.items()):
        session.progress.stage(f"curve {label}")
        compiled = session.compile(atk, options)
        points = []
        t0 = time.perf_counter()
        for eps in grid:
            run = session.attack(compiled, float(eps), jax.random.fold_in(session.key, CURVE_KEYS + j))
            out, _ = _summary(session, compiled, run, float(eps))
            points.append({"eps": float(eps), "robust_accuracy": out["robust_accuracy"],
                           "accuracy_on_adversarial": out["accuracy_on_adversarial"],
                           "budget_violations": out["budget_violations"]})
        results["curves"][label] = {"attack": atk.name, "norm": atk.norm, "points": points,
                                    "seconds": round(time.perf_counter() - t0, 3)}

    results["_pictures"] = pictures
    return results


def _summary(session: Session, compiled: _Compiled, run: AttackRun, eps: float) -> tuple[dict, np.ndarray]:
    """The common part of an attack's result, and the per-example survival mask."""
    clean_correct = session.clean_correct[:len(run.adv_correct)]
    survive = clean_correct & run.adv_correct
    out = {"attack": compiled.name, "robust_accuracy": float(survive.mean()),
           "accuracy_on_adversarial": float(run.adv_correct.mean())}
    if run.scores is not None:
        flags = run.scores > session.target.detector.threshold
        out.update(flagged_adversarial=float(flags.mean()),
                   accuracy_with_detector=float((flags | run.adv_correct).mean()))
    violations = run.violations
    if compiled.attack.budget:
        norm = compiled.attack.norm
        size = run.linf if norm == "linf" else run.l2
        if math.isfinite(eps):
            violations += int((size > eps * (1 + 1e-4) + 1e-6).sum())
        out.update(eps=float(eps), norm=norm)
    out["budget_violations"] = violations
    return out, survive
