"""Gradient-masking diagnostics: evidence that an evaluation's numbers may overstate robustness.

    results = evaluate.evaluate(...)                 # runs them unless config.eval.diagnostics.enabled=False
    results["diagnostics"]["warnings"]               # one sentence each, with the numbers behind it
    results["diagnostics"]["checks"]["unbounded_pgd"]["accuracy_on_adversarial"]

A defense whose gradients are useless to an attacker (a quantizer without a surrogate, a saturated
softmax, randomness, shattered gradients) looks robust to gradient attacks without being robust (Athalye,
Carlini and Wagner, "Obfuscated gradients give a false sense of security"; Wang et al.'s ATGAN paper,
"Improving Global Adversarial Robustness Generalization With Adversarially Trained GAN", Sec. 4.6.4 and
Table 5, runs the first two checks below). Each check reports its
evidence and, when it crosses its threshold, a warning. The thresholds are fields of
``config.eval.diagnostics`` (defaults below); the attacks go through ``defense.attack_model`` (BPDA where
the defense has a surrogate), and only adaptive suite attacks that attack the classifier alone (not
``"adaptive": False``, not ``against_detector``) are compared.

Where: the diagnostics' own runs use the first ``num_examples`` (128) evaluated examples; comparisons
between two suite attacks use every evaluated example. The radius of the attack comparisons is
``config.eval.diagnostics.eps`` or, when it is 0, the eps (and norm) of the suite's budget attack with
the most steps (``linf_suite``'s PGD-1000 at the config's main eps).

Checks (``results["diagnostics"]["checks"]``) and their rules:

``gradients``: the input gradient of the cross-entropy at the test points (true labels).
    ``nonfinite_fraction`` > 0 (any NaN/inf gradient); ``zero_fraction`` > ``max_zero_gradient_fraction``
    (0.10: more than one test point in ten where ``||grad||_2 = 0``, e.g. a quantizer or a softmax
    saturated beyond float32; robustjax's cross-entropy keeps its gradient up to a logit margin of about
    100); ``max_norm`` > ``max_gradient_norm`` (1e4: the loss changes by ~1 over an L2 step of 1e-4;
    trained classifiers on [0, 1] images have per-example norms of about 1e-3..1e1).
``randomness``: the deployed classifier twice on the same inputs (two keys for a randomised one).
    Flagged when the logits differ and no suite attack averages over draws (``stochastic=True`` in an
    apgd / autoattack spec: expectation over transformation), or when a classifier not declared
    ``stochastic`` gives different logits. Evidence: ``max_logit_difference``, ``prediction_changes``.
``unbounded_pgd``: PGD with eps = inf (L-inf, from the clean input, ``unbounded_steps`` = 100 steps of
    2.5 box widths / steps: the box is reachable) must fool nearly everything. Flagged when
    ``accuracy_on_adversarial`` > ``max_unbounded_accuracy`` (0.05; the ATGAN paper reports 0.0-0.7%).
``pgd_steps``: few-step against many-step PGD at the same radius (a list, one entry per radius where the
    suite has two PGDs whose steps differ at least 4x; otherwise one entry at the comparison radius, with the suite's PGD there and/or the
    diagnostics' own: ``few_steps`` = 20 steps of 0.25 eps with a random start, and the same spec with
    ``many_steps`` = 200 steps; a suite PGD of at least ``many_steps / 2`` steps is the many-step side. The
    paper configs have ``linf_suite``'s PGD-1000 beside their PGD there, so the own runs serve the other
    configs at a CPU-sized cost). ``gap`` = robust accuracy (few) - robust accuracy (many), reported as
    measured; flagged when ``gap`` > ``max_gap`` (0.05 = 5 points). The threshold is not 2 points: the
    ATGAN paper's own Table 5 has PGD-1000 2.8-3.8 points below PGD-7 on SVHN and CIFAR-10, which the
    paper reads (reasonably) as no masking. A gap above it means the few-step numbers overstate
    robustness: the attack has not converged, or its gradients are masked; quote the many-step number.
``black_box``: a score-based attack (Square: the suite's at the comparison radius, else the diagnostics'
    own with ``square_queries`` = 500 queries; images only) or a transfer attack (``transfer`` metrics at
    the same norm and eps) should be weaker than the white-box attacks. ``gap`` = robust accuracy of the
    per-example worst case over the white-box gradient attacks at that radius (FGSM, FGM, R+FGSM, BIM,
    PGD, MIM, APGD; the suite's and the diagnostics' own PGD) - robust accuracy of the black-box attack,
    on the same examples; flagged when ``gap`` > ``max_gap``.
``autoattack``: AutoAttack far below PGD at the same radius (suite attacks): ``gap`` = robust accuracy
    of the per-example worst case over the suite's PGD attacks there - AutoAttack's; flagged when ``gap`` >
    ``max_gap``. AutoAttack is usually 0-3 points below a converged PGD on a model without masking; its
    DLR and targeted losses and Square break what cross-entropy PGD cannot (a saturated softmax).

``eps_monotonic``: a larger radius must not help the defender (Carlini et al., "On Evaluating Adversarial
    Robustness", Sec. 5: accuracy should fall monotonically with the distortion bound; Athalye et al. list
    "increasing distortion bound does not increase success" among the signs of obfuscated gradients).
    From what the suite already ran, no attack of its own: every white-box robustness curve, and every
    group of suite attacks that differ only in eps (``fgsm_0p1`` and ``fgsm_0p3``); the naive
    (``adaptive=False``) and detector-aware ones are left out, as in the other checks. ``rise`` = the largest
    robust accuracy at a radius minus the robust accuracy at any smaller radius of the same attack;
    flagged when ``rise`` > ``max_gap``. One-step attacks on a model trained against them (FGSM-AT's label
    leaking, a curved loss) are the usual cause; the iterative attacks then give the number to quote.

Output: ``results["diagnostics"] = {"warnings": [...], "checks": {...}, "num_examples", "norm", "eps",
"eps_from", "thresholds": {...}}``; each check (or list entry) holds its evidence, ``threshold`` and
``flagged``.
"""

