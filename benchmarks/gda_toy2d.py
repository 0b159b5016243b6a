"""Zantedeschi et al.'s Fig. 2: decision regions and confidence of a small network trained on a 2-D toy
problem with one artificial point added per original point, five ways (and none, for reference).

    python benchmarks/gda_toy2d.py --out runs/gda_toy2d          # ~1 minute on 2 CPU cores
    python benchmarks/gda_toy2d.py --out runs/gda_toy2d --tiny   # seconds: checks the script runs

Writes ``fig2.png`` (rows: circles, moons; columns: no augmentation, then the paper's five) and
``fig2.json`` (per panel: clean test accuracy, mean input-gradient norm of the loss on the test points
(the paper's local loss sensitivity, Sec. 4.1), and mean |d confidence / d x| over the plotted grid).

The paper (Sec. 3.2): "For each original point x of a dataset, we add one of the following artificial
points x' (all of them clipped into the input domain)": FGM with the L2 norm, eps 0.3; a virtual
adversarial example (VAT), eps 0.3; a JSMA example with "feature adjustment theta = 0.1"; a point of
"the Uniform distribution centered in x"; a point of N(x, 0.3^2). The network: "a soft-max neural network
with two dense hidden layers and RELU activation function".

Chosen where the paper is silent:

- Data: scikit-learn's circles (radii 1 and 0.5) and moons, noise 0.1, ``--points`` training points, via
  ``robustjax.data.load_toy2d``, which maps them into the box [0, 1]^2 (the input domain every added
  point is clipped to) by one scale factor per dataset. The paper's magnitudes (0.3, 0.1) are read in the
  generators' own units (circle radius 1) and converted by that factor: in the box's units 0.3 would be
  wider than the gap between the two circles.
- The adversarial points (FGM, VAT, JSMA) are crafted once, on the network trained on the original points
  (a static augmentation, as "we add one ... point" reads); each augmented network is then trained from
  the same initialisation on the 2N points.
- Uniform: half-width 0.3 per coordinate (the radius of the others). JSMA: untargeted, the other class as
  target, gamma = 1 (both features may change, each once, by theta).
- Network: two hidden layers of 32 ReLU units (``models.MLP``), full-batch Adam 1e-2 for ``--steps``
  (default 500).

What it shows (300 points, seed 0, looked at before committing). At 500 steps every augmentation but
JSMA (whose points barely move: theta 0.1 is 0.03 of the box) widens the band over which the confidence
falls from 0.9 to 0.1 around the boundary, where the unaugmented network switches sharply; the Gaussian
band is the widest on the moons, as the paper says, and FGM's and VAT's are as wide on the circles. Test
accuracy stays at 0.99-1.00 everywhere. The figure depends on the training length: at 3,000 steps the
network memorises the noisy copies that fall in the other class (the Gaussian panels grow islands, test
accuracy 0.967 on the circles) and the bands narrow again; the paper gives no training length. The
loss sensitivity on the test points (``l_F`` in the titles) is higher with every augmentation but JSMA
(and the uniform one on the circles): a wider band puts the test points nearer the falling confidence,
so this smoothness of the confidence does not show as a smaller input gradient of the loss at the data.
docs/results.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from robustjax import attacks, models  # noqa: E402
from robustjax.data import sources  # noqa: E402
from robustjax.defenses import vat  # noqa: E402

DATASETS = ("circles", "moons")
AUGMENTATIONS = ("none", "fgm_l2", "vat", "jsma", "uniform", "gaussian")
TITLES = {"none": "no augmentation", "fgm_l2": "FGM (L2, eps 0.3)", "vat": "VAT (eps 0.3)",
          "jsma": "JSMA (theta 0.1)", "uniform": "Uniform", "gaussian": "Gaussian (sigma 0.3)"}
NOISE = 0.1
EPS, THETA, SIGMA, HALF_WIDTH = 0.3, 0.1, 0.3, 0.3  # in the generators' units


def box_scale(name: str) -> float:
    """Generator units per unit of the [0, 1]^2 box (the side of the square ``load_toy2d`` maps)."""
    return sources._toy_box(name, NOISE)[2]


def train(model, params, x, y, steps: int, lr: float = 1e-2):
    opt = optax.adam(lr)

    def loss(p):
        return attacks.ce_loss(model.apply({"params": p}, x), y).mean()

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return params


def augment(kind: str, logits_fn, x, y, key, scale: float):
    """One artificial point per original point, clipped into [0, 1]^2 (``scale``: generator units per box unit)."""
    eps, theta, sigma, half = EPS / scale, THETA / scale, SIGMA / scale, HALF_WIDTH / scale
    if kind == "fgm_l2":
        return attacks.fgm(logits_fn, x, y, eps=eps, norm="l2")
    if kind == "vat":
        r = vat.virtual_adversarial_perturbation(logits_fn, x, logits_fn(x), key, eps=eps, xi=1e-6,
                                                 power_iterations=1)
        return jnp.clip(x + r, 0.0, 1.0)
    if kind == "jsma":
        return attacks.jsma(logits_fn, x, y, key, theta=float(theta), gamma=1.0, target="next")
    if kind == "uniform":
        return jnp.clip(x + jax.random.uniform(key, x.shape, x.dtype, -half, half), 0.0, 1.0)
    if kind == "gaussian":
        return jnp.clip(x + sigma * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)
    raise ValueError(f"unknown augmentation {kind!r}; valid: {list(AUGMENTATIONS)}")


def run(points: int, steps: int, resolution: int, seed: int = 0) -> dict:
    model = models.make({"name": "mlp", "hidden": [32, 32]}, 2)
    grid_1d = np.linspace(0.0, 1.0, resolution, dtype=np.float32)
    gx, gy = np.meshgrid(grid_1d, grid_1d)
    grid = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1))
    out = {}
    for name in DATASETS:
        train_ds, test_ds, _ = sources.load_toy2d(name, num_train=points, num_test=points, noise=NOISE, seed=seed)
        x, y = jnp.asarray(train_ds.images), jnp.asarray(train_ds.labels)
        xt, yt = jnp.asarray(test_ds.images), jnp.asarray(test_ds.labels)
        init = model.init(jax.random.key(seed), x[:1])["params"]
        base = train(model, init, x, y, steps)
        base_fn = lambda v: model.apply({"params": base}, v)  # noqa: E731
        for i, kind in enumerate(AUGMENTATIONS):
            if kind == "none":
                added, params = x[:0], base
            else:
                added = augment(kind, base_fn, x, y, jax.random.key(100 + i), box_scale(name))
                params = train(model, init, jnp.concatenate([x, added]), jnp.concatenate([y, y]), steps)
            fn = lambda v, p=params: model.apply({"params": p}, v)  # noqa: E731
            probs = jax.nn.softmax(fn(grid))
            conf_grad = jax.vmap(jax.grad(lambda v: jax.nn.softmax(fn(v[None]))[0, 1]))(grid)
            loss_grad = jax.vmap(jax.grad(lambda v, t: attacks.ce_loss(fn(v[None]), t[None])[0]))(xt, yt)
            out[(name, kind)] = {
                "x": np.asarray(x), "y": np.asarray(y), "added": np.asarray(added),
                "p1": np.asarray(probs[:, 1]).reshape(resolution, resolution), "grid": grid_1d,
                "test_accuracy": float(jnp.mean(jnp.argmax(fn(xt), -1) == yt)),
                "loss_sensitivity": float(jnp.mean(jnp.linalg.norm(loss_grad, axis=1))),
                "mean_confidence_gradient": float(jnp.mean(jnp.linalg.norm(conf_grad, axis=1))),
                "added_moved": float(jnp.mean(jnp.linalg.norm(added - x, axis=1))) if len(added) else 0.0,
            }
    return out


def draw(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(DATASETS), len(AUGMENTATIONS), figsize=(3.0 * len(AUGMENTATIONS),
                                                                           3.1 * len(DATASETS)))
    colors = np.array([[0.85, 0.2, 0.2], [0.2, 0.35, 0.85]])
    for r, name in enumerate(DATASETS):
        for c, kind in enumerate(AUGMENTATIONS):
            ax, d = axes[r, c], results[(name, kind)]
            g = d["grid"]
            ax.contourf(g, g, d["p1"], levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.55, vmin=0, vmax=1)
            cs = ax.contour(g, g, d["p1"], levels=[0.1, 0.3, 0.5, 0.7, 0.9], colors="k", linewidths=0.7)
            ax.clabel(cs, fontsize=6, fmt="%.1f")
            ax.scatter(d["x"][:, 0], d["x"][:, 1], c=colors[d["y"]], s=9, edgecolors="k", linewidths=0.3)
            if len(d["added"]):
                ax.scatter(d["added"][:, 0], d["added"][:, 1], c=colors[d["y"]], s=3, alpha=0.8)
            ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{TITLES[kind]}\nacc {d['test_accuracy']:.3f}, l_F {d['loss_sensitivity']:.2f}",
                         fontsize=8)
            if c == 0:
                ax.set_ylabel(name)
    fig.suptitle("Fig. 2 (Zantedeschi et al.): P(class 1) with contours; large dots original, small dots added",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for fig2.png and fig2.json")
    p.add_argument("--points", type=int, default=300, help="training (and test) points per dataset")
    p.add_argument("--steps", type=int, default=500, help="full-batch Adam steps per network")
    p.add_argument("--resolution", type=int, default=121, help="grid points per axis of the plot")
    p.add_argument("--tiny", action="store_true", help="40 points, 50 steps, a 21x21 grid: checks the script runs")
    args = p.parse_args(argv)
    if args.tiny:
        args.points, args.steps, args.resolution = 40, 50, 21
    os.makedirs(args.out, exist_ok=True)
    results = run(args.points, args.steps, args.resolution)
    draw(results, os.path.join(args.out, "fig2.png"))
    table = {f"{n}/{k}": {m: results[(n, k)][m] for m in ("test_accuracy", "loss_sensitivity",
                                                           "mean_confidence_gradient", "added_moved")}
             for n, k in results}
    with open(os.path.join(args.out, "fig2.json"), "w") as f:
        json.dump({"args": vars(args), "panels": table}, f, indent=1)
    for key, row in table.items():
        print(f"{key:20s} " + "  ".join(f"{m} {v:.4f}" for m, v in row.items()))


if __name__ == "__main__":
    main()
