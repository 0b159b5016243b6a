"""Robustness metrics beyond accuracy under attack: the ones the five papers in the repository report.

    config.eval.metrics = {"er": {"metric": "empirical_robustness", "eps_max": 0.5}}   # or config.add_metrics
    results = evaluate.evaluate(defense, state, test_ds, config.eval, key, bounds=..., train_ds=train_ds)
    results["metrics"]["er"]["value"]

Every metric is selected by name in ``config.eval.metrics`` (``{label: {"metric": name, **fields}}``; the
fields and defaults are ``robustjax.evaluate.specs.METRIC_FIELDS``, checked before training). Each
result is a dict with ``metric`` (the name), ``value`` (the headline number), ``num_examples`` and the
numbers below. Metrics run on the first ``num_examples`` evaluated examples (0: all of them); every
search and gradient goes through ``defense.attack_model`` (BPDA where the defense has a surrogate) unless
``adaptive=False``. Notation: ``f`` the classifier, ``F(x) = argmax f(x)`` its prediction, ``J`` the
softmax cross-entropy (``robustjax.attacks.ce_loss``), norms in pixel units of the dataset's box.

``empirical_robustness`` (Zantedeschi, Nicolae and Rawat, "Efficient Defenses Against Adversarial Attacks",
Eq. 2; Sec. 4.1, Table 2)
    ``rho_F = mean_x ||dx_min(x)||_2 / ||x||_2`` where ``dx_min(x) = clip(x + e* sign(grad_x J(x, F(x)))) - x``
    and ``e*`` is the smallest FGSM step that changes the prediction ``F(x)`` (the incremental minimal
    FGSM of ``robustjax.attacks.minimal_fgsm``: a grid of ``num_grid`` steps in ``(0, eps_max]``, then
    ``num_bisection`` halvings). The mean runs over the examples whose prediction flips within
    ``eps_max``; ``flipped`` is their fraction (an example that never flips has no ``dx_min``).
    Keys: ``value``, ``median``, ``flipped``, ``mean_eps`` (mean ``e*`` over flipped examples), ``eps_max``.

``train_distance`` (Zantedeschi et al., Sec. 4.1, Table 2: "training set distance")
    ``mean_a min_t ||a - t||_2`` over the adversarial examples ``a`` and the whole training set ``t``:
    the minimal-FGSM examples of ``empirical_robustness`` (``attack="minimal_fgsm"``, the paper's choice)
    or the successful adversarial examples (correct clean, wrong after) of the suite attack labelled
    ``attack``. Computed exactly, in blocks of ``chunk_size`` training images with one jitted
    ``|a|^2 - 2 a.t + |t|^2`` block function (60,000 MNIST images in 15 blocks); the distance to the
    nearest image found is then recomputed directly. ``clean_value``: the same mean for the clean
    originals of those examples (the reference: how far test images are from the training set anyway).
    Keys: ``value``, ``clean_value``, ``count`` (adversarial examples), ``num_train``, ``attack``.
    Needs ``train_ds=`` (``experiment.run`` passes it).

``loss_sensitivity`` (Zantedeschi et al., Sec. 4.1, Table 3: "local loss sensitivity", after Arpit et al.)
    ``l_F = (1 / M) sum_i ||grad_x J(theta, x_i, y_i)||_2`` over the ``M`` test points with their true
    labels; each example's own gradient (the per-example loss, not a batch mean). Keys: ``value``, ``median``.

``rho_adv`` (Sun, Zhu and Lin, "Enhancing the Robustness of Deep Neural Networks by Boundary Conditional
GAN" (BCGAN), Eq. 9-10, Sec. 4.2)
    ``rho_adv(F) = mean_x Delta_adv(x)``, ``Delta_adv(x) = min {||eta|| : F(x + eta) != F(x)}``, searched per
    example as the paper says ("with certain precision"): the smallest eps at which PGD (``num_steps``
    steps of ``rel_step_size * eps``, from ``x``, in ``norm``) changes ``F(x)``, found by
    ``robustjax.attacks.minimal_eps`` (bisection on ``[0, eps_hi]``, ``num_bisection`` steps; precision
    ``eps_hi / 2**num_bisection``; ``eps_hi`` defaults to the box's diameter, which any prediction change
    fits in). The paper does not state the norm; ``norm`` (default L2) is recorded. An example that PGD
    does not flip at ``eps_hi`` counts as ``eps_hi``: then ``lower_bound`` is true and ``not_flipped``
    says how many. PGD ascends the cross-entropy (``loss``, default ``"ce"``); where the softmax
    saturates (a distilled network at T = 1) that gradient is exactly zero and PGD never moves, so a large
    ``not_flipped`` is masking, not distance: ``loss="margin"`` (the logit margin, which keeps its
    gradient) measures such a model. Keys: ``value``, ``median``, ``not_flipped``, ``lower_bound``,
    ``precision``, ``eps_hi``, ``norm``, ``loss``.

``transfer`` (black-box transfer: Zantedeschi et al. Sec. 4.5, Tables 4-5; PGN Table 2, "B-BOX")
    Accuracy of this model on adversarial examples crafted (white-box) on a surrogate: another run
    (``source`` = its directory: its defense rebuilt from its ``config.json``, its newest checkpoint
    restored) or ``"standard"``: a standard model (``model``, ``steps`` of Adam at ``learning_rate``)
    trained here on ``train_ds``. Keys: ``robust_accuracy``, ``accuracy_on_adversarial`` (``value``),
    ``source_accuracy_on_adversarial`` (the white-box accuracy of the surrogate on its own examples: the
    attack did work there), ``source_clean_accuracy`` (the surrogate did learn the task), ``attack``,
    ``norm``, ``eps``, ``source``. With an ``eps_grid`` the same attack also runs at each radius of the grid
    (the black-box half of Zantedeschi's Figs. 4-5): ``curve`` holds a point per radius with both accuracies
    and the source's, and the suite adds it to ``results["curves"]`` under the metric's label (marked
    ``black_box``), so the report's curve table and figure and the cross-run comparison draw it beside the
    white-box curves. The cross-run table (Zantedeschi's Table 1) is
    :func:`robustjax.evaluate.transfer.transfer_matrix`; curves for several targets at once,
    :func:`robustjax.evaluate.transfer.transfer_curves`.

Minimal-perturbation statistics (``mean_l2`` = the rho of "Adversarial Training with Perturbation Generator
Networks" (PGN), Eq. 6, rho_cw for C&W; accuracy at radii) are per attack: see
:mod:`robustjax.evaluate.suite`. ``rho`` below is Eq. 6 itself, ``accuracy_at_radius`` the radius rule.

Detector curves (Liu, Khalil and Khreishah, "GanDef: A GAN Based Adversarial Training Defense for Neural
Network Classifier", Sec. 4.3, Fig. 4), under the Detector's scoring
rule (a flagged adversarial input counts as handled, a flagged clean input as an error, an unflagged
input is judged by the classifier), in ``results["detector"]``:

- ``threshold_sweep``: ``thresholds``; per threshold ``t`` ``flagged_clean`` and
  ``clean_accuracy_with_detector`` = mean(correct & score <= t) over clean inputs; and per attack label
  (``attacks``) ``flagged_adversarial`` and ``accuracy_with_detector`` = mean(score > t or correct) over its
  adversarial inputs. The adversarial inputs are the ones crafted against the deployed threshold (an
  ``against_detector`` attack is adaptive to that threshold only).
- ``ratio_curves``: ``ratios`` (rho, the share of adversarial inputs, 0 to 1) and per attack label
  ``with_detector`` = (1 - rho) clean_accuracy_with_detector + rho accuracy_with_detector at the deployed
  threshold; ``classifier_only`` = (1 - rho) clean_accuracy + rho accuracy_on_adversarial (the classifier
  without its detector); ``best_threshold_accuracy`` / ``best_threshold``: the best of the sweep at each
  rho (GanDef: "When rho is high, GanDef-Comb relies on discriminator (low threshold value)").
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from robustjax import attacks as attacks_lib
from robustjax import data as data_lib
from robustjax import xla
from robustjax.attacks import core

TRAIN_DS_METRICS = ("train_distance",)


# ----------------------------------------------------------------------------------------------------------
# Pure parts (tested against hand computations)


def rho(norms: np.ndarray, success: np.ndarray) -> float | None:
    """PGN's rho (Eq. 6): the mean perturbation norm over the successful adversarial examples (None if none)."""
    norms, success = np.asarray(norms), np.asarray(success, bool)
    return float(norms[success].mean()) if success.any() else None