from __future__ import annotations

import inspect
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import attacks as attacks_lib
from robustjax import xla
from robustjax.attacks import core

WHITE_BOX = ("fgsm", "fgm", "rand_fgsm", "bim", "pgd", "mim", "apgd")
MANY_STEPS_RATIO = 4  # two suite PGDs at one radius are a few/many pair when the steps differ this much
THRESHOLD_FIELDS = ("max_gap", "max_unbounded_accuracy", "max_zero_gradient_fraction", "max_gradient_norm")
_ZERO = 1e-30  # a gradient norm at or below this counts as zero


def _steps_of(atk: attacks_lib.Attack) -> int:
    steps = atk.kwargs.get("num_steps")
    if steps is None:
        default = inspect.signature(atk.fn).parameters.get("num_steps")
        steps = default.default if default is not None and default.default is not inspect.Parameter.empty else 1
    return int(steps)


def _comparable(session) -> dict:
    """Suite attacks with an eps that attack the classifier adaptively: ``{label: Attack}``."""
    out = {}
    for label, (atk, options) in session.specs.items():
        if not atk.budget or atk.eps is None or not math.isfinite(float(atk.eps)) or float(atk.eps) <= 0:
            continue
        if not options.get("adaptive", True) or options.get("against_detector", False):
            continue
        out[label] = atk
    return out


def _at(attacks: dict, norm: str, eps: float, names) -> dict:
    return {k: a for k, a in attacks.items()
            if a.name in names and a.norm == norm and math.isclose(float(a.eps), eps, rel_tol=1e-6)}


def _survive(session, label: str, m: int | None = None) -> np.ndarray:
    run = session.runs[label]
    m = len(run.adv_correct) if m is None else m
    return session.clean_correct[:m] & run.adv_correct[:m]


