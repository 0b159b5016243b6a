"""BCGAN's Fig. 2: boundary samples of the AC-GAN on two 2-D Gaussians, for several beta, drawn over the
pre-trained classifier's decision boundary.

    python benchmarks/bcgan_toy2d.py --gan_epochs=100 --out=docs/figures/bcgan_toy2d.png   # beta 0, 0.1, 1, 10
    python benchmarks/bcgan_toy2d.py --betas=0,1 --gan_epochs=50 --out=/tmp/fig.png

For each beta: configs/bcgan_toy2d.py (with that beta) trained through its first two phases only
(pre-training, then the AC-GAN with the KL term through the frozen classifier), so the drawn boundary is
the classifier the KL steered towards (phase 3 would move it). Each panel: the training points of the
two classes, the classifier's p(class 1) = 0.5 contour, and 400 generated samples (200 per conditioning
class), with the mean KL(U || p) of the samples and the fraction of them within 0.05 of the boundary.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_config(beta: float, gan_epochs: float):
    from robustjax.config import load_config_file

    c = load_config_file(os.path.join(ROOT, "configs", "bcgan_toy2d.py"), f"beta={beta}")
    c.defense.gan_epochs = float(gan_epochs)
    return c


def train_two_phases(c, workdir: str):
    """(defense, state, train_ds) after the pretrain and acgan phases of ``c``."""
    from robustjax import experiment, xla
    from robustjax.train import loop

    defense, train_ds, _, _, _ = experiment.build(c)
    defense = dataclasses.replace(defense, phases=defense.phases[:2])
    key = jax.random.PRNGKey(c.seed)
    init_key, train_key, _ = jax.random.split(key, 3)
    state = xla.jit(defense.init)(init_key, train_ds.get(np.arange(c.data.batch_size)))
    options = loop.LoopOptions(workdir=workdir, batch_size=c.data.batch_size, seed=c.seed, log_every=500,
                               checkpoint_every=100000, progress=False)
    return defense, loop.fit(defense, state, train_ds, key=train_key, options=options), train_ds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", default="0,0.1,1,10")
    parser.add_argument("--gan_epochs", type=float, default=200.0)
    parser.add_argument("--out", default="bcgan_toy2d.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    betas = [float(b) for b in args.betas.split(",")]
    fig, axes = plt.subplots(1, len(betas), figsize=(3.6 * len(betas), 3.8), squeeze=False)
    grid = np.linspace(0.0, 1.0, 201)
    gx, gy = np.meshgrid(grid, grid)
    points = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)
    for ax, beta in zip(axes[0], betas):
        with tempfile.TemporaryDirectory() as workdir:
            c = toy_config(beta, args.gan_epochs)
            defense, state, train_ds = train_two_phases(c, workdir)
        logits_fn = defense.classifier(state)
        prob = np.asarray(jax.nn.softmax(logits_fn(points))[:, 1]).reshape(gx.shape)
        samples = np.asarray(defense.samples(state, jax.random.PRNGKey(1), 400))
        labels = np.arange(400) % 2
        p_s = np.asarray(jax.nn.softmax(logits_fn(jnp.asarray(samples))))
        kl = float(np.mean(-np.log(2.0) - np.mean(np.log(p_s + 1e-12), axis=1)))
        x, y = np.asarray(train_ds.images), np.asarray(train_ds.labels)
        keep = np.random.default_rng(0).permutation(len(x))[:600]
        ax.scatter(*x[keep][y[keep] == 0].T, s=4, c="tab:red", alpha=0.35, label="class 0")
        ax.scatter(*x[keep][y[keep] == 1].T, s=4, c="tab:blue", alpha=0.35, label="class 1")
        ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1.2)
        ax.scatter(*samples[labels == 0].T, s=7, c="gold", edgecolors="tab:red", linewidths=0.4,
                   label="G(z, 0)")
        ax.scatter(*samples[labels == 1].T, s=7, c="gold", edgecolors="tab:blue", linewidths=0.4,
                   label="G(z, 1)")
        near = float(np.mean(np.abs(p_s[:, 1] - 0.5) < 0.05))
        ax.set_title(f"beta = {beta:g}\nKL(U||p) {kl:.3f}, |p - 0.5| < 0.05: {near:.0%}", fontsize=9)
        ax.set_xlim(0, 1), ax.set_ylim(0.15, 0.85), ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        print(f"beta {beta:g}: mean KL {kl:.4f}, near the boundary {near:.2%}", flush=True)
    axes[0][0].legend(fontsize=6, loc="lower left", markerscale=2)
    fig.suptitle("BCGAN (Sun et al., Fig. 2): AC-GAN samples (gold; edge colour = conditioning class)\n"
                 "and the frozen pre-trained classifier's decision boundary (black)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
