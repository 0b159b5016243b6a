"""PGD-40 on the user's own model: a LeNet written in plain flax (``nn.Conv``, ``nn.max_pool``), attacked
under the user's own ``jax.jit`` as the README's example does, against torchattacks on the same weights.

    python benchmarks/user_model.py                 # 7 interleaved rounds, prints the table
    python benchmarks/user_model.py --write         # and writes its section of docs/benchmarks.md

Rows (all PGD-40, L-inf eps 0.3, step 0.01, random start, batch 128 of real MNIST test images, the
benchmark LeNet's weights from ``common.load("lenet")``):

* the user's LeNet (``common.user_lenet_logits``: ``nn.max_pool``) under plain ``jax.jit`` and under
  ``robustjax.xla.jit``;
* the same two with the max-pool gradient rewrite of ``attacks.canonicalize_convs`` switched off
  (``xla_cpu._MAX_POOL_WINDOW = 0`` while tracing): what the attack cost before the rewrite;
* robustjax's own LeNet (reshape max pool) under both jits;
* torchattacks' PGD on the PyTorch twin.

Everything is compiled once (excluded), then timed round-robin, ``--repeats`` rounds; the table gives the
median and the ratio to torchattacks measured in the same rounds (the machine is shared: only ratios
travel). Needs the ``peers`` extra (torch, torchattacks).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from robustjax import attacks, xla  # noqa: E402
from robustjax.attacks import xla_cpu  # noqa: E402

EPS, STEP, STEPS = 0.3, 0.01, 40


def runners(b: common.Bundle, x: np.ndarray, y: np.ndarray, steps: int) -> dict:
    """{row: zero-argument callable that runs PGD on the batch and blocks}, each compiled once."""
    import torchattacks

    torch = common._torch()
    xj, yj, key = jnp.asarray(x), jnp.asarray(y), jax.random.PRNGKey(0)
    np.testing.assert_allclose(common.user_lenet_logits(b.params)(xj[:16]), b.logits_fn()(xj[:16]),
                               rtol=1e-4, atol=1e-4)

    def jitted(logits_fn, jit):
        f = jit(lambda p, xx, yy, kk: attacks.pgd(logits_fn(p), xx, yy, kk, eps=EPS, step_size=STEP,
                                                   num_steps=steps, random_start=True))
        run = lambda: jax.block_until_ready(f(b.params, xj, yj, key))  # noqa: E731
        run()  # compile now, while the module-level switches hold their intended values
        return run

    out = {
        "user LeNet (nn.max_pool), jax.jit": jitted(common.user_lenet_logits, jax.jit),
        "user LeNet (nn.max_pool), robustjax.xla.jit": jitted(common.user_lenet_logits, xla.jit),
    }
    saved = xla_cpu._MAX_POOL_WINDOW
    xla_cpu._MAX_POOL_WINDOW = 0
    try:
        out["user LeNet, jax.jit, without the pool-gradient rewrite"] = jitted(common.user_lenet_logits, jax.jit)
        out["user LeNet, robustjax.xla.jit, without the pool-gradient rewrite"] = jitted(
            common.user_lenet_logits, xla.jit)
    finally:
        xla_cpu._MAX_POOL_WINDOW = saved
    out["robustjax LeNet (reshape pool), jax.jit"] = jitted(b.logits_fn, jax.jit)
    out["robustjax LeNet (reshape pool), robustjax.xla.jit"] = jitted(b.logits_fn, xla.jit)
    xt, yt = torch.from_numpy(common.nchw(np.asarray(x))), torch.from_numpy(np.asarray(y).astype(np.int64))
    atk = torchattacks.PGD(b.torch_model, eps=EPS, alpha=STEP, steps=steps, random_start=True)

    def ta():
        with torch.enable_grad():
            return atk(xt, yt)

    ta()
    out["torchattacks PGD (PyTorch twin)"] = ta
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = p.parse_args(argv)
    load_start = common.loadavg()
    b = common.load("lenet")
    x, y = common.load_test(b.data, args.batch)
    runs = runners(b, x, y, args.steps)
    ips = {k: args.batch / t.median for k, t in common.interleaved(runs, args.repeats).items()}
    ta = ips["torchattacks PGD (PyTorch twin)"]
    table = common.md_table(["row", "img/s", "/ torchattacks"],
                            [[k, f"{v:.1f}", f"{v / ta:.2f}"] for k, v in ips.items()])
    print(table)
    if args.write:
        cmd = "python benchmarks/user_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
        body = "\n".join([
            f"PGD-{args.steps} (L-inf eps {EPS}, step {STEP}, random start) on batch {args.batch} of MNIST test "
            "images, the benchmark LeNet's weights in four JAX forms and in PyTorch. \"User LeNet\" is the "
            "network as a user writes it in plain flax (`nn.Conv`, `nn.max_pool`; `common.user_lenet_logits`), "
            "attacked with `robustjax.attacks.pgd` under the user's own `jax.jit`, as the README's example does. "
            "\"Without the pool-gradient rewrite\" traces the same attack with `attacks.canonicalize_convs`' "
            "max-pool rewrite switched off: the cost before it existed. Median of "
            f"{args.repeats} interleaved rounds after one compile call each; ratios are to torchattacks in the "
            "same rounds. How to read it: the pool-gradient rewrite is the difference between the first two rows "
            "and the next two; what remains between `jax.jit` and `robustjax.xla.jit` is XLA:CPU's default choice "
            "of YNNPACK for the convolutions, which only the outermost jit's compile options (or `XLA_FLAGS`) can "
            "change, so an attack traced inside the user's `jax.jit` cannot.",
            "",
            *common.machine_lines(cmd),
            f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {common.loadavg()}",
            "",
            table,
        ])
        path = os.path.join(common.ROOT, "docs", "benchmarks.md")
        common.write_section(path, "Attack speed on the user's own model", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