def _own(session, spec: dict, key, m: int) -> np.ndarray:
    atk = attacks_lib.resolve(spec, where="config.eval.diagnostics")
    run = session.attack(session.compile(atk), float(atk.eps), key, n=m)
    return session.clean_correct[:m] & run.adv_correct


def _comparison_radius(session, cfg, comparable) -> tuple[str | None, float | None, str]:
    if cfg["eps"] > 0:
        norms = sorted({a.norm for a in comparable.values() if math.isclose(float(a.eps), cfg["eps"], rel_tol=1e-6)})
        return (norms[0] if norms else "linf"), float(cfg["eps"]), "config.eval.diagnostics.eps"
    if not comparable:
        return None, None, "none: the suite has no budget attack; set config.eval.diagnostics.eps"
    label = max(sorted(comparable), key=lambda k: _steps_of(comparable[k]))
    atk = comparable[label]
    return atk.norm, float(atk.eps), f"the suite's attack with the most steps ({label})"


def _probe(session, m, key):
    """One compiled pass over the first m examples: input-gradient norms ``[m]`` (NaN where the gradient is not
    finite), and the deployed classifier's logits twice (two keys for a randomised one) on the first batch."""
    target = session.target

    @xla.jit
    def fn(state, x, y, k):
        k_draw, k1, k2 = jax.random.split(k, 3)
        f = target.attack_logits_fn(state, k_draw, adaptive=True, two_args=False)
        _, _, g = core.loss_and_grad(f, core.ce_loss, x, y)
        finite = jnp.all(jnp.isfinite(g).reshape(len(x), -1), axis=1)
        norms = jnp.where(finite, core.lp_norm(jnp.where(jnp.isfinite(g), g, 0.0), "l2"), jnp.nan)
        return norms, target.logits(state, x, k1), target.logits(state, x, k2 if target.stochastic else k1)

    norms, pair = [], None
    for b, batch in enumerate(session.batches(m)):
        mask = np.asarray(batch["mask"])
        n_b, a, c = fn(session.state, batch["image"], batch["label"], jax.random.fold_in(key, b))
        norms.append(np.asarray(n_b)[mask])
        if pair is None:
            pair = (np.asarray(a)[mask], np.asarray(c)[mask])
    return np.concatenate(norms), pair


def _check_gradients(norms, cfg) -> tuple[dict, list]:
    finite = np.isfinite(norms)
    zero = finite & (norms <= _ZERO)
    out = {"nonfinite_fraction": float((~finite).mean()), "zero_fraction": float(zero.mean()),
           "median_norm": float(np.median(norms[finite])) if finite.any() else None,
           "max_norm": float(norms[finite].max()) if finite.any() else None, "num_examples": int(len(norms)),
           "threshold": {"max_zero_gradient_fraction": cfg["max_zero_gradient_fraction"],
                         "max_gradient_norm": cfg["max_gradient_norm"]}}
    warnings = []
    if out["nonfinite_fraction"] > 0:
        warnings.append(f"NaN/inf input gradients on {out['nonfinite_fraction']:.1%} of {len(norms)} test points: "
                        "gradient attacks cannot use them")
    if out["zero_fraction"] > cfg["max_zero_gradient_fraction"]:
        warnings.append(f"the input gradient of the loss is exactly zero on {out['zero_fraction']:.1%} of "
                        f"{len(norms)} test points (threshold {cfg['max_zero_gradient_fraction']:.0%}): a "
                        "non-differentiable layer or a saturated softmax; gradient attacks cannot move from "
                        "there, so their accuracy overstates robustness")
    if out["max_norm"] is not None and out["max_norm"] > cfg["max_gradient_norm"]:
        warnings.append(f"exploding input gradients: the largest L2 norm is {out['max_norm']:.3g} (median "
                        f"{out['median_norm']:.3g}, threshold {cfg['max_gradient_norm']:g}): shattered gradients "
                        "mislead gradient attacks")
    out["flagged"] = bool(warnings)
    return out, warnings


