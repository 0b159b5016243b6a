"""Does BCGAN's beta put the AC-GAN's samples on the classifier's boundary on real MNIST?

    python benchmarks/bcgan_beta_mnist.py --npz ../shared/data/mnist.npz --betas 1 10 \\
        --train 10000 --pretrain_epochs 2 --gan_epochs 2 --out docs/figures/bcgan_beta_mnist.png

The 2-D demonstration (benchmarks/bcgan_toy2d.py, docs/results.md) found that the config default beta = 1
leaves the samples inside their classes and beta = 10 moves them to the boundary. This checks the same
question on MNIST with configs/bcgan_mnist.py (its LeNet, Odena et al.'s AC-GAN, the KL through the frozen
pre-trained classifier): for each beta, phases 1 and 2 only (pre-training, then the AC-GAN), then 1,000
samples ``G(z, c)`` (100 per class) scored by the frozen classifier the KL steered towards:

- mean KL(U || p(y | G(z, c))) (0: a uniform prediction, log 10 = 2.30: a one-hot one);
- the fraction with max_y p < 0.5 (no class holds half the probability: near a boundary);
- the fraction the classifier assigns to the conditioning class c (an AC-GAN without the KL: near 1).

Every beta uses the same seed, so phase 1 is the same classifier. The figure shows ten samples per class
for each beta. The budget flags shrink the paper-scale config (60,000 images, 10 + 20 epochs) for a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.runs import load_config  # noqa: E402


def config(a, beta: float):
    c = load_config("bcgan_mnist")
    if a.npz:
        c.data.source, c.data.path = "npz", a.npz
    c.data.train_size = a.train
    c.defense.beta = float(beta)
    c.defense.pretrain_epochs = float(a.pretrain_epochs)
    c.defense.gan_epochs = float(a.gan_epochs)
    return c


def two_phases(c, workdir: str):
    """``(defense, state)`` after the pretrain and acgan phases: the classifier is the frozen one."""
    from robustjax import experiment, xla
    from robustjax.train import loop

    defense, train_ds, _, _, _ = experiment.build(c)
    defense = dataclasses.replace(defense, phases=defense.phases[:2])
    init_key, train_key, _ = jax.random.split(jax.random.PRNGKey(c.seed), 3)
    state = xla.jit(defense.init)(init_key, train_ds.get(np.arange(c.data.batch_size)))
    options = loop.LoopOptions(workdir=workdir, batch_size=c.data.batch_size, seed=c.seed, log_every=50,
                               checkpoint_every=100000, progress=False)
    return defense, loop.fit(defense, state, train_ds, key=train_key, options=options)


def score(defense, state, n: int = 1000) -> tuple[dict, np.ndarray]:
    samples = defense.samples(state, jax.random.PRNGKey(1), n)      # classes 0, 1, ..., 9, 0, ...
    p = np.asarray(jax.nn.softmax(defense.classifier(state)(samples)))
    c = np.arange(n) % p.shape[1]
    kl = -np.log(p.shape[1]) - np.mean(np.log(p + 1e-12), axis=1)
    return ({"kl_uniform": float(kl.mean()), "max_prob_below_half": float(np.mean(p.max(1) < 0.5)),
             "conditioning_class": float(np.mean(p.argmax(1) == c)), "mean_max_prob": float(p.max(1).mean())},
            np.asarray(samples))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--npz", default="", help="MNIST as an npz (else the config's tfds source)")
    p.add_argument("--betas", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--pretrain_epochs", type=float, default=2)
    p.add_argument("--gan_epochs", type=float, default=2)
    p.add_argument("--out", default="bcgan_beta_mnist.png")
    a = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    fig, axes = plt.subplots(1, len(a.betas), figsize=(4.2 * len(a.betas), 4.6), squeeze=False)
    for ax, beta in zip(axes[0], a.betas):
        with tempfile.TemporaryDirectory() as workdir:
            defense, state = two_phases(config(a, beta), workdir)
        stats, samples = score(defense, state)
        rows.append((beta, stats))
        print(f"beta {beta:g}: " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()), flush=True)
        # sample i has class i % 10: [row r, column k] = sample 10 r + k, so each column is one class
        grid = samples[:100].reshape(10, 10, 28, 28).transpose(0, 2, 1, 3).reshape(280, 280)
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks(14 + 28 * np.arange(10), [str(k) for k in range(10)], fontsize=7)
        ax.set_yticks([])
        ax.set_title(f"beta = {beta:g}: KL(U||p) {stats['kl_uniform']:.2f}, max p < 0.5: "
                     f"{stats['max_prob_below_half']:.0%},\nclassified as their class c: "
                     f"{stats['conditioning_class']:.0%}", fontsize=9)
    fig.suptitle("BCGAN, MNIST: samples G(z, c), column = c,\nscored by the frozen pre-trained classifier",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    print("| beta | mean KL(U ‖ p) | max p < 0.5 | classified as c | mean max p |\n|---|---|---|---|---|")
    for beta, s in rows:
        print(f"| {beta:g} | {s['kl_uniform']:.3f} | {s['max_prob_below_half']:.1%} | {s['conditioning_class']:.1%} | "
              f"{s['mean_max_prob']:.3f} |")


if __name__ == "__main__":
    main()
