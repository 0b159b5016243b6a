"""Defense-GAN's projection on real MNIST: reconstruction error, accuracy through the projection and time
per image, over L (steps), R (random starts) and the learning rate: what configs/defense_gan_mnist.py's
defaults rest on.

    python benchmarks/defense_gan_projection.py --npz ../shared/data/mnist.npz --out runs/defense_gan_projection
    python benchmarks/defense_gan_projection.py --run runs/baselines_mnist/defense_gan   # a trained one

1. Trains configs/defense_gan_mnist.py (its ``gan`` then ``classifier`` phase) on the first
   ``--train_size`` training images, ``--gan_epochs`` epochs of critic iterations and ``--epochs`` of the
   classifier, through ``experiment.run`` with no attacks (clean accuracy only). Skipped when
   ``<out>/train/results.json`` exists, or with ``--run``: a run directory main.py trained (its
   ``config.json`` and latest checkpoint).
2. Restores the trained state and projects the first ``--eval`` test images for each (L, R, learning
   rate) of the grid: the per-pixel squared error of the best start (at the random starts and after the
   L steps), the trained classifier's accuracy on the reconstructions (= the defense's clean accuracy)
   and on the images themselves, and milliseconds per image (the jitted projection's second call).

Writes ``<out>/projection.json`` and prints the Markdown table for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (L, R, learning rate)
GRID = [(10, 4, 0.1), (25, 4, 0.1), (50, 4, 0.1), (100, 4, 0.1), (200, 4, 0.1),
        (50, 4, 0.01), (50, 4, 0.05), (50, 1, 0.1), (50, 10, 0.1), (100, 2, 0.1)]


def load_config(name, arg=None):
    from robustjax.config import load_config_file

    return load_config_file(os.path.join(ROOT, "configs", name + ".py"), arg)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--npz", default="", help="mnist.npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("--run", default="", help="a trained Defense-GAN run directory (e.g. "
                        "runs/baselines_mnist/defense_gan): measure its networks instead of training new ones")
    parser.add_argument("--out", default="runs/defense_gan_projection")
    parser.add_argument("--train_size", type=int, default=10000)
    parser.add_argument("--gan_epochs", type=float, default=40.0)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--eval", type=int, default=256)
    args = parser.parse_args()
    if bool(args.npz) == bool(args.run):
        parser.error("give exactly one of --npz (train a Defense-GAN first) and --run (measure a trained one)")

    import jax
    import jax.numpy as jnp
    import numpy as np

    from robustjax import experiment, xla
    from robustjax.defenses import defense_gan
    from robustjax.defenses.base import eval_logits_fn, eval_variables
    from robustjax.train import loop

    if args.run:
        from robustjax.evaluate.transfer import read_config

        c, workdir = read_config(args.run), args.run
        c.eval.num_examples = args.eval
    else:
        c = load_config("defense_gan_mnist")
        c.data.source, c.data.path, c.data.train_size = "npz", os.path.abspath(args.npz), args.train_size
        c.defense.gan_epochs = args.gan_epochs
        c.train.epochs = args.epochs
        c.train.progress = False
        c.eval.attacks, c.eval.curves, c.eval.num_examples = {}, {}, args.eval
        workdir = os.path.join(args.out, "train")
        if not os.path.exists(os.path.join(workdir, "results.json")):
            experiment.run(c, workdir)
    results_file = os.path.join(workdir, "results.json")
    train_info = json.load(open(results_file))["info"] if os.path.exists(results_file) else {"run": workdir}

    defense, train_ds, test_ds, info, _ = experiment.build(c)
    template = jax.eval_shape(defense.init, jax.random.PRNGKey(0), train_ds.get(np.arange(c.data.batch_size)))
    state, meta = loop.restore_latest(workdir, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template))
    assert meta is not None, f"no checkpoint in {workdir}"
    batch = test_ds.get(np.arange(args.eval))
    x, y = jnp.asarray(batch["image"]), np.asarray(batch["label"])
    g = state["generator"]
    g_vars = eval_variables(g)
    predict = xla.jit(lambda s, v: jnp.argmax(eval_logits_fn(s["classifier"])(v), -1))
    acc_images = float(np.mean(np.asarray(predict(state, x)) == y))
    pixels = int(np.prod(x.shape[1:]))
    rows = []
    for steps, starts, lr in GRID:
        project = xla.jit(lambda v, k, steps=steps, starts=starts, lr=lr: defense_gan.project(
            lambda z: g.apply_fn(g_vars, z, train=False), v, k, latent_dim=int(c.defense.latent_dim),
            num_steps=steps, restarts=starts, lr=lr))
        jax.block_until_ready(project(x, jax.random.PRNGKey(1)))
        t0 = time.time()
        p = jax.block_until_ready(project(x, jax.random.PRNGKey(2)))
        ms = (time.time() - t0) / args.eval * 1000.0
        acc = float(np.mean(np.asarray(predict(state, p.reconstruction)) == y))
        row = {"L": steps, "R": starts, "lr": lr, "mse_start": float(np.mean(np.min(p.initial_errors, 0))) / pixels,
               "mse": float(np.mean(np.min(p.errors, 0))) / pixels, "accuracy": acc, "ms_per_image": ms}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {"train": train_info, "classifier_accuracy_on_images": acc_images, "eval": args.eval,
               "rows": rows, "command": " ".join(sys.argv)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "projection.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\nclassifier alone on the images: {acc_images:.3f}\n")
    print("| L | R | lr | per-pixel MSE at the starts | after L steps | accuracy on reconstructions | ms / image |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['L']} | {r['R']} | {r['lr']:g} | {r['mse_start']:.4f} | {r['mse']:.4f} | {r['accuracy']:.3f} "
              f"| {r['ms_per_image']:.0f} |")


if __name__ == "__main__":
    main()