def _check_randomness(session, pair) -> tuple[dict, list]:
    target = session.target
    a, b = pair
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    differs = bool(a.size) and diff > 1e-6 * (1.0 + float(np.max(np.abs(a))))
    eot = sorted(label for label, (atk, _) in session.specs.items() if atk.kwargs.get("stochastic", False))
    out = {"declared_stochastic": bool(target.stochastic), "max_logit_difference": diff,
           "prediction_changes": float((a.argmax(-1) != b.argmax(-1)).mean()) if a.size else 0.0,
           "eot_attacks": eot, "num_examples": int(len(a))}
    warnings = []
    if differs and not target.stochastic:
        warnings.append(f"the classifier is not declared stochastic but gives different logits for the same input "
                        f"(max difference {diff:.3g}): declare it (Defense.stochastic) so the evaluation draws "
                        "fresh keys and attacks can average over draws")
    elif differs and not eot:
        warnings.append(f"randomised outputs: the same input gives different logits (max difference {diff:.3g}, "
                        f"{out['prediction_changes']:.1%} of predictions change between two draws) and no attack "
                        "averages gradients over draws; add an expectation-over-transformation attack "
                        "(apgd or autoattack with stochastic=True)")
    out["flagged"] = bool(warnings)
    return out, warnings


def _check_unbounded(session, cfg, m, key) -> tuple[dict, list]:
    lo, hi = session.bounds
    steps = int(cfg["unbounded_steps"])
    spec = {"attack": "pgd", "eps": math.inf, "norm": "linf", "step_size": 2.5 * (hi - lo) / steps,
            "num_steps": steps, "random_start": False}
    atk = attacks_lib.resolve(spec, where="config.eval.diagnostics")
    run = session.attack(session.compile(atk), math.inf, key, n=m)
    acc = float(run.adv_correct.mean())
    out = {"num_steps": steps, "step_size": spec["step_size"], "accuracy_on_adversarial": acc,
           "robust_accuracy": float((session.clean_correct[:m] & run.adv_correct).mean()), "num_examples": m,
           "threshold": cfg["max_unbounded_accuracy"], "flagged": acc > cfg["max_unbounded_accuracy"]}
    warnings = []
    if out["flagged"]:
        warnings.append(f"unbounded PGD (eps = inf, {steps} steps) leaves {acc:.1%} of {m} examples correctly "
                        f"classified (threshold {cfg['max_unbounded_accuracy']:.0%}; an attack that may change "
                        "every pixel should reach ~0%): the gradients do not lead the attack anywhere, so "
                        "bounded gradient attacks overstate robustness")
    return out, warnings


