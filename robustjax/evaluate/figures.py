"""The figures of a run: what each one shows, the arrays behind it, and the drawing.

    data = figures.compute(defense, state, test_ds, config.eval, key, bounds=info.bounds,
                           pictures=results["_pictures"], results=results)
    paths = figures.draw(workdir, results, data, names=config.eval.figures)   # {name: path of its PNG}

``config.eval.figures`` names the figures a run draws (``FIGURES``; the default is all of them, each
affordable on 2 CPU cores at the default settings); a figure with nothing to show (no curves, a defense
without a generator, 2-D toy data) is skipped. ``compute`` needs the model (gradients, predictions,
attacks) and returns plain numpy arrays; ``draw`` needs only those arrays, ``results`` and the workdir's
``metrics.jsonl``. ``report.write`` saves the arrays as ``figures.npz`` (``save`` / ``load``), so the
cross-run report (``python -m robustjax.report``) can lay several runs side by side without their models.

The figures (file, what it shows):

- ``curves`` (``curves.png``): every robustness curve of ``config.eval.curves``: robust accuracy (solid)
  and, when the curve has it, accuracy on adversarial examples (dashed) against eps; clean accuracy dotted.
- ``examples`` (``examples.png``): per attack, a few clean test images with the label and the clean
  prediction, the adversarial images with their predictions (red: wrong), and the perturbation
  ``x_adv - x`` magnified so that its largest entry spans the grey range (0.5 = no change).
- ``training`` (``training.png``): every metric of ``metrics.jsonl`` (losses, accuracies, eps, ...) against
  the global step, one panel per metric, one line per phase; dotted lines where a phase starts.
- ``saliency`` (``saliency.png``): ATGAN's Figs. 5-7 for one run: the images (left block) and their
  saliency maps ``|d loss / d x|`` (right block, max over channels, each map scaled to its own maximum)
  for clean inputs (first row) and adversarial inputs at each test eps (one row per eps); columns are test
  examples. The attack and eps come from ``config.eval.saliency``: ``attack`` names an entry of
  ``config.eval.curves`` or ``config.eval.attacks`` ("" = the first curve, else the first budget attack);
  ``eps`` lists the radii ([] = the curve's grid without 0, at most 6 of them; for an attack, the eps of
  every attack in the suite with its norm). ``num_images`` test images.
- ``decision_plane`` (``decision_plane.png``): the decision regions around ``num_images`` test images in
  the plane of Wu et al. (2018), as the BCGAN paper's Fig. 4 draws them: the horizontal axis is the
  smoothed gradient ``G = mean_i grad_x loss(x + xi_i)`` over ``m`` Gaussian draws ``xi_i ~ N(0, sigma^2)``
  (normalised to unit L2 length), the vertical axis a ``direction`` orthogonal to it: "random" (a random
  direction made orthogonal to G) or "gradient" (Wu et al.'s ``h = g - <g, G^> G^``, the plain gradient's
  part orthogonal to G). Each grid point ``clip(x + u G^ + v h^)`` is coloured by the deployed classifier's
  prediction; ``u, v`` run over ``[-scale, scale]`` (L2 pixel units) on a ``resolution`` x ``resolution``
  grid (odd, so the centre is the image itself). ``scale = 0`` picks 1.5x the L2 length of the largest
  perturbation the suite allows (an L-inf eps reaches ``eps * sqrt(H W C)``). The black contour is the
  plane's section of that largest threat ball.
- ``samples`` (``samples.png``): for a defense with a generator: its samples (``Defense.samples``), and
  for an image-to-image generator (``Defense.reconstruct``; ATGAN's G) the clean images, ``G(x)``, the
  adversarial images of the suite's strongest attack, and ``G(x_adv)``, each with the prediction.

Gradients (saliency, decision plane) are those an attacker differentiates (``defense.attack_model``: the
BPDA surrogate where there is one) of the cross-entropy at the true label; predictions are the deployed
classifier's (``defense.classifier``). A randomised classifier is drawn once per call from the key.
All drawing uses matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

FIGURES = ("curves", "examples", "training", "saliency", "decision_plane", "samples")
FILES = {name: f"{name}.png" for name in FIGURES}
DATA_FILE = "figures.npz"

# The defaults of config.eval.{figures,saliency,decision_plane} (robustjax.config.base_config holds the
# same values; tests/test_figures.py checks that they agree).
DEFAULTS: dict[str, Any] = {
    "figures": list(FIGURES),
    "saliency": {"num_images": 4, "attack": "", "eps": []},
    "decision_plane": {"num_images": 2, "sigma": 0.05, "m": 32, "scale": 0.0, "resolution": 41,
                       "direction": "random"},
}
DIRECTIONS = ("random", "gradient")
MAX_SALIENCY_EPS = 6
_BOOKKEEPING = ("phase", "phase_index", "step", "global_step", "steps_per_sec")


# ---------------------------------------------------------------------------------------------------------
# Config


def _plain(node: Any) -> Any:
    return node.to_dict() if hasattr(node, "to_dict") else node


def options(eval_cfg: Any) -> dict[str, Any]:
    """``config.eval``'s figure fields as plain values, defaults filled in for missing ones."""
    eval_cfg = _plain(eval_cfg) or {}
    out = {"figures": list(eval_cfg.get("figures", DEFAULTS["figures"]))}
    for section in ("saliency", "decision_plane"):
        out[section] = {**DEFAULTS[section], **dict(_plain(eval_cfg.get(section, {})) or {})}
    return out


