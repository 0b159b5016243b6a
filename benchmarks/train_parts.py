"""Where a standard training step's time goes on CPU: the step's parts against PyTorch's, and each
convolution of the benchmark models under XLA's default (YNNPACK) and robustjax's compile option.

    python benchmarks/train_parts.py                 # both models, 15 interleaved rounds
    python benchmarks/train_parts.py --models lenet --repeats 7

Part 1, per model (batch 128, random inputs, fresh weights; ``robustjax.xla.jit``): the forward pass, the
input gradient, ``value_and_grad`` of the mean cross-entropy with respect to the params, and a whole Adam
step; PyTorch's twin (``common.py``) does forward (no grad), forward + backward, and forward + backward +
``Adam.step``. Part 2: every convolution shape of the two models alone, forward, weight gradient and input
gradient, under plain ``jax.jit`` (XLA:CPU's default: YNNPACK) and ``robustjax.xla.jit`` (XLA's own
emitter). Medians of ``--repeats`` interleaved rounds after one compile call (ms). A diagnostic for
``docs/attack_speed_notes.md``; ``benchmarks/train.py`` is the speed table.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
import optax  # noqa: E402

from robustjax import models, xla  # noqa: E402

BATCH = 128
# (name, input NHWC, kernel HWIO) of each convolution in the benchmark models (SAME padding, stride 1)
CONVS = {
    "lenet": [("conv1 5x5 1->32 on 28x28", (28, 28, 1), (5, 5, 1, 32)),
              ("conv2 5x5 32->64 on 14x14", (14, 14, 32), (5, 5, 32, 64))],
    "cifar_cnn": [("3x3 3->24 on 32x32", (32, 32, 3), (3, 3, 3, 24)),
                  ("3x3 24->24 on 32x32", (32, 32, 24), (3, 3, 24, 24)),
                  ("3x3 48->48 on 16x16", (16, 16, 48), (3, 3, 48, 48))],
}


def interleaved_ms(runs: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds per runner (``common.interleaved``)."""
    return {k: 1e3 * t.median for k, t in common.interleaved(runs, repeats).items()}


def step_parts(name: str, repeats: int) -> dict[str, float]:
    spec = common.SPECS[name]
    model = models.make(spec["model"], 10)
    x = jax.random.uniform(jax.random.key(0), (BATCH, *spec["shape"]))
    y = jax.random.randint(jax.random.key(1), (BATCH,), 0, 10)
    params = model.init(jax.random.key(2), x)["params"]
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    def loss(p, xx, yy):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, xx), yy).mean()

    def step(p, s, xx, yy):
        value, g = jax.value_and_grad(loss)(p, xx, yy)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, value

    jitted = {
        "forward": (xla.jit(lambda p, xx: model.apply({"params": p}, xx)), (params, x)),
        "input gradient": (xla.jit(jax.grad(loss, argnums=1)), (params, x, y)),
        "value_and_grad (params)": (xla.jit(jax.value_and_grad(loss)), (params, x, y)),
        "Adam step": (xla.jit(step), (params, opt_state, x, y)),
    }
    runs = {k: (lambda f=f, a=a: jax.block_until_ready(f(*a))) for k, (f, a) in jitted.items()}
    torch = common._torch()
    tm = common.torch_lenet() if name == "lenet" else common.torch_convpool()
    xt = torch.from_numpy(common.nchw(np.asarray(x)))
    yt = torch.from_numpy(np.asarray(y).astype(np.int64))
    topt = torch.optim.Adam(tm.parameters(), 1e-3)
    ce = torch.nn.CrossEntropyLoss()

    def t_forward():
        with torch.no_grad():
            tm(xt)

    def t_backward():
        tm.zero_grad()
        ce(tm(xt), yt).backward()

    def t_step():
        topt.zero_grad()
        ce(tm(xt), yt).backward()
        topt.step()

    runs.update({"torch forward": t_forward, "torch forward + backward": t_backward, "torch Adam step": t_step})
    return interleaved_ms(runs, repeats)


def conv_parts(shapes, repeats: int) -> list[list]:
    dn = ("NHWC", "HWIO", "NHWC")

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    rows = []
    for label, xs, ws in shapes:
        x = jax.random.normal(jax.random.key(0), (BATCH, *xs))
        w = jax.random.normal(jax.random.key(1), ws)
        ct = jax.random.normal(jax.random.key(2), (BATCH, *xs[:2], ws[3]))
        fns = {"forward": lambda x, w, ct: conv(x, w),
               "weight gradient": lambda x, w, ct: jax.vjp(lambda v: conv(x, v), w)[1](ct)[0],
               "input gradient": lambda x, w, ct: jax.vjp(lambda v: conv(v, w), x)[1](ct)[0]}
        runs = {}
        for part, fn in fns.items():
            for jit_name, jit in (("jax.jit", jax.jit), ("xla.jit", xla.jit)):
                f = jit(fn)
                runs[(part, jit_name)] = lambda f=f: jax.block_until_ready(f(x, w, ct))
        ms = interleaved_ms(runs, repeats)
        for part in fns:
            rows.append([label, part, f"{ms[(part, 'jax.jit')]:.2f}", f"{ms[(part, 'xla.jit')]:.2f}"])
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lenet,cifar_cnn")
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    print(f"load at the start: {common.loadavg()}; CPU: {common.cpu_model()}")
    for name in names:
        ms = step_parts(name, args.repeats)
        print(common.md_table([f"{name} (ms)", "median"], [[k, f"{v:.2f}"] for k, v in ms.items()]))
        print()
    rows = conv_parts([c for name in names for c in CONVS[name]], args.repeats)
    print(common.md_table(["convolution (batch 128)", "part", "jax.jit: YNNPACK (ms)",
                           "robustjax.xla.jit: XLA's emitter (ms)"], rows))
    print(f"\nload at the end: {common.loadavg()}")


if __name__ == "__main__":
    main()