def _pgd_steps(session, cfg, comparable, norm, eps, m, key, own_runs) -> tuple[list, list]:
    entries, warnings = [], []
    pgds = _at_all(comparable, ("pgd",))
    groups: dict[tuple[str, float], dict] = {}
    for label, atk in pgds.items():
        groups.setdefault((atk.norm, float(atk.eps)), {})[label] = atk
    done = set()
    for (g_norm, g_eps), members in sorted(groups.items()):
        steps = {label: _steps_of(a) for label, a in members.items()}
        few = min(sorted(steps), key=steps.get)
        many = max(sorted(steps), key=steps.get)
        if steps[many] < MANY_STEPS_RATIO * steps[few]:  # PGD-7 against PGD-10 is no convergence check
            continue
        entries.append(_gap_entry(g_norm, g_eps, (few, steps[few], _survive(session, few)),
                                  (many, steps[many], _survive(session, many)), cfg))
        done.add((g_norm, g_eps))
    if norm is not None and not any(n == norm and math.isclose(e, eps, rel_tol=1e-6) for n, e in done):
        here = {k: a for k, a in pgds.items() if a.norm == norm and math.isclose(float(a.eps), eps, rel_tol=1e-6)}
        if here:
            label = min(sorted(here), key=lambda k: _steps_of(here[k]))
            base, base_steps = dict(here[label].spec), _steps_of(here[label])
        else:
            label, base = None, {"attack": "pgd", "norm": norm, "eps": eps, "rel_step_size": 0.25, "random_start": True}
            base_steps = None
        k_few, k_many = jax.random.split(key)
        if label is not None and base_steps >= cfg["many_steps"] / 2:  # the suite's PGD is the many-step one
            many = (label, base_steps, _survive(session, label, m))
            few_spec = {**base, "num_steps": int(cfg["few_steps"])}
            few = ("diagnostics", cfg["few_steps"], _own(session, few_spec, k_few, m))
        else:
            if label is not None:
                few = (label, base_steps, _survive(session, label, m))
            else:
                few = ("diagnostics", cfg["few_steps"], _own(session, {**base, "num_steps": int(cfg["few_steps"])},
                                                              k_few, m))
            many = ("diagnostics", cfg["many_steps"], _own(session, {**base, "num_steps": int(cfg["many_steps"])},
                                                            k_many, m))
        for run in (few, many):
            if run[0] == "diagnostics":
                own_runs.append(run[2])
        entries.append(_gap_entry(norm, eps, few, many, cfg))
    for e in entries:
        if e["flagged"]:
            warnings.append(
                f"many-step PGD is clearly stronger than few-step PGD at {e['norm']} eps={e['eps']:g}: robust accuracy "
                f"{e['few']['robust_accuracy']:.3f} with {e['few']['num_steps']} steps ({e['few']['label']}) against "
                f"{e['many']['robust_accuracy']:.3f} with {e['many']['num_steps']} ({e['many']['label']}), a gap of "
                f"{100 * e['gap']:.1f} points (threshold {100 * e['threshold']:g}) on {e['num_examples']} examples: the "
                "few-step number overstates robustness (the attack has not converged, or gradients are masked); "
                "quote the many-step one")
    return entries, warnings


def _at_all(attacks: dict, names) -> dict:
    return {k: a for k, a in attacks.items() if a.name in names}


def _gap_entry(norm, eps, few, many, cfg) -> dict:
    n = min(len(few[2]), len(many[2]))
    a, b = float(few[2][:n].mean()), float(many[2][:n].mean())
    return {"norm": norm, "eps": float(eps), "num_examples": n,
            "few": {"label": few[0], "num_steps": int(few[1]), "robust_accuracy": a},
            "many": {"label": many[0], "num_steps": int(many[1]), "robust_accuracy": b},
            "gap": a - b, "threshold": cfg["max_gap"], "flagged": (a - b) > cfg["max_gap"]}


def _white_box(session, comparable, norm, eps, own_runs, m) -> tuple[np.ndarray | None, list[str]]:
    """Per-example worst case of the white-box attacks at (norm, eps) on the first m examples."""
    labels = sorted(_at(comparable, norm, eps, WHITE_BOX))
    arrays = [_survive(session, k, m) for k in labels] + [r[:m] for r in own_runs if len(r) >= m]
    if not arrays:
        return None, labels
    return np.logical_and.reduce(arrays), labels + (["diagnostics' own PGD"] if len(arrays) > len(labels) else [])