def _fail(field: str, problem: str) -> None:
    raise ValueError(f"config.eval.{field}: {problem}")


def _check_int(field: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(field, f"must be an integer >= {low}, got {value!r}")


def _check_number(field: str, value: Any, *, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        _fail(field, f"must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def check_config(eval_cfg: Any) -> None:
    """Checks ``config.eval.figures``, ``.saliency`` and ``.decision_plane``; a ValueError names the field.

    (``config.validate`` calls it; the attack a saliency figure names is checked against the suite's specs.)
    """
    raw = _plain(eval_cfg) or {}
    names = raw.get("figures", DEFAULTS["figures"])
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        _fail("figures", f"must be a list of figure names from {list(FIGURES)}, got {names!r}")
    for i, name in enumerate(names):
        if name not in FIGURES:
            close = difflib.get_close_matches(str(name), FIGURES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"figures[{i}]", f"{name!r} is not a figure{hint}; valid: {list(FIGURES)}")
    for section in ("saliency", "decision_plane"):
        given = dict(_plain(raw.get(section, {})) or {})
        unknown = sorted(set(given) - set(DEFAULTS[section]))
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(DEFAULTS[section]), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"{section}.{unknown[0]}", f"unknown field{hint}; valid fields are {sorted(DEFAULTS[section])}")
    opts = options(raw)
    s, p = opts["saliency"], opts["decision_plane"]
    _check_int("saliency.num_images", s["num_images"], 1)
    if not isinstance(s["attack"], str):
        _fail("saliency.attack", f"must be the label of a curve or an attack (or ''), got {s['attack']!r}")
    labels = set(_plain(raw.get("curves", {})) or {}) | set(_plain(raw.get("attacks", {})) or {})
    if s["attack"] and s["attack"] not in labels:
        close = difflib.get_close_matches(s["attack"], sorted(labels), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail("saliency.attack", f"{s['attack']!r} is neither in config.eval.curves nor in config.eval.attacks{hint}; "
              f"valid: {sorted(labels)} or '' (the first curve, else the first budget attack)")
    eps = s["eps"]
    if isinstance(eps, (str, bytes)) or not hasattr(eps, "__iter__"):
        _fail("saliency.eps", f"must be a list of radii (or [] for the curve's grid), got {eps!r}")
    for i, e in enumerate(eps):
        _check_number(f"saliency.eps[{i}]", e)
    _check_int("decision_plane.num_images", p["num_images"], 1)
    _check_number("decision_plane.sigma", p["sigma"])
    _check_int("decision_plane.m", p["m"], 1)
    _check_number("decision_plane.scale", p["scale"])
    _check_int("decision_plane.resolution", p["resolution"], 3)
    if p["resolution"] % 2 == 0:
        _fail("decision_plane.resolution", f"must be odd (the centre point is the image itself), got {p['resolution']}")
    if p["direction"] not in DIRECTIONS:
        _fail("decision_plane.direction", f"{p['direction']!r} is not one of {DIRECTIONS}")


# ---------------------------------------------------------------------------------------------------------
# Computing the arrays (needs the model)


def _chunked(fn: Callable, arrays: Sequence[np.ndarray], chunk: int) -> np.ndarray:
    """``fn(*chunks)`` over the leading axis in pieces of exactly ``chunk`` (the last one padded), so a
    jitted ``fn`` compiles once; the results concatenated (padding dropped)."""
    n = len(arrays[0])
    outs = []
    for start in range(0, n, chunk):
        parts = [a[start:start + chunk] for a in arrays]
        real = len(parts[0])
        if real < chunk:
            parts = [np.concatenate([p, np.repeat(p[-1:], chunk - real, axis=0)]) for p in parts]
        outs.append(np.asarray(fn(*parts))[:real])
    return np.concatenate(outs)


class _Model:
    """The jitted pieces the figures need: predictions (deployed classifier) and input gradients of the
    cross-entropy (what an attacker differentiates), both with a fixed draw for a randomised classifier."""

    def __init__(self, defense, state, key):
        import jax
        import jax.numpy as jnp
        import optax

        from robustjax import xla
        from robustjax.evaluate.suite import Target

        self.target = Target.of(defense)
        self.state, self.key = state, key
        target = self.target

        def predict(state, x, key):
            return jnp.argmax(target.logits(state, x, key), axis=-1)

        def grad(state, x, y, key):
            logits_fn = target.attack_logits_fn(state, key, adaptive=True, two_args=False)
            loss = lambda z: optax.softmax_cross_entropy_with_integer_labels(logits_fn(z), y).sum()  # noqa: E731
            return jax.grad(loss)(x)

        self._predict, self._grad = xla.jit(predict), xla.jit(grad)
        self._num_classes = None

    def num_classes(self, x: np.ndarray) -> int:
        """K, from the shape of the classifier's logits on ``x`` (no computation)."""
        import jax

        if self._num_classes is None:
            out = jax.eval_shape(lambda z: self.target.logits(self.state, z, self.key), x[:1])
            self._num_classes = int(out.shape[-1])
        return self._num_classes

    # One batch size for every call (padded), so each function compiles once per run.
    CHUNK = 64

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _chunked(lambda z: self._predict(self.state, z, self.key), [x], self.CHUNK)

    def grad(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _chunked(lambda z, t: self._grad(self.state, z, t, self.key), [x, y], self.CHUNK)


def threat(eval_cfg: Any) -> tuple[str, float] | None:
    """``(norm, eps)`` of the largest perturbation the suite allows: the budget attack (or curve point)
    with the largest eps, L-inf preferred over L2 when both occur; None without any budget attack."""
    from robustjax.evaluate import specs as specs_lib

    attack_specs, curve_specs = specs_lib.resolve(eval_cfg)
    found: dict[str, float] = {}
    for atk, _ in attack_specs.values():
        if atk.budget and atk.eps is not None and math.isfinite(float(atk.eps)):
            found[atk.norm] = max(found.get(atk.norm, 0.0), float(atk.eps))
    for atk, _, grid in curve_specs.values():
        finite = [e for e in grid if math.isfinite(e)]
        if finite:
            found[atk.norm] = max(found.get(atk.norm, 0.0), max(finite))
    for norm in ("linf", "l2"):
        if found.get(norm, 0.0) > 0:
            return norm, found[norm]
    return None


def _l2_reach(norm: str, eps: float, dim: int) -> float:
    return eps * math.sqrt(dim) if norm == "linf" else eps


def _numpy_rng(key) -> np.random.Generator:
    import jax

    data = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
    return np.random.default_rng(data.astype(np.uint32).ravel().tolist())


def decision_plane(model: _Model, x: np.ndarray, y: np.ndarray, key, *, sigma: float, m: int, scale: float,
                   resolution: int, direction: str = "random", bounds=(0.0, 1.0),
                   threat_ball: tuple[str, float] | None = None) -> dict[str, np.ndarray]:
    """The decision regions around each image of ``x`` (see the module docstring).

    Returns ``{"images" [N,H,W,C], "labels" [N], "pred" [N] (at the image), "grid" [R] (u = v values),
    "classes" [N, R, R] (row i: v = grid[i]; column j: u = grid[j]), "ball" [N, R, R] (the norm of each
    grid perturbation in the threat's norm; NaN without a threat), "threat_eps", "scale", "sigma", "m",
    "grad_norm" [N] (the smoothed gradient's L2 length; 0 means its direction was drawn at random),
    "u_dir", "v_dir" [N, H*W*C] (the plane's two unit directions)}``.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    n, shape = len(x), x.shape[1:]
    dim = int(np.prod(shape))
    rng = _numpy_rng(key)  # host-side draws: no compilation per shape
    lo, hi = bounds
    noise = (sigma * rng.standard_normal((m, n) + shape)).astype(np.float32)
    noisy = np.clip(x[None] + noise, lo, hi).reshape((m * n,) + shape)
    grads = model.grad(noisy, np.tile(y, m)).reshape((m, n, dim)).mean(axis=0).astype(np.float64)
    grad_norm = np.linalg.norm(grads, axis=1)
    g1 = np.where(grad_norm[:, None] > 0, grads, rng.standard_normal((n, dim)))  # flat loss: a random axis
    g1 /= np.linalg.norm(g1, axis=1, keepdims=True)
    random = rng.standard_normal((n, dim))
    second = model.grad(x, y).reshape(n, dim).astype(np.float64) if direction == "gradient" else random.copy()
    second = second - (second * g1).sum(1, keepdims=True) * g1
    tiny = np.linalg.norm(second, axis=1) < 1e-9 * np.sqrt(dim)  # a gradient parallel to G, or zero
    if tiny.any():
        r = random - (random * g1).sum(1, keepdims=True) * g1
        second[tiny] = r[tiny]
    h = second / np.linalg.norm(second, axis=1, keepdims=True)
    grid = np.linspace(-scale, scale, resolution)
    vv, uu = np.meshgrid(grid, grid, indexing="ij")             # [R, R]: row = v, column = u
    delta = uu[None, :, :, None] * g1[:, None, None, :] + vv[None, :, :, None] * h[:, None, None, :]
    points = np.clip(x.reshape(n, 1, 1, dim) + delta, lo, hi).astype(np.float32)
    classes = model.predict(points.reshape((n * resolution * resolution,) + shape))
    if threat_ball is not None:
        norm, eps = threat_ball
        ball = (np.abs(delta).max(-1) if norm == "linf" else np.sqrt(uu ** 2 + vv ** 2)[None].repeat(n, 0))
        threat_eps = float(eps)
    else:
        ball, threat_eps = np.full((n, resolution, resolution), np.nan), float("nan")
    return {
        "images": x, "labels": y, "pred": model.predict(x), "grid": grid.astype(np.float32),
        "classes": classes.reshape(n, resolution, resolution).astype(np.int32),
        "ball": np.asarray(ball, np.float32), "threat_norm": np.asarray(threat_ball[0] if threat_ball else ""),
        "threat_eps": np.float32(threat_eps), "scale": np.float32(scale), "sigma": np.float32(sigma),
        "m": np.int32(m), "direction": np.asarray(direction), "grad_norm": grad_norm.astype(np.float32),
        "num_classes": np.int32(model.num_classes(x)),
        "u_dir": g1.astype(np.float32), "v_dir": h.astype(np.float32),
    }


def _saliency_source(eval_cfg: Any, opts: dict) -> tuple[str, Any, list[float]] | None:
    """(label, Attack, test eps) for the saliency figure, or None when the suite has no budget attack."""
    from robustjax.evaluate import specs as specs_lib

    attack_specs, curve_specs = specs_lib.resolve(eval_cfg)
    label = opts["attack"]
    chosen = None
    if label:
        if label in curve_specs:
            chosen = (label, curve_specs[label][0], [e for e in curve_specs[label][2] if e > 0])
        elif label in attack_specs and attack_specs[label][0].takes_eps:
            atk = attack_specs[label][0]
            chosen = (label, atk, sorted({float(a.eps) for a, _ in attack_specs.values()
                                          if a.budget and a.norm == atk.norm and a.eps is not None}))
    elif curve_specs:
        first = sorted(curve_specs)[0]
        chosen = (first, curve_specs[first][0], [e for e in curve_specs[first][2] if e > 0])
    else:
        budget = [lbl for lbl in sorted(attack_specs) if attack_specs[lbl][0].budget]
        if budget:
            atk = attack_specs[budget[0]][0]
            chosen = (budget[0], atk, sorted({float(a.eps) for a, _ in attack_specs.values()
                                              if a.budget and a.norm == atk.norm and a.eps is not None}))
    if chosen is None:
        return None
    label, atk, grid = chosen
    eps = [float(e) for e in opts["eps"]] or [e for e in grid if math.isfinite(e)]
    if not opts["eps"] and len(eps) > MAX_SALIENCY_EPS:  # evenly spread, keeping the largest
        idx = np.unique(np.round(np.linspace(0, len(eps) - 1, MAX_SALIENCY_EPS)).astype(int))
        eps = [eps[i] for i in idx]
    return label, atk, eps


def saliency(model: _Model, atk, x: np.ndarray, y: np.ndarray, eps_list: Sequence[float], key, *,
             bounds=(0.0, 1.0)) -> dict[str, np.ndarray]:
    """Images and saliency maps ``|d CE / d x|`` (max over channels) for clean ``x`` and for ``atk``'s
    adversarial examples at each eps of ``eps_list``.

    Returns ``{"eps" [E] (the test eps; row 0 of the other arrays is the clean input), "images"
    [E+1, N, H, W, C], "saliency" [E+1, N, H, W], "pred" [E+1, N], "labels" [N], "attack": name}``.
    """
    import jax
    import jax.numpy as jnp

    from robustjax import xla

    from robustjax.evaluate.suite import _EOT_ATTACKS

    target, bounds = model.target, tuple(bounds)
    two_args = atk.name in _EOT_ATTACKS and bool(atk.kwargs.get("stochastic", False))  # averages over draws

    def run(state, x, y, key, eps):
        k_draw, k_attack = jax.random.split(key)
        logits_fn = target.attack_logits_fn(state, k_draw, adaptive=True, two_args=two_args)
        return atk(logits_fn, x, y, k_attack, eps=eps, bounds=bounds)

    attack = xla.jit(run)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    images = [x]
    for i, eps in enumerate(eps_list):
        images.append(np.asarray(attack(model.state, x, y, jax.random.fold_in(key, i), jnp.float32(eps))))
    images = np.stack(images)
    flat = images.reshape((-1,) + x.shape[1:])
    grads = model.grad(flat, np.tile(y, len(images)))
    maps = np.abs(grads).max(axis=-1).reshape(images.shape[:-1])
    return {"eps": np.asarray(eps_list, np.float32), "images": images, "saliency": maps.astype(np.float32),
            "pred": model.predict(flat).reshape(images.shape[:2]).astype(np.int32), "labels": y,
            "attack": np.asarray(atk.name)}


def compute(defense, state, test_ds, eval_cfg, key, *, bounds=(0.0, 1.0), pictures: Mapping | None = None,
            results: Mapping | None = None) -> dict[str, dict[str, np.ndarray]]:
    """The arrays behind the figures ``config.eval.figures`` names that need the model.

    Args:
      defense: the ``Defense`` (or ``state -> logits_fn``), as for ``suite.evaluate``.
      state: the trained state.
      test_ds: the test split (``ArrayDataset``); figures use its first images.
      eval_cfg: ``config.eval``.
      key: a PRNG key (same key, same figures).
      bounds: the pixel range.
      pictures: the suite's ``results["_pictures"]`` (``{label: (x, x_adv, y, pred)}``): the examples
        figure gets their clean predictions, the generator figure their ``G(x)`` and ``G(x_adv)``.
      results: the suite's results (picks the strongest attack for the generator figure).

    Returns:
      ``{figure: {name: array}}`` for ``examples``, ``saliency``, ``decision_plane``, ``samples`` when
      selected and drawable (images only: nothing for 2-D toy data).
    """
    import jax

    opts = options(eval_cfg)
    names = set(opts["figures"])
    out: dict[str, dict[str, np.ndarray]] = {}
    if np.asarray(test_ds.images).ndim != 4 or not names & {"examples", "saliency", "decision_plane", "samples"}:
        return out
    model = _Model(defense, state, jax.random.fold_in(key, 0))
    pictures = {k: v for k, v in (pictures or {}).items() if np.asarray(v[0]).ndim == 4 and len(v[0])}
    if "examples" in names and pictures:
        first = next(iter(pictures.values()))
        out["examples"] = {"clean_pred": model.predict(np.asarray(first[0], np.float32)).astype(np.int32)}
    if "saliency" in names:
        source = _saliency_source(eval_cfg, opts["saliency"])
        if source is not None and source[2]:
            label, atk, eps = source
            batch = test_ds.get(np.arange(min(opts["saliency"]["num_images"], len(test_ds))))
            data = saliency(model, atk, batch["image"], batch["label"], eps, jax.random.fold_in(key, 1),
                            bounds=bounds)
            out["saliency"] = {**data, "source": np.asarray(label)}
    if "decision_plane" in names:
        p = opts["decision_plane"]
        batch = test_ds.get(np.arange(min(p["num_images"], len(test_ds))))
        ball = threat(eval_cfg)
        scale = float(p["scale"])
        if scale <= 0:
            dim = int(np.prod(batch["image"].shape[1:]))
            norm, eps = ball if ball is not None else ("linf", 0.1 * (bounds[1] - bounds[0]))
            scale = 1.5 * _l2_reach(norm, eps, dim)
        out["decision_plane"] = decision_plane(
            model, batch["image"], batch["label"], jax.random.fold_in(key, 2), sigma=float(p["sigma"]),
            m=int(p["m"]), scale=scale, resolution=int(p["resolution"]), direction=p["direction"],
            bounds=bounds, threat_ball=ball)
    if "samples" in names:
        data = _generator_data(defense, state, model, pictures, results, jax.random.fold_in(key, 3))
        if data:
            out["samples"] = data
    return out


def _generator_data(defense, state, model: _Model, pictures: Mapping, results: Mapping | None, key) -> dict:
    from robustjax import xla

    data: dict[str, np.ndarray] = {}
    sampler = getattr(defense, "samples", None)
    if sampler is not None:
        data["samples"] = np.asarray(sampler(state, key, 16), np.float32)
    reconstruct = getattr(defense, "reconstruct", None)
    if reconstruct is not None and pictures:
        attacks = (results or {}).get("attacks", {})
        label = min(pictures, key=lambda k: attacks.get(k, {}).get("accuracy_on_adversarial", 1.0))
        x, x_adv, y, _ = (np.asarray(a) for a in pictures[label])
        g = xla.jit(lambda state, z: reconstruct(state)(z))
        gx, gx_adv = np.asarray(g(state, x.astype(np.float32))), np.asarray(g(state, x_adv.astype(np.float32)))
        data.update(x=x, gx=gx, x_adv=x_adv, gx_adv=gx_adv, labels=y, attack=np.asarray(label),
                    pred=np.stack([model.predict(a.astype(np.float32)) for a in (x, x_adv)]).astype(np.int32))
    return data


# ---------------------------------------------------------------------------------------------------------
# Saving the arrays (for the cross-run report)


def save(path: str, data: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Writes ``{figure: {name: array}}`` as one npz (keys ``figure/name``)."""
    flat = {f"{fig}/{name}": np.asarray(v) for fig, d in data.items() for name, v in d.items()}
    np.savez_compressed(path, **flat)


def load(path: str) -> dict[str, dict[str, np.ndarray]]:
    """Reads what :func:`save` wrote ({} if the file does not exist)."""
    if not os.path.exists(path):
        return {}
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            fig, _, name = key.partition("/")
            out.setdefault(fig, {})[name] = z[key]
    return out


# ---------------------------------------------------------------------------------------------------------
# Drawing


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show(ax, img: np.ndarray, **kw) -> None:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        ax.imshow(img, cmap=kw.pop("cmap", "gray"), vmin=kw.pop("vmin", 0.0), vmax=kw.pop("vmax", 1.0),
                  interpolation="nearest", **kw)
    else:
        ax.imshow(np.clip(img, 0, 1), interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def _fmt_eps(eps: float) -> str:
    """0.0313725 -> '8/255'; 0.3 -> '0.3'."""
    k = eps * 255
    if eps > 0 and abs(k - round(k)) < 1e-3 and eps < 0.2 and round(k) not in (0,):
        return f"{int(round(k))}/255"
    return f"{eps:g}"


def class_colors(num_classes: int) -> np.ndarray:
    """``[K, 4]`` RGBA: one colour per class (tab10, tab20 beyond 10 classes, then hsv)."""
    plt = _plt()
    if num_classes <= 10:
        return plt.get_cmap("tab10")(np.arange(num_classes))
    if num_classes <= 20:
        return plt.get_cmap("tab20")(np.arange(num_classes))
    return plt.get_cmap("hsv")(np.linspace(0, 1, num_classes, endpoint=False))


def draw_curves(results: Mapping, path: str) -> str | None:
    curves = results.get("curves") or {}
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = plt.get_cmap("tab10")
    any_adv = False
    for i, (label, curve) in enumerate(curves.items()):
        eps = [p["eps"] for p in curve["points"]]
        color = colors(i % 10)
        ax.plot(eps, [p["robust_accuracy"] for p in curve["points"]], marker="^" if curve.get("black_box") else "o",
                color=color, lw=1.8,
                label=f"{label} ({curve['attack']}, {curve['norm']}): robust accuracy")
        adv = [p.get("accuracy_on_adversarial") for p in curve["points"]]
        if all(a is not None for a in adv):
            any_adv = True
            ax.plot(eps, adv, marker="s", ms=4, color=color, lw=1.2, ls="--",
                    label=f"{label}: accuracy on adversarial")
    if results.get("clean_accuracy") is not None:
        ax.axhline(results["clean_accuracy"], color="0.4", ls=":", lw=1,
                   label=f"clean accuracy {results['clean_accuracy']:.3f}")
    ax.set_xlabel("test eps (attack radius)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Robustness curves" + (" (solid: robust accuracy, dashed: accuracy on adversarial)" if any_adv else ""),
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1 if len(curves) < 3 else 2,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_examples(pictures: Mapping, path: str, clean_pred: np.ndarray | None = None,
                  results: Mapping | None = None, max_images: int = 8) -> str | None:
    """The clean images (label, clean prediction) once, then per attack two rows: the adversarial images
    with their predictions (red: wrong) and the perturbation magnified (0.5 grey = unchanged; the factor
    is in the row label). Attacks pictured on different images get a clean row each."""
    pictures = {k: v for k, v in (pictures or {}).items() if np.asarray(v[0]).ndim == 4 and len(v[0])}
    if not pictures:
        return None
    plt = _plt()
    n = min(max_images, min(len(v[0]) for v in pictures.values()))
    first = np.asarray(next(iter(pictures.values()))[0])[:n]
    shared = all(np.array_equal(np.asarray(v[0])[:n], first) for v in pictures.values())
    rows: list[tuple[str, str, Any]] = []  # (kind, label, data)
    for label, value in pictures.items():
        if not shared or not rows:
            rows.append(("clean", label, value))
        rows += [("adv", label, value), ("delta", label, value)]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n + 1.5, 1.45 * len(rows) + 0.4), squeeze=False)
    attacks = (results or {}).get("attacks", {})
    for r, (kind, label, (x, x_adv, y, pred)) in enumerate(rows):
        x, x_adv = np.asarray(x, np.float32)[:n], np.asarray(x_adv, np.float32)[:n]
        delta = x_adv - x
        peak = float(np.abs(delta).max())
        gain = 0.5 / peak if peak > 0 else 1.0
        info = attacks.get(label, {})
        for i in range(n):
            ax = axes[r, i]
            if kind == "clean":
                _show(ax, x[i])
                title = f"y={y[i]}" + (f" pred={clean_pred[i]}" if clean_pred is not None and shared else "")
                wrong = clean_pred is not None and shared and clean_pred[i] != y[i]
                ax.set_title(title, fontsize=7, color="red" if wrong else "black")
            elif kind == "adv":
                _show(ax, x_adv[i])
                ax.set_title(f"pred={pred[i]}", fontsize=7, color="red" if pred[i] != y[i] else "black")
            else:
                _show(ax, 0.5 + gain * delta[i])
                ax.set_title(f"max |d| {np.abs(delta[i]).max():.3g}", fontsize=6)
        if kind == "clean":
            axes[r, 0].set_ylabel("clean" if shared else f"clean\n({label})", fontsize=8)
        elif kind == "adv":
            eps = f"\neps {_fmt_eps(info['eps'])}" if info.get("eps") is not None else ""
            axes[r, 0].set_ylabel(f"{label}\n({info.get('attack', '?')}){eps}", fontsize=8)
        else:
            axes[r, 0].set_ylabel(f"x_adv - x\n(x{gain:.3g})", fontsize=8)
    fig.suptitle("Adversarial examples: clean, attacked (red = wrong prediction),\nperturbation magnified "
                 "(grey = unchanged)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_training(records: Sequence[Mapping], path: str) -> str | None:
    """One panel per logged metric against the global step; one line per phase."""
    metrics: list[str] = []
    for r in records:
        for k, v in r.items():
            if k not in _BOOKKEEPING and isinstance(v, (int, float)) and not isinstance(v, bool) and k not in metrics:
                metrics.append(k)
    if not metrics:
        return None
    metrics.sort(key=lambda k: (0 if "loss" in k else 1 if "acc" in k else 3 if k == "eps" else 2, k))
    phases: list[str] = []
    starts: dict[str, int] = {}
    for r in records:
        p = str(r.get("phase", ""))
        if p not in phases:
            phases.append(p)
            starts[p] = int(r.get("global_step", 0)) - int(r.get("step", 0))
    plt = _plt()
    ncols = min(4, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for idx, name in enumerate(metrics):
        ax = axes[idx // ncols, idx % ncols]
        for pi, phase in enumerate(phases):
            pts = [(r["global_step"], r[name]) for r in records if str(r.get("phase", "")) == phase and name in r]
            if pts:
                steps, values = zip(*pts)
                ax.plot(steps, values, color=colors(pi % 10), lw=1.4, marker="." if len(pts) < 30 else None,
                        label=phase)
        for phase in phases[1:]:
            ax.axvline(starts[phase], color="0.5", ls=":", lw=1)
        values = [r[name] for r in records if name in r]
        ax.ticklabel_format(axis="y", useOffset=False)
        if max(values) - min(values) <= 1e-6 * max(1.0, abs(max(values))):  # constant (up to float32 noise)
            mid = float(np.mean(values))
            ax.set_ylim(mid - max(0.5 * abs(mid), 0.5), mid + max(0.5 * abs(mid), 0.5))
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if idx // ncols == nrows - 1 or idx + ncols >= len(metrics):
            ax.set_xlabel("global step", fontsize=8)
    for idx in range(len(metrics), nrows * ncols):
        axes[idx // ncols, idx % ncols].axis("off")
    legend: dict[str, Any] = {}
    for ax in axes.flat:  # every phase once, whichever panel shows it
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if len(phases) > 1:
        fig.legend(list(legend.values()), [f"phase: {p}" for p in legend], loc="upper right", fontsize=8,
                   ncol=len(legend))
    fig.suptitle("Training (metrics.jsonl)", fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _norm_map(m: np.ndarray) -> np.ndarray:
    top = float(np.percentile(m, 99.5)) if m.size else 0.0
    return np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)


def draw_saliency(data: Mapping[str, np.ndarray], path: str, title: str = "") -> str | None:
    """Rows: clean, then each test eps; left block: the images, right block: their saliency maps."""
    if not data or "images" not in data:
        return None
    plt = _plt()
    images, maps, pred, labels = data["images"], data["saliency"], data["pred"], data["labels"]
    eps = [float(e) for e in data["eps"]]
    rows, n = images.shape[0], images.shape[1]
    fig, axes = plt.subplots(rows, 2 * n, figsize=(1.05 * 2 * n + 1.2, 1.15 * rows + 0.7), squeeze=False,
                             gridspec_kw={"wspace": 0.08, "hspace": 0.3})
    for r in range(rows):
        for i in range(n):
            a, s = axes[r, i], axes[r, n + i]
            _show(a, images[r, i])
            wrong = pred[r, i] != labels[i]
            a.set_title(f"pred {pred[r, i]}", fontsize=7, color="red" if wrong else "black", pad=2)
            _show(s, _norm_map(maps[r, i]), cmap="hot")
            if r == 0:
                s.set_title(f"saliency, y={labels[i]}", fontsize=7, pad=2)
        axes[r, 0].set_ylabel("clean" if r == 0 else f"eps {_fmt_eps(eps[r - 1])}", fontsize=8)
    attack = str(data.get("attack", ""))
    head = title or "Saliency maps |grad_x loss|"
    fig.suptitle(f"{head}: clean and adversarial ({attack}) inputs\nleft images, right saliency "
                 "(each map scaled to its own maximum)", fontsize=9, y=fig.subplotpars.top + 0.5 / fig.get_size_inches()[1])
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_decision_plane(data: Mapping[str, np.ndarray], path: str, num_classes: int | None = None,
                        titles: Sequence[str] | None = None) -> dict | None:
    """Top row: the images; bottom row: their decision planes (colour = predicted class).

    Returns ``{"path": path, "centres": [(col, row) pixel of each plane's origin in the PNG]}`` (tests
    read the PNG there), or None when there is nothing to draw.
    """
    if not data or "classes" not in data:
        return None
    plt = _plt()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    classes, grid, images = data["classes"], data["grid"], data["images"]
    n = classes.shape[0]
    k = int(num_classes or data.get("num_classes", 0) or max(int(classes.max()), int(np.max(data["labels"]))) + 1)
    colors = class_colors(k)
    cmap = ListedColormap(colors)
    s = float(data["scale"])
    fig, axes = plt.subplots(2, n, figsize=(3.4 * n, 6.0), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 2.6]})
    direction = str(data.get("direction", "random"))
    dpi = 100
    for i in range(n):
        _show(axes[0, i], images[i])
        wrong = int(data["pred"][i]) != int(data["labels"][i])
        head = titles[i] if titles else f"test image {i}"
        axes[0, i].set_title(f"{head}: y={int(data['labels'][i])}, pred={int(data['pred'][i])}", fontsize=8,
                             color="red" if wrong else "black")
        ax = axes[1, i]
        ax.imshow(classes[i], origin="lower", extent=(-s, s, -s, s), cmap=cmap, vmin=-0.5, vmax=k - 0.5,
                  interpolation="nearest", aspect="equal")
        ax.axhline(0, color="k", ls="--", lw=0.6)
        ax.axvline(0, color="k", ls="--", lw=0.6)
        ball = np.asarray(data["ball"][i], np.float64)
        eps = float(data["threat_eps"])
        if np.isfinite(eps) and np.nanmin(ball) < eps < np.nanmax(ball):
            ax.contour(grid, grid, ball, levels=[eps], colors="k", linewidths=1.2)
        ax.set_xlabel("u: smoothed gradient (L2)", fontsize=8)
        ax.set_ylabel(f"v: {'orthogonal gradient' if direction == 'gradient' else 'random orthogonal'} (L2)",
                      fontsize=8)
        ax.tick_params(labelsize=7)
    present = sorted(set(np.unique(classes).tolist()))
    fig.legend([Patch(color=colors[c]) for c in present], [f"class {c}" for c in present], loc="lower center",
               ncol=min(len(present), 10), fontsize=8, frameon=False)
    norm = str(data.get("threat_norm", ""))
    ball_note = f"; black: the {norm} ball of radius {_fmt_eps(float(data['threat_eps']))}" if norm else ""
    sep = "\n" if n < 2 else " "  # one narrow panel: one clause a line, or the title is cut off
    fig.suptitle(f"Decision regions around test images\n(Wu et al.'s plane: sigma {float(data['sigma']):g},"
                 f"{sep}m {int(data['m'])}{ball_note.replace('; ', ';' + sep)})", fontsize=9 if n > 1 else 8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95 if n > 1 else 0.91))
    fig.canvas.draw()
    height = fig.get_size_inches()[1] * dpi
    centres = []
    for i in range(n):
        x0, y0 = axes[1, i].transData.transform((0.0, 0.0)) * dpi / fig.dpi
        centres.append((float(x0), float(height - y0)))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return {"path": path, "centres": centres}


def draw_samples(data: Mapping[str, np.ndarray], path: str) -> str | None:
    """A generator's samples, and/or x, G(x), x_adv, G(x_adv) of an image-to-image generator."""
    if not data:
        return None
    plt = _plt()
    blocks = []
    if "x" in data:
        pred = data["pred"]
        blocks += [("clean x", data["x"], pred[0]), ("G(x)", data["gx"], None),
                   (f"x_adv ({data['attack']})", data["x_adv"], pred[1]), ("G(x_adv)", data["gx_adv"], None)]
    if "samples" in data:
        s = data["samples"]
        for start in range(0, len(s), 8):
            blocks.append(("samples" if start == 0 else "", s[start:start + 8], None))
    if not blocks:
        return None
    n = max(len(b[1]) for b in blocks)
    n = min(n, 8)
    fig, axes = plt.subplots(len(blocks), n, figsize=(1.2 * n + 1.2, 1.35 * len(blocks) + 0.5), squeeze=False)
    for r, (name, imgs, preds) in enumerate(blocks):
        for i in range(n):
            ax = axes[r, i]
            if i < len(imgs):
                _show(ax, imgs[i])
                if preds is not None:
                    wrong = preds[i] != data["labels"][i]
                    ax.set_title(f"y={data['labels'][i]} pred={preds[i]}", fontsize=6,
                                 color="red" if wrong else "black")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle("Generator outputs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    records = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if isinstance(r, dict):
                    records.append(r)
    return records


def draw(workdir: str, results: Mapping, data: Mapping[str, Mapping[str, np.ndarray]] | None = None, *,
         pictures: Mapping | None = None, names: Sequence[str] | None = None) -> dict[str, str]:
    """Draws the figures ``names`` (default: all) into ``workdir``; returns ``{name: path}`` of those drawn."""
    data = data or {}
    names = list(FIGURES if names is None else names)
    num_classes = (results.get("info") or {}).get("num_classes")
    paths: dict[str, str] = {}
    for name in names:
        path = os.path.join(workdir, FILES[name])
        if name == "curves":
            done = draw_curves(results, path)
        elif name == "examples":
            clean = data.get("examples", {}).get("clean_pred")
            done = draw_examples(pictures or {}, path, clean, results)
        elif name == "training":
            done = draw_training(_read_metrics(workdir), path)
        elif name == "saliency":
            done = draw_saliency(data.get("saliency", {}), path)
        elif name == "decision_plane":
            drawn = draw_decision_plane(data.get("decision_plane", {}), path, num_classes)
            done = drawn["path"] if drawn else None
        else:
            done = draw_samples(data.get("samples", {}), path)
        if done:
            paths[name] = done
    return paths


CAPTIONS = {
    "curves": "Robustness curves: accuracy against the attack radius (solid: robust accuracy; dashed: accuracy "
              "on adversarial examples; dotted: clean accuracy).",
    "examples": "Adversarial examples: clean images (label, clean prediction), attacked images (red: wrong "
                "prediction) and the perturbation magnified (grey = unchanged).",
    "training": "Training: every logged metric against the global step, one line per phase.",
    "saliency": "Saliency maps |grad_x loss| of clean and adversarial inputs (rows: test eps), as ATGAN's "
                "Figs. 5-7.",
    "decision_plane": "Decision regions around test images in the plane of the smoothed gradient and an "
                      "orthogonal direction (Wu et al.; the BCGAN paper's Fig. 4); colour = predicted class.",
    "samples": "Generator outputs: samples, or G(x) for clean and adversarial inputs.",
}
