"""Training speed: robustjax's standard and PGD-AT train steps vs an equivalent plain PyTorch loop (CPU).

    python benchmarks/train.py --quick                    # batch 16, few steps: a smoke run
    python benchmarks/train.py --write                    # batch 128, the table in docs/benchmarks.md
    python benchmarks/train.py --models lenet --pgd-steps 40

robustjax: the defense's own ``train_step`` (``defenses/standard.py``, ``defenses/pgd_at.py``, built from
``configs/standard_mnist.py`` / ``configs/pgd_at_mnist.py`` by ``experiment.build``) compiled exactly as the
training loop compiles it (``robustjax.train.loop._compile_step``: ``robustjax.xla.jit`` with the state donated,
step key by ``fold_in``), fed the returned state each step. PyTorch: the same architecture (the twins of
``common.py``), Adam (lr 1e-3), cross-entropy, ``zero_grad / backward / step``; PGD-AT generates the
adversarial batch with a hand-written L-inf PGD (random start, sign steps, projection and clipping; the
model in eval mode) and then takes one optimizer step on it, as robustjax's pgd_at does.

Both sides cycle over the same ``--batches`` real training batches of ``--batch`` images. Each measurement
is the median over ``--repeats`` timed blocks of ``--steps`` steps (after a warm-up block that includes
compilation); the two frameworks alternate block by block. torch uses ``set_num_threads(2)``; XLA uses both
cores by default. Models: GanDef's LeNet on MNIST, and the CIFAR-10 CNN of ``common.py`` (ConvPool-CNN-C,
width 0.25, 2x2 pools) on the CIFAR-10 subset; the weights are freshly initialised (speed does not depend
on them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

EPS = {"lenet": (0.3, 0.01), "cifar_cnn": (8 / 255, 2 / 255)}


def robustjax_config(model: str, defense: str, batch: int, pgd_steps: int):
    from configs import pgd_at_mnist, standard_mnist

    c = (standard_mnist if defense == "standard" else pgd_at_mnist).get_config()
    spec = common.SPECS[model]
    for k, v in spec["data"].items():
        c.data[k] = v
    c.data.batch_size = batch
    c.data.train_size = max(batch * 8, 1024)
    c.model = type(c.model)(spec["model"])
    c.train.progress = False
    c.train.optimizer.learning_rate = 1e-3
    if defense == "pgd_at":
        eps, step = EPS[model]
        c.defense.attack = {"attack": "pgd", "eps": eps, "step_size": step, "num_steps": pgd_steps,
                            "random_start": True}
        c.defense.eps_ramp_epochs = 0.0
    return c


def robustjax_runner(model: str, defense: str, batch: int, pgd_steps: int, n_batches: int, steps: int):
    """Returns (run_block, batches as numpy): run_block() performs ``steps`` train steps and blocks."""
    from robustjax import experiment
    from robustjax.train import loop

    config = robustjax_config(model, defense, batch, pgd_steps)
    d, train_ds, _, _, _ = experiment.build(config)
    batches_np = [train_ds.get(np.arange(i * batch, (i + 1) * batch)) for i in range(n_batches)]
    batches = [jax.tree.map(jnp.asarray, bt) for bt in batches_np]
    state = d.init(jax.random.PRNGKey(0), batches[0])
    phase = d.phases[0]
    step_fn = loop._compile_step(phase.train_step, jax.random.PRNGKey(1))
    holder = {"state": state, "i": 0}

    def run_block():
        s = holder["state"]
        metrics = None
        for _ in range(steps):
            i = holder["i"]
            s, metrics = step_fn(s, batches[i % n_batches], jnp.asarray(i, jnp.int32))
            holder["i"] = i + 1
        jax.block_until_ready((s, metrics))
        holder["state"] = s

    return run_block, batches_np


def torch_runner(model: str, defense: str, batches_np, pgd_steps: int, steps: int):
    torch = common._torch()
    torch.manual_seed(0)
    net = common.torch_lenet() if model == "lenet" else common.torch_convpool()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ce = torch.nn.CrossEntropyLoss()
    data = [(torch.from_numpy(common.nchw(np.asarray(bt["image"], np.float32))),
             torch.from_numpy(np.asarray(bt["label"]).astype(np.int64))) for bt in batches_np]
    eps, alpha = EPS[model]
    holder = {"i": 0}

    def pgd(x, y):
        net.eval()
        delta = torch.empty_like(x).uniform_(-eps, eps)
        x_adv = torch.clamp(x + delta, 0, 1).detach()
        for _ in range(pgd_steps):
            x_adv.requires_grad_(True)
            loss = ce(net(x_adv), y)
            (g,) = torch.autograd.grad(loss, x_adv)
            x_adv = x_adv.detach() + alpha * g.sign()
            x_adv = torch.clamp(torch.min(torch.max(x_adv, x - eps), x + eps), 0, 1).detach()
        net.train()
        return x_adv

    def run_block():
        for _ in range(steps):
            x, y = data[holder["i"] % len(data)]
            holder["i"] += 1
            if defense == "pgd_at":
                x = pgd(x, y)
            opt.zero_grad(set_to_none=True)
            loss = ce(net(x), y)
            loss.backward()
            opt.step()

    return run_block


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lenet,cifar_cnn")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pgd-steps", type=int, default=10, help="inner PGD steps of the PGD-AT step")
    p.add_argument("--steps", type=int, default=0, help="train steps per timed block (0: 10 standard, 2 PGD-AT)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.pgd_steps = 16, 2, 2
    load_start = common.loadavg()
    t0 = time.perf_counter()
    rows = []
    for model in [m for m in args.models.split(",") if m]:
        if model not in EPS:
            p.error(f"--models: unknown {model!r}; choose from {sorted(EPS)}")
        for defense in ("standard", "pgd_at"):
            steps = args.steps or (10 if defense == "standard" else 2)
            rj, batches = robustjax_runner(model, defense, args.batch, args.pgd_steps, args.batches, steps)
            pt = torch_runner(model, defense, batches, args.pgd_steps, steps)
            times = {"robustjax": [], "pytorch": []}
            rj()  # compile + warm-up
            pt()
            for _ in range(args.repeats):
                for name, fn in (("robustjax", rj), ("pytorch", pt)):
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
            ips = {k: args.batch * steps / float(np.median(v)) for k, v in times.items()}
            label = "standard" if defense == "standard" else f"PGD-AT (PGD-{args.pgd_steps}, random start)"
            print(f"{model} {label}: robustjax {ips['robustjax']:.1f} img/s, pytorch {ips['pytorch']:.1f} img/s, "
                  f"ratio {ips['robustjax'] / ips['pytorch']:.2f}  [load {common.loadavg()}]", flush=True)
            rows.append([model, label, f"{ips['robustjax']:.1f}", f"{ips['pytorch']:.1f}",
                         f"{ips['robustjax'] / ips['pytorch']:.2f}"])
    total = time.perf_counter() - t0
    table = common.md_table(["model", "train step", "robustjax img/s", "PyTorch img/s", "robustjax / PyTorch"], rows)
    print()
    print(table)
    if args.write:
        cmd = "python benchmarks/train.py " + " ".join(sys.argv[1:] if argv is None else argv)
        body = "\n".join([
            f"Training images per second (higher is better), batch {args.batch}, Adam 1e-3, CPU. robustjax runs "
            "the defense's own `train_step` (standard, pgd_at) jitted as the training loop does (state donated); "
            "PyTorch runs an equivalent plain loop on the same architecture (the twins in `benchmarks/common.py`) "
            f"with a hand-written PGD. PGD-AT uses PGD-{args.pgd_steps} with random start (LeNet eps 0.3 step "
            "0.01; CIFAR eps 8/255 step 2/255), the attack on the model in eval mode, then one optimizer step "
            f"on the adversarial batch. Median over {args.repeats} timed blocks of 10 (standard) / 2 (PGD-AT) "
            "steps after a warm-up block (compilation excluded), frameworks alternating; fresh weights, "
            f"{args.batches} real training batches cycled.",
            "",
            *common.machine_lines(cmd),
            f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {common.loadavg()} "
            f"(2 cores shared with other processes); total wall time {total / 60:.1f} min",
            "",
            table,
        ])
        path = os.path.join(common.ROOT, "docs", "benchmarks.md")
        common.write_section(path, "Training speed", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