def _black_box(session, cfg, comparable, norm, eps, m, key, own_runs, results) -> tuple[list, list]:
    entries, warnings = [], []
    if norm is None:
        return entries, warnings
    squares = _at(comparable, norm, eps, ("square",))
    candidates = [(label, None) for label in sorted(squares)]
    if not squares and cfg["square_queries"] > 0 and session.ds.images.ndim == 4:
        spec = {"attack": "square", "eps": eps, "norm": norm, "num_queries": int(cfg["square_queries"])}
        candidates.append(("diagnostics' Square", _own(session, spec, key, m)))
    for label, survive in candidates:
        k = m if survive is not None else session.n
        survive = _survive(session, label) if survive is None else survive
        white, used = _white_box(session, comparable, norm, eps, own_runs, k)
        if white is None:
            continue
        entries.append(_bb_entry(label, "square", norm, eps, float(survive.mean()), float(white[:len(survive)].mean()),
                                 used, len(survive), cfg))
    for label, r in (results.get("metrics") or {}).items():
        if r.get("metric") != "transfer" or r.get("eps") is None:
            continue
        if r["norm"] != norm or not math.isclose(float(r["eps"]), eps, rel_tol=1e-6):
            continue
        white, used = _white_box(session, comparable, norm, eps, own_runs, r["num_examples"])
        if white is not None and len(white) >= r["num_examples"]:
            entries.append(_bb_entry(f"metric {label}", "transfer", norm, eps, r["robust_accuracy"],
                                     float(white.mean()), used, r["num_examples"], cfg))
    for e in entries:
        if e["flagged"]:
            warnings.append(
                f"a {e['kind']} attack is stronger than the white-box attacks at {e['norm']} eps={e['eps']:g}: robust "
                f"accuracy {e['black_box_robust_accuracy']:.3f} under {e['label']} against {e['white_box_robust_accuracy']:.3f} "
                f"under the worst case of {', '.join(e['white_box'])}, a gap of {100 * e['gap']:.1f} points "
                f"(threshold {100 * e['threshold']:g}) on {e['num_examples']} examples: the white-box gradients are "
                "less useful than no gradients at all (gradient masking)")
    return entries, warnings


def _bb_entry(label, kind, norm, eps, bb, wb, used, n, cfg) -> dict:
    return {"label": label, "kind": kind, "norm": norm, "eps": float(eps), "black_box_robust_accuracy": bb,
            "white_box_robust_accuracy": wb, "white_box": used, "gap": wb - bb, "num_examples": int(n),
            "threshold": cfg["max_gap"], "flagged": (wb - bb) > cfg["max_gap"]}


def _autoattack(session, cfg, comparable) -> tuple[list, list]:
    entries, warnings = [], []
    for label, aa in sorted(_at_all(comparable, ("autoattack",)).items()):
        pgds = _at(comparable, aa.norm, float(aa.eps), ("pgd",))
        if not pgds:
            continue
        pgd = np.logical_and.reduce([_survive(session, k) for k in sorted(pgds)])
        a, p = float(_survive(session, label).mean()), float(pgd.mean())
        entry = {"label": label, "norm": aa.norm, "eps": float(aa.eps), "autoattack_robust_accuracy": a,
                 "pgd_robust_accuracy": p, "pgd": sorted(pgds), "gap": p - a, "num_examples": session.n,
                 "threshold": cfg["max_gap"], "flagged": (p - a) > cfg["max_gap"]}
        entries.append(entry)
        if entry["flagged"]:
            warnings.append(
                f"AutoAttack is far below PGD at {aa.norm} eps={float(aa.eps):g}: robust accuracy {a:.3f} ({label}) "
                f"against {p:.3f} under {', '.join(sorted(pgds))}, a gap of {100 * (p - a):.1f} points (threshold "
                f"{100 * cfg['max_gap']:g}): PGD's cross-entropy gradients are masked (e.g. a saturated softmax) or "
                "PGD is misconfigured; quote AutoAttack")
    return entries, warnings


def _rise(points: list[tuple[float, float, str]]) -> tuple[float, tuple, tuple]:
    """The largest ``acc_j - acc_i`` over ``eps_i < eps_j`` of ``(eps, robust accuracy, label)`` points, with
    the two points (``(0.0, None, None)`` when it never rises)."""
    best, lo_pt, hi_pt = 0.0, None, None
    low = None   # the lowest point at a strictly smaller eps than the group at hand
    for _, group in itertools.groupby(sorted(points), key=lambda p: p[0]):
        group = list(group)
        if low is not None:
            for p in group:
                if p[1] - low[1] > best:
                    best, lo_pt, hi_pt = p[1] - low[1], low, p
        g_low = min(group, key=lambda p: p[1])
        if low is None or g_low[1] < low[1]:
            low = g_low
    return best, lo_pt, hi_pt


