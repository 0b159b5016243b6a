"""Wall time of one ATGAN training step versus one PGD-AT step on the same classifier (CPU).

    python benchmarks/atgan_step.py --npz ../shared/data/mnist.npz            # MNIST, C&W CNN, batch 128
    python benchmarks/atgan_step.py --npz ../shared/data/mnist.npz --pgd_steps 40 --repeats 5

Both steps are the defenses' own ``train_step`` jitted with the state donated, as the training loop
runs them, on the same batch size, the same train-time PGD (``--pgd_steps`` steps at eps 0.3) and the
same classifier (``cw_mnist``; ATGAN attacks and trains D_c(G(x)) and also updates G). The two are timed
interleaved, ``--repeats`` rounds of ``--steps`` steps each, and the median per-step time is reported
(compile time excluded). Prints a Markdown row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build(name, arg, a):
    import jax

    from robustjax import experiment, xla
    from robustjax.config import load_config_file

    c = load_config_file(os.path.join(ROOT, "configs", name + ".py"), arg)
    c.data.source, c.data.path, c.data.name = "npz", os.path.abspath(a.npz), "mnist"
    c.data.train_size, c.data.test_size, c.data.batch_size = 1024, 128, a.batch
    c.model.name = "cw_mnist"
    d = c.defense
    if name == "atgan_mnist":
        # The loss network is only read during the atgan phase: an untrained one costs the same.
        d.loss_net_epochs = 1.0
    d.attack.num_steps, d.attack.step_size = a.pgd_steps, 0.01
    defense, train_ds, _, _, _ = experiment.build(c)
    phase = defense.phases[-1]  # the adversarial phase (ATGAN's comes after the loss-net pretraining)
    batch = train_ds.get(list(range(a.batch)))
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    step = xla.jit(phase.train_step, donate_argnums=0)  # as the training loop compiles it
    return step, state, batch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--npz", required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pgd_steps", type=int, default=10)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()

    import jax

    runners = {name: build(name, arg, a) for name, arg in (("pgd_at_mnist", None), ("atgan_mnist", "eps_t=0.3"))}
    times = {name: [] for name in runners}
    states = {name: r[1] for name, r in runners.items()}
    for name, (step, _, batch) in runners.items():  # compile + warm up
        states[name], m = step(states[name], batch, jax.random.PRNGKey(1))
        jax.block_until_ready(m)
    for r in range(a.repeats):
        for name, (step, _, batch) in runners.items():
            t0 = time.perf_counter()
            for i in range(a.steps):
                states[name], m = step(states[name], batch, jax.random.PRNGKey(r * 100 + i))
            jax.block_until_ready((states[name], m))
            times[name].append((time.perf_counter() - t0) / a.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()[0]
    print(f"command: python benchmarks/atgan_step.py --npz ... --batch {a.batch} --pgd_steps {a.pgd_steps} "
          f"--steps {a.steps} --repeats {a.repeats}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpu, jax {jax.__version__}, load avg {load:.1f}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| step (cw_mnist, batch %d, PGD-%d) | s / step | images / s |" % (a.batch, a.pgd_steps))
    print("|---|---|---|")
    for name, t in med.items():
        print(f"| {name.replace('_mnist', '')} | {t:.3f} | {a.batch / t:.0f} |")
    print(f"ATGAN / PGD-AT time ratio: {med['atgan_mnist'] / med['pgd_at_mnist']:.2f}")


if __name__ == "__main__":
    main()
