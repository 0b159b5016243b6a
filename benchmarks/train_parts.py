"""Where a standard training step's time goes on CPU: the step's parts against PyTorch's, and each
convolution of the benchmark models under XLA's default (YNNPACK) and robustjax's compile option.

    python benchmarks/train_parts.py                 # both models, 15 interleaved rounds
    python benchmarks/train_parts.py --models lenet --repeats 7
    python benchmarks/train_parts.py --wgrad         # the weight gradient written five ways (part 3)

Part 1, per model (batch 128, random inputs, fresh weights; ``robustjax.xla.jit``): the forward pass, the
input gradient, ``value_and_grad`` of the mean cross-entropy with respect to the params, and a whole Adam
step; PyTorch's twin (``common.py``) does forward (no grad), forward + backward, and forward + backward +
``Adam.step``. Part 2: every convolution shape of the two models alone, forward, weight gradient and input
gradient, under plain ``jax.jit`` (XLA:CPU's default: YNNPACK) and ``robustjax.xla.jit`` (XLA's own
emitter). Part 3 (``--wgrad``, alone): each convolution's weight gradient written in the forms a model's
custom VJP could use instead of XLA's (:func:`wgrad_forms`), beside its forward. Medians of ``--repeats``
interleaved rounds after one compile call (ms). A diagnostic for
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


def wgrad_forms(shapes, repeats: int) -> tuple[list[list], list[str]]:
    """A convolution's weight gradient written four ways besides XLA's own, against its forward.

    XLA computes the weight gradient of an NHWC convolution as another convolution, over the activations
    transposed to [C, H, W, B] and the cotangent transposed to [H, W, B, C], with a kernel as large as the
    image and the kernel's window as its output; these forms are what JAX code could write instead (a custom VJP):
    the batch split in 2 or 4 parts whose gradients are summed (independent convolutions that XLA:CPU can
    run on both cores at once), one ``einsum`` contraction over batch and space per kernel tap, and im2col
    (``conv_general_dilated_patches``) followed by one contraction. All under ``robustjax.xla.jit``.
    """
    dn = ("NHWC", "HWIO", "NHWC")

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def xla_vjp(x, w, ct):
        return jax.vjp(lambda v: conv(x, v), w)[1](ct)[0]

    def split(n):
        def f(x, w, ct):
            return sum(xla_vjp(a, w, b) for a, b in zip(jax.numpy.split(x, n), jax.numpy.split(ct, n)))
        return f

    def shifted(x, w, ct):
        kh, kw = w.shape[:2]
        h, wd = x.shape[1:3]
        xp = jax.numpy.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
        taps = [jax.numpy.einsum("bhwc,bhwd->cd", xp[:, i:i + h, j:j + wd], ct) for i in range(kh) for j in range(kw)]
        return jax.numpy.stack(taps).reshape(w.shape)

    def im2col(x, w, ct):
        kh, kw, ci, co = w.shape
        patches = jax.lax.conv_general_dilated_patches(x, (kh, kw), (1, 1), "SAME", dimension_numbers=dn)
        return jax.numpy.einsum("bhwp,bhwd->pd", patches, ct).reshape(ci, kh, kw, co).transpose(1, 2, 0, 3)

    forms = {"forward": lambda x, w, ct: conv(x, w), "XLA's weight gradient": xla_vjp, "batch split in 2": split(2),
             "batch split in 4": split(4), "one einsum per tap": shifted, "im2col + einsum": im2col}
    rows = []
    for label, xs, ws in shapes:
        x = jax.random.normal(jax.random.key(0), (BATCH, *xs))
        w = jax.random.normal(jax.random.key(1), ws)
        ct = jax.random.normal(jax.random.key(2), (BATCH, *xs[:2], ws[3]))
        fns = {k: xla.jit(f) for k, f in forms.items()}
        ref = fns["XLA's weight gradient"](x, w, ct)
        err = {k: float(jax.numpy.max(jax.numpy.abs(f(x, w, ct) - ref)) / jax.numpy.max(jax.numpy.abs(ref)))
               for k, f in fns.items() if k != "forward"}
        ms = interleaved_ms({k: (lambda f=f: jax.block_until_ready(f(x, w, ct))) for k, f in fns.items()}, repeats)
        rows.append([label] + [f"{ms[k]:.1f}" for k in forms] + [f"{max(err.values()):.0e}"])
    return rows, list(forms)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lenet,cifar_cnn")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--wgrad", action="store_true", help="only part 3: the weight gradient's forms")
    args = p.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    print(f"load at the start: {common.loadavg()}; CPU: {common.cpu_model()}")
    if args.wgrad:
        rows, forms = wgrad_forms([c for name in names for c in CONVS[name]], args.repeats)
        print(common.md_table(["convolution (batch 128), ms"] + forms + ["max rel. error"], rows))
        print(f"\nload at the end: {common.loadavg()}")
        return
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