def _eps_monotonic(session, cfg, comparable, results, curve_options) -> tuple[list, list]:
    entries, warnings = [], []
    groups: dict = {}
    for label, atk in comparable.items():
        groups.setdefault((atk.name, atk.norm, atk.hyperparameters, atk.rel_step_size), []).append(
            (float(atk.eps), float(_survive(session, label).mean()), label))
    series = [(f"attacks {', '.join(sorted(p[2] for p in pts))}", key[0], key[1], pts)
              for key, pts in sorted(groups.items(), key=lambda kv: sorted(p[2] for p in kv[1])) if len(pts) > 1]
    for label, curve in (results.get("curves") or {}).items():
        options = curve_options.get(label, {})   # as _comparable: the naive and detector-aware curves are other threats
        if curve.get("black_box") or not options.get("adaptive", True) or options.get("against_detector", False):
            continue
        pts = [(float(p["eps"]), float(p["robust_accuracy"]), f"{label}@{p['eps']:g}") for p in curve["points"]]
        if len(pts) > 1:
            series.append((f"curve {label}", curve["attack"], curve["norm"], pts))
    for what, name, norm, pts in series:
        rise, lo, hi = _rise(pts)
        entry = {"label": what, "attack": name, "norm": norm, "rise": rise, "threshold": cfg["max_gap"],
                 "flagged": rise > cfg["max_gap"], "points": [{"eps": e, "robust_accuracy": a} for e, a, _ in sorted(pts)]}
        if lo is not None:
            entry.update(low={"eps": lo[0], "robust_accuracy": lo[1], "label": lo[2]},
                         high={"eps": hi[0], "robust_accuracy": hi[1], "label": hi[2]})
        entries.append(entry)
        if entry["flagged"]:
            warnings.append(
                f"robust accuracy rises with the radius under {name} ({what}): {lo[1]:.3f} at {norm} eps={lo[0]:g} "
                f"({lo[2]}) but {hi[1]:.3f} at eps={hi[0]:g} ({hi[2]}), {100 * rise:.1f} points higher (threshold "
                f"{100 * cfg['max_gap']:g}): a larger budget never helps the defender, so this attack fails to use "
                "it (a one-step attack on a curved loss, label leaking, masked gradients); quote iterative attacks")
    return entries, warnings


def run(session, plan, results: dict, key) -> dict:
    """Runs every check on an evaluation ``session`` (after its attacks and metrics); see the docstring."""
    cfg = plan.diagnostics
    m = min(int(cfg["num_examples"]), session.n)
    comparable = _comparable(session)
    norm, eps, eps_from = _comparison_radius(session, cfg, comparable)
    keys = jax.random.split(key, 5)
    checks, warnings, own_runs = {}, [], []
    session.progress.stage("diagnostics: gradients")
    norms, pair = _probe(session, m, keys[0])
    for name, fn in (("gradients", lambda: _check_gradients(norms, cfg)),
                     ("randomness", lambda: _check_randomness(session, pair)),
                     ("unbounded_pgd", lambda: _check_unbounded(session, cfg, m, keys[2])),
                     ("pgd_steps", lambda: _pgd_steps(session, cfg, comparable, norm, eps, m, keys[3], own_runs)),
                     ("black_box", lambda: _black_box(session, cfg, comparable, norm, eps, m, keys[4], own_runs,
                                                      results)),
                     ("autoattack", lambda: _autoattack(session, cfg, comparable)),
                     ("eps_monotonic", lambda: _eps_monotonic(session, cfg, comparable, results,
                                                              {k: o for k, (_, o, _) in plan.curves.items()}))):
        session.progress.stage(f"diagnostics: {name}")
        checks[name], found = fn()
        warnings += found
    return {"warnings": warnings, "checks": checks, "num_examples": m, "norm": norm, "eps": eps, "eps_from": eps_from,
            "thresholds": {k: cfg[k] for k in THRESHOLD_FIELDS}}