def accuracy_at_radius(size: np.ndarray, clean_correct: np.ndarray, adv_correct: np.ndarray,
                       radius: float) -> dict:
    """Accuracy at ``radius`` from a minimal-perturbation attack.

    The attacker at radius r uses the attack's adversarial example when its perturbation (``size``) is
    within r, else nothing. ``robust_accuracy``: correct clean and not fooled within r;
    ``accuracy_on_adversarial``: correct on what the attacker at r submits.
    """
    size, clean_correct, adv_correct = np.asarray(size), np.asarray(clean_correct, bool), np.asarray(adv_correct, bool)
    within = size <= radius * (1 + 1e-6) + 1e-9
    fooled = within & ~adv_correct
    return {"robust_accuracy": float((clean_correct & ~fooled).mean()),
            "accuracy_on_adversarial": float(np.where(within, adv_correct, clean_correct).mean())}


def _flat(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.reshape(len(x), int(np.prod(x.shape[1:])))


_BLOCK = 256  # query rows per call of the distance block function (padded: one compile)


@xla.jit
def _nearest_block(q, q_sq, t, t_sq, t_valid, best_d2, best_idx, offset):
    """Running nearest neighbour: squared distances of a query block to a training chunk."""
    d2 = q_sq[:, None] - 2.0 * (q @ t.T) + t_sq[None, :]
    d2 = jnp.where(t_valid[None, :], jnp.maximum(d2, 0.0), jnp.inf)
    idx = jnp.argmin(d2, axis=1)
    d2_min = jnp.take_along_axis(d2, idx[:, None], axis=1)[:, 0]
    better = d2_min < best_d2
    return jnp.where(better, d2_min, best_d2), jnp.where(better, idx + offset, best_idx)


def train_set_distance(queries, train_ds: data_lib.ArrayDataset, *, chunk_size: int = 4096) -> np.ndarray:
    """``[q]`` L2 distance from each query to its nearest training image (exact; see the module docstring).

    Args:
      queries: ``[q, ...]`` images in the training set's scale (float, [0, 1] for uint8 sources).
      train_ds: the training split (uint8 images are scaled by 1/255, as everywhere).
      chunk_size: training images per block.
    """
    q = _flat(queries)
    if len(q) == 0:
        return np.zeros(0, np.float32)
    nq = len(q)
    pad = -nq % _BLOCK
    qp = np.concatenate([q, np.zeros((pad, q.shape[1]), np.float32)])
    n_train = len(train_ds)
    chunk_size = min(int(chunk_size), n_train)
    best_d2 = [jnp.full((_BLOCK,), jnp.inf, jnp.float32) for _ in range(len(qp) // _BLOCK)]
    best_idx = [jnp.zeros((_BLOCK,), jnp.int32) for _ in range(len(qp) // _BLOCK)]
    blocks = [(jnp.asarray(qp[i:i + _BLOCK]), jnp.asarray((qp[i:i + _BLOCK] ** 2).sum(1)))
              for i in range(0, len(qp), _BLOCK)]
    for start in range(0, n_train, chunk_size):
        stop = min(start + chunk_size, n_train)
        t = _flat(train_ds.get(np.arange(start, stop))["image"])
        valid = np.ones(chunk_size, bool)
        if len(t) < chunk_size:  # pad the last chunk to the same shape (one compile)
            valid[len(t):] = False
            t = np.concatenate([t, np.zeros((chunk_size - len(t), t.shape[1]), np.float32)])
        t_j, t_sq, valid_j = jnp.asarray(t), jnp.asarray((t ** 2).sum(1)), jnp.asarray(valid)
        for b, (qb, qb_sq) in enumerate(blocks):
            best_d2[b], best_idx[b] = _nearest_block(qb, qb_sq, t_j, t_sq, valid_j, best_d2[b], best_idx[b],
                                                     jnp.int32(start))
    idx = np.concatenate([np.asarray(i) for i in best_idx])[:nq]
    nearest = _flat(train_ds.get(idx)["image"])
    return np.sqrt(((q.astype(np.float64) - nearest) ** 2).sum(1)).astype(np.float32)


def loss_gradient_norms(logits_fn, x, y) -> jax.Array:
    """``[B]`` ``||grad_x J(x_i, y_i)||_2``, each example's own cross-entropy gradient."""
    _, _, g = core.loss_and_grad(logits_fn, core.ce_loss, x, y)
    return core.lp_norm(g, "l2")


def minimal_fgsm_perturbation(logits_fn, x, *, eps_max, num_grid, num_bisection, bounds):
    """Zantedeschi's incremental minimal FGSM on the prediction: ``(x_adv [B, ...], eps [B], flipped [B])``.

    ``eps`` is ``attacks.minimal_fgsm``'s smallest step that changes ``F(x)``; ``x_adv`` the point on the
    FGSM line at that step (``x`` where nothing flips within ``eps_max``).
    """
    pred = jnp.argmax(logits_fn(x), axis=-1)
    eps = attacks_lib.minimal_fgsm(logits_fn, x, pred, eps_max=eps_max, num_grid=num_grid,
                                   num_bisection=num_bisection, bounds=bounds)
    flipped = jnp.isfinite(eps)
    g = attacks_lib.input_gradient(logits_fn, "ce")(x, pred)
    step = jnp.where(flipped, eps, 0.0)
    x_adv = core.clip_box(x + core.per_example(step, x) * jnp.sign(g), *bounds)
    return x_adv, eps, flipped


def threshold_sweep(clean_scores, clean_correct, adversarial: Mapping[str, tuple], thresholds) -> dict:
    """GanDef-Comb's accuracies at each threshold (keys in the module docstring).

    ``adversarial``: ``{label: (scores [n], adv_correct [n])}``.
    """
    clean_scores, clean_correct = np.asarray(clean_scores), np.asarray(clean_correct, bool)
    out = {"thresholds": [float(t) for t in thresholds], "flagged_clean": [], "clean_accuracy_with_detector": [],
           "attacks": {label: {"flagged_adversarial": [], "accuracy_with_detector": []} for label in adversarial}}
    for t in thresholds:
        flags = clean_scores > t
        out["flagged_clean"].append(float(flags.mean()))
        out["clean_accuracy_with_detector"].append(float((clean_correct & ~flags).mean()))
        for label, (scores, adv_correct) in adversarial.items():
            flagged = np.asarray(scores) > t
            out["attacks"][label]["flagged_adversarial"].append(float(flagged.mean()))
            handled = flagged | np.asarray(adv_correct, bool)
            out["attacks"][label]["accuracy_with_detector"].append(float(handled.mean()))
    return out


def ratio_curves(sweep: dict, threshold: float, clean_accuracy: float, accuracy_on_adversarial: Mapping[str, float],
                 ratios) -> dict:
    """Overall accuracy against the share rho of adversarial inputs (GanDef Fig. 4; keys in the docstring)."""
    thresholds = np.asarray(sweep["thresholds"])
    at = int(np.argmin(np.abs(thresholds - threshold)))  # the sweep holds the deployed threshold
    clean_t = np.asarray(sweep["clean_accuracy_with_detector"])
    out = {"ratios": [float(r) for r in ratios], "threshold": float(threshold), "attacks": {}}
    for label, acc in sweep["attacks"].items():
        adv_t = np.asarray(acc["accuracy_with_detector"])
        curve = {"with_detector": [], "classifier_only": [], "best_threshold_accuracy": [], "best_threshold": []}
        for r in ratios:
            overall = (1 - r) * clean_t + r * adv_t
            best = int(np.argmax(overall))
            curve["with_detector"].append(float(overall[at]))
            curve["classifier_only"].append(float((1 - r) * clean_accuracy + r * accuracy_on_adversarial[label]))
            curve["best_threshold_accuracy"].append(float(overall[best]))
            curve["best_threshold"].append(float(thresholds[best]))
        out["attacks"][label] = curve
    return out


def default_thresholds(scores: np.ndarray, threshold: float, num: int = 21) -> list[float]:
    """``num`` evenly spaced thresholds over the observed scores, plus the deployed one (sorted, unique)."""
    scores = np.asarray(scores, np.float64)
    lo, hi = (float(scores.min()), float(scores.max())) if scores.size else (threshold, threshold)
    grid = np.linspace(lo, hi, num) if hi > lo else np.array([lo])
    return sorted({float(t) for t in grid} | {float(threshold)})


# ----------------------------------------------------------------------------------------------------------
# Running the configured metrics


def check_inputs(metrics: Mapping[str, Any], train_ds) -> None:
    """Refuses metrics that need the training set when none was passed (naming the metric)."""
    if train_ds is not None:
        return
    for spec in metrics.values():
        if spec.name in TRAIN_DS_METRICS or (spec.name == "transfer" and spec.params["source"] == "standard"):
            raise ValueError(f"{spec.where}: {spec.name} needs the training set: call evaluate(..., "
                             "train_ds=train_ds) (experiment.run does)")


def _logits_fn(session, key, adaptive: bool):
    return session.target.attack_logits_fn(session.state, key, adaptive=adaptive, two_args=False)


def _examples(session, params) -> int:
    return session.n if not params["num_examples"] else min(int(params["num_examples"]), session.n)


def _concat(parts):
    return np.concatenate(parts) if parts else np.zeros(0)


class _MinimalFgsm:
    """The minimal-FGSM examples, computed once per (eps_max, num_grid, num_bisection, adaptive, n)."""

    def __init__(self):
        self.cache = {}

    def __call__(self, session, params, key):
        m = _examples(session, params)
        cfg = (params["eps_max"], params["num_grid"], params["num_bisection"], params["adaptive"], m)
        if cfg not in self.cache:
            bounds = session.bounds

            @xla.jit
            def fn(state, x, k):
                f = session.target.attack_logits_fn(state, k, adaptive=params["adaptive"], two_args=False)
                x_adv, eps, flipped = minimal_fgsm_perturbation(
                    f, x, eps_max=params["eps_max"], num_grid=params["num_grid"],
                    num_bisection=params["num_bisection"], bounds=bounds)
                return x_adv, eps, flipped

            xs, advs, eps, flipped = [], [], [], []
            for b, batch in enumerate(session.batches(m)):
                mask = np.asarray(batch["mask"])
                x_adv, e, fl = fn(session.state, batch["image"], jax.random.fold_in(key, b))
                xs.append(np.asarray(batch["image"])[mask])
                advs.append(np.asarray(x_adv)[mask])
                eps.append(np.asarray(e)[mask])
                flipped.append(np.asarray(fl)[mask])
                session.progress.update()
            self.cache[cfg] = (_concat(xs), _concat(advs), _concat(eps), _concat(flipped).astype(bool))
        return self.cache[cfg]


def _empirical_robustness(session, params, key, minimal):
    x, x_adv, eps, flipped = minimal(session, params, key)
    dx_norm = np.linalg.norm(_flat(x_adv - x).astype(np.float64), axis=1)
    ratio = dx_norm / np.maximum(np.linalg.norm(_flat(x).astype(np.float64), axis=1), 1e-12)
    ok = flipped & (np.abs(_flat(x)).sum(1) > 0)
    return {"value": float(ratio[ok].mean()) if ok.any() else None,
            "median": float(np.median(ratio[ok])) if ok.any() else None,
            "flipped": float(flipped.mean()), "mean_eps": float(eps[flipped].mean()) if flipped.any() else None,
            "eps_max": params["eps_max"], "num_examples": len(x)}


def _train_distance(session, params, key, minimal):
    if params["attack"] == "minimal_fgsm":
        x, x_adv, _, flipped = minimal(session, params, key)
        adv, clean, m = x_adv[flipped], x[flipped], len(x)
    else:
        run = session.runs[params["attack"]]
        m = _examples(session, params)
        success = (session.clean_correct & ~run.adv_correct)[:m]
        adv = run.x_adv[:m][success]
        clean = session.ds.get(np.arange(m))["image"][success]
    chunk = params["chunk_size"]
    d_adv = train_set_distance(adv, session.train_ds, chunk_size=chunk)
    d_clean = train_set_distance(clean, session.train_ds, chunk_size=chunk)
    return {"value": float(d_adv.mean()) if len(d_adv) else None,
            "clean_value": float(d_clean.mean()) if len(d_clean) else None,
            "count": int(len(d_adv)), "num_train": len(session.train_ds), "attack": params["attack"],
            "num_examples": m}


def _loss_sensitivity(session, params, key):
    m = _examples(session, params)

    @xla.jit
    def fn(state, x, y, k):
        f = session.target.attack_logits_fn(state, k, adaptive=params["adaptive"], two_args=False)
        return loss_gradient_norms(f, x, y)

    norms = []
    for b, batch in enumerate(session.batches(m)):
        norms.append(np.asarray(fn(session.state, batch["image"], batch["label"], jax.random.fold_in(key, b)))[
            np.asarray(batch["mask"])])
        session.progress.update()
    norms = _concat(norms)
    return {"value": float(norms.mean()), "median": float(np.median(norms)), "num_examples": m}


def _rho_adv(session, params, key):
    m = _examples(session, params)
    lo, hi = session.bounds
    dim = int(np.prod(session.ds.element_shape))
    eps_hi = params["eps_hi"] or ((hi - lo) * float(np.sqrt(dim)) if params["norm"] == "l2" else hi - lo)
    atk = attacks_lib.resolve({"attack": "pgd", "norm": params["norm"], "rel_step_size": params["rel_step_size"],
                               "num_steps": params["num_steps"], "random_start": False, "loss": params["loss"]},
                              require_eps=False)
    bounds = session.bounds

    @xla.jit
    def fn(state, x, k):
        k_draw, k_search = jax.random.split(k)
        f = session.target.attack_logits_fn(state, k_draw, adaptive=params["adaptive"], two_args=False)
        pred = jnp.argmax(f(x), axis=-1)
        pgd = lambda f_, x_, y_, k_, eps: atk(f_, x_, y_, k_, eps=eps, bounds=bounds)  # noqa: E731
        return attacks_lib.minimal_eps(pgd, f, x, pred, k_search, eps_hi=eps_hi, num_steps=params["num_bisection"],
                                       bounds=bounds)

    found = []
    for b, batch in enumerate(session.batches(m)):
        eps = np.asarray(fn(session.state, batch["image"], jax.random.fold_in(key, b)))
        found.append(eps[np.asarray(batch["mask"])])
        session.progress.update()
    found = _concat(found)
    not_flipped = ~np.isfinite(found)
    delta = np.where(not_flipped, eps_hi, found)
    return {"value": float(delta.mean()), "median": float(np.median(delta)),
            "not_flipped": float(not_flipped.mean()), "lower_bound": bool(not_flipped.any()),
            "precision": float(eps_hi / 2 ** params["num_bisection"]), "eps_hi": float(eps_hi),
            "norm": params["norm"], "loss": params["loss"], "num_examples": m}


def _transfer(session, params, key):
    from robustjax.evaluate import transfer

    return transfer.transfer_metric(session, params, key)


def run(session, metrics: Mapping[str, Any], key) -> dict:
    """Runs every configured metric (``{label: MetricSpec}``) on ``session``; returns ``{label: result}``."""
    minimal = _MinimalFgsm()
    out = {}
    for k, (label, spec) in enumerate(metrics.items()):
        session.progress.stage(f"metric {label}")
        mkey = jax.random.fold_in(key, k)
        params = dict(spec.params)
        if spec.name in ("empirical_robustness", "train_distance"):
            # One minimal-FGSM run serves both metrics when their search settings agree.
            mkey = jax.random.fold_in(key, 10_000)
        if spec.name == "empirical_robustness":
            result = _empirical_robustness(session, params, mkey, minimal)
        elif spec.name == "train_distance":
            result = _train_distance(session, params, mkey, minimal)
        elif spec.name == "loss_sensitivity":
            result = _loss_sensitivity(session, params, mkey)
        elif spec.name == "rho_adv":
            result = _rho_adv(session, params, mkey)
        elif spec.name == "transfer":
            result = _transfer(session, params, mkey)
        else:  # specs.METRIC_FIELDS and this table are kept in step by a test
            raise ValueError(f"{spec.where}.metric: {spec.name!r} has no implementation")
        out[label] = {"metric": spec.name, **result}
        value = result.get("value")
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"[robustjax] metric {label} ({spec.name}): {shown}", flush=True)
    return out


def black_box_curves(results: Mapping[str, dict]) -> dict:
    """The curves of the ``transfer`` metrics that have an ``eps_grid``, in the suite's curve format
    (``{label: {"attack", "norm", "points", "black_box": True, "source"}}``), so that the report, its figure and the
    cross-run comparison draw them beside the white-box curves. A black-box point has no budget check of its own
    (the source's attack is the suite's), hence no ``budget_violations``."""
    out = {}
    for label, r in results.items():
        if r.get("metric") == "transfer" and r.get("curve"):
            source = "a standard model" if r["source"] == "standard" else os.path.basename(os.path.normpath(r["source"]))
            out[label] = {"attack": f"{r['attack']}, black-box from {source}", "norm": r["norm"],
                          "points": [{"eps": p["eps"], "robust_accuracy": p["robust_accuracy"],
                                      "accuracy_on_adversarial": p["accuracy_on_adversarial"]} for p in r["curve"]],
                          "black_box": True, "source": r["source"]}
    return out


IMPLEMENTED = ("empirical_robustness", "train_distance", "loss_sensitivity", "rho_adv", "transfer")


def detector_curves(session, detector_cfg: Mapping[str, Any]) -> dict:
    """``threshold_sweep`` and ``ratio_curves`` of a defense with a detector, from the suite's attacks."""
    det = session.target.detector
    adversarial = {label: (run.scores, run.adv_correct) for label, run in session.runs.items()}
    every = np.concatenate([session.clean_scores] + [s for s, _ in adversarial.values()])
    thresholds = list(detector_cfg["thresholds"]) or default_thresholds(every, det.threshold)
    if float(det.threshold) not in thresholds:
        thresholds = sorted(set(thresholds) | {float(det.threshold)})
    sweep = threshold_sweep(session.clean_scores, session.clean_correct, adversarial, thresholds)
    acc_adv = {label: float(run.adv_correct.mean()) for label, run in session.runs.items()}
    curves = ratio_curves(sweep, det.threshold, float(session.clean_correct.mean()), acc_adv, detector_cfg["ratios"])
    return {"threshold_sweep": sweep, "ratio_curves": curves}


# ----------------------------------------------------------------------------------------------------------
# Report section


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


_DESCRIPTIONS = {
    "empirical_robustness": "mean ||dx_min||_2 / ||x||_2, incremental minimal FGSM (Zantedeschi et al. Eq. 2)",
    "train_distance": "mean L2 distance of adversarial examples to their nearest training image (Zantedeschi et al.)",
    "loss_sensitivity": "mean ||grad_x J||_2 over test points (Zantedeschi et al., local loss sensitivity)",
    "rho_adv": "mean minimal perturbation that changes the prediction, PGD + bisection (BCGAN Eq. 9-10)",
    "transfer": "accuracy on adversarial examples crafted on a surrogate (black-box transfer)",
}


def markdown(results: dict) -> list[str]:
    """The report's lines for: minimal-perturbation statistics, the configured metrics and the detector
    curves (both accuracies of every attack and curve point are in the headline and curve tables). ``[]`` when there is nothing to add."""
    lines: list[str] = []
    attacks = results.get("attacks") or {}
    minimal = {k: r for k, r in attacks.items() if "success_rate" in r}
    if minimal:
        lines += ["## Minimal perturbations", "",
                  "Over successful adversarial examples (correct clean, wrong after). Mean L2 is the PGN "
                  "paper's rho (Eq. 6); for C&W-L2 it is rho_cw.", "",
                  "| attack | success rate | mean L2 (rho) | median L2 | mean Linf | median Linf |",
                  "|---|---|---|---|---|---|"]
        for label, r in minimal.items():
            name = f"{label} ({r['attack']}{', rho_cw' if r['attack'] == 'cw_l2' else ''})"
            lines.append(f"| {name} | {_fmt(r['success_rate'])} | {_fmt(r.get('mean_l2'))} | "
                         f"{_fmt(r.get('median_l2'))} | {_fmt(r.get('mean_linf'))} | {_fmt(r.get('median_linf'))} |")
        lines.append("")
        radii = {k: r for k, r in minimal.items() if r.get("at_radius")}
        if radii:
            lines += ["Accuracy at a radius from the minimal perturbations (fooled at r: fooled by a perturbation "
                      "of norm <= r):", "", "| attack | radius | robust accuracy | accuracy on adversarial |",
                      "|---|---|---|---|"]
            for label, r in radii.items():
                for p in r["at_radius"]:
                    lines.append(f"| {label} | {p['radius']:g} | {_fmt(p['robust_accuracy'])} | "
                                 f"{_fmt(p['accuracy_on_adversarial'])} |")
            lines.append("")
    metrics = results.get("metrics") or {}
    if metrics:
        lines += ["## Metrics", "", "| metric | value | details |", "|---|---|---|"]
        for label, m in metrics.items():
            details = ", ".join(f"{k}={_fmt(v)}" for k, v in m.items() if k not in ("metric", "value"))
            lines.append(f"| {label}: {_DESCRIPTIONS.get(m['metric'], m['metric'])} | {_fmt(m.get('value'))} | "
                         f"{details} |")
        lines.append("")
    det = results.get("detector") or {}
    if det.get("ratio_curves"):
        rc = det["ratio_curves"]
        lines += [f"## Detector: overall accuracy against the share rho of adversarial inputs (threshold "
                  f"{rc['threshold']:g})", "",
                  "Scoring rule: a flagged adversarial input counts as handled, a flagged clean input as an error, "
                  "an unflagged input is judged by the classifier (GanDef Fig. 4). Data: results.json "
                  "detector.ratio_curves and detector.threshold_sweep.", "",
                  "| attack | rho | with detector | classifier only | best threshold (accuracy) |", "|---|---|---|---|---|"]
        for label, c in rc["attacks"].items():
            for i, r in enumerate(rc["ratios"]):
                if i % max(1, len(rc["ratios"]) // 5) and i != len(rc["ratios"]) - 1:
                    continue
                lines.append(f"| {label} | {r:g} | {_fmt(c['with_detector'][i])} | {_fmt(c['classifier_only'][i])} | "
                             f"{c['best_threshold'][i]:.4g} ({_fmt(c['best_threshold_accuracy'][i])}) |")
        lines.append("")
    return lines