def markdown(results: dict) -> list[str]:
    """The report's section: the warnings with their evidence, or that none of the rules fired."""
    d = results.get("diagnostics")
    if not d:
        return []
    lines = ["## Gradient-masking diagnostics", ""]
    if d["warnings"]:
        lines += [f"**{len(d['warnings'])} warning(s): these numbers may overstate robustness.**", ""]
        lines += [f"- WARNING: {w}" for w in d["warnings"]]
    else:
        lines.append("No rule fired (thresholds below; robustjax/evaluate/diagnostics.py explains each rule).")
    lines += ["", f"Own runs on the first {d['num_examples']} examples; comparison radius: "
              f"{d['norm'] or '-'} eps={d['eps'] if d['eps'] is None else format(d['eps'], 'g')} ({d['eps_from']}).", "",
              "| check | evidence | threshold | flagged |", "|---|---|---|---|"]
    c = d["checks"]
    if "gradients" in c:
        g = c["gradients"]
        lines.append(f"| input gradients | zero on {g['zero_fraction']:.1%}, NaN/inf on {g['nonfinite_fraction']:.1%}, "
                     f"median norm {_g(g['median_norm'])}, max {_g(g['max_norm'])} | zero <= "
                     f"{g['threshold']['max_zero_gradient_fraction']:.0%}, norm <= {g['threshold']['max_gradient_norm']:g} | "
                     f"{_yes(g['flagged'])} |")
    if "randomness" in c:
        r = c["randomness"]
        lines.append(f"| randomised outputs | max logit difference {_g(r['max_logit_difference'])}, "
                     f"{r['prediction_changes']:.1%} predictions change | equal logits or EOT attacks | "
                     f"{_yes(r['flagged'])} |")
    if "unbounded_pgd" in c:
        u = c["unbounded_pgd"]
        lines.append(f"| unbounded PGD ({u['num_steps']} steps) | accuracy {u['accuracy_on_adversarial']:.3f} | <= "
                     f"{u['threshold']:g} | {_yes(u['flagged'])} |")
    for e in c.get("pgd_steps", ()):
        lines.append(f"| PGD {e['few']['num_steps']} vs {e['many']['num_steps']} steps, {e['norm']} eps={e['eps']:g} | "
                     f"{e['few']['robust_accuracy']:.3f} vs {e['many']['robust_accuracy']:.3f}: gap "
                     f"{100 * e['gap']:.1f} points | <= {100 * e['threshold']:g} points | {_yes(e['flagged'])} |")
    for e in c.get("black_box", ()):
        lines.append(f"| {e['label']} vs white-box, {e['norm']} eps={e['eps']:g} | {e['black_box_robust_accuracy']:.3f} "
                     f"vs {e['white_box_robust_accuracy']:.3f}: gap {100 * e['gap']:.1f} points | <= "
                     f"{100 * e['threshold']:g} points | {_yes(e['flagged'])} |")
    for e in c.get("autoattack", ()):
        lines.append(f"| AutoAttack vs PGD, {e['norm']} eps={e['eps']:g} | {e['autoattack_robust_accuracy']:.3f} vs "
                     f"{e['pgd_robust_accuracy']:.3f}: gap {100 * e['gap']:.1f} points | <= {100 * e['threshold']:g} "
                     f"points | {_yes(e['flagged'])} |")
    for e in c.get("eps_monotonic", ()):
        if "low" in e:
            evidence = (f"{e['low']['robust_accuracy']:.3f} at eps={e['low']['eps']:g}, "
                        f"{e['high']['robust_accuracy']:.3f} at eps={e['high']['eps']:g}: rise {100 * e['rise']:.1f} points")
        else:
            evidence = "never rises"
        lines.append(f"| robust accuracy against eps, {e['label']} | {evidence} | <= {100 * e['threshold']:g} points | "
                     f"{_yes(e['flagged'])} |")
    lines.append("")
    return lines


def _g(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _yes(flag: bool) -> str:
    return "**yes**" if flag else "no"
