"""Where PGD's time goes on CPU: max-pool forms, conv VJP forms and loop forms, on GanDef's LeNet.

    python benchmarks/attacks_speed.py --part pieces            # layer forward/VJP timings
    python benchmarks/attacks_speed.py --part loops --steps 40   # PGD-K per loop form + loop overhead ratio
    python benchmarks/attacks_speed.py --part all --reps 5

LeNet (GanDef's MNIST classifier): conv5x5-32 SAME, relu, 2x2 max-pool, conv5x5-64 SAME, relu, max-pool,
dense 1024 relu, dense 10; batch 128 of real MNIST test images; random He-initialised weights (speed does
not depend on the weights). The model is written in plain jax here so this benchmark depends only on
``robustjax.attacks``. Params are passed as jit arguments (as in a train step), never baked in as constants.

Variants are interleaved round-robin and each reports the median over ``--reps`` timed runs (after one
warm-up/compile run), because the CPU may be shared with other processes. Results go to stdout; the
findings are written up in docs/attack_speed_notes.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from robustjax import attacks
from robustjax.attacks import core

DATA = os.path.join(os.environ.get("ROBUSTJAX_TEST_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"),
                    "mnist.npz")
DN = ("NHWC", "HWIO", "NHWC")

# ----------------------------------------------------------------------------------------------------------
# Layer variants
# ----------------------------------------------------------------------------------------------------------


def pool_reduce_window(x):
    """2x2/2 max-pool as flax's nn.max_pool does it (lax.reduce_window; VJP = select_and_scatter)."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def pool_reshape(x):
    """2x2/2 max-pool as a reshape + max (VJP = compare/select, fusible)."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def pool_slices(x):
    """2x2/2 max-pool as the maximum of four strided slices."""
    return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]), jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


@jax.custom_vjp
def pool_mask_vjp(x):
    """reduce_window forward; backward routes the gradient to every input equal to its window's max."""
    return pool_reduce_window(x)


def _pool_mask_fwd(x):
    y = pool_reduce_window(x)
    return y, (x, y)


def _pool_mask_bwd(res, g):
    x, y = res
    b, h, w, c = x.shape
    up = lambda t: jnp.broadcast_to(t[:, :, None, :, None, :], (b, h // 2, 2, w // 2, 2, c)).reshape(x.shape)
    return (jnp.where(x == up(y), up(g), 0.0).astype(x.dtype),)


pool_mask_vjp.defvjp(_pool_mask_fwd, _pool_mask_bwd)
POOLS = {"reduce_window": pool_reduce_window, "reshape": pool_reshape, "slices": pool_slices,
         "mask_vjp": pool_mask_vjp}


def conv_lax(x, w):
    """SAME conv through lax.conv_general_dilated with JAX's own transpose rule for the VJP."""
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN)


@jax.custom_vjp
def conv_flip(x, w):
    """The same conv, whose input VJP is an ordinary conv with an explicitly flipped, transposed kernel."""
    return conv_lax(x, w)


def _conv_flip_fwd(x, w):
    return conv_lax(x, w), (x, w)


def _conv_flip_bwd(res, g):
    x, w = res
    # Input gradient of a stride-1 SAME conv (odd kernel): conv of g with the kernel flipped in space and
    # its in/out channels swapped, materialised as a plain HWIO array.
    g_x = conv_lax(g, jnp.flip(w, (0, 1)).swapaxes(2, 3))
    g_w = jax.vjp(lambda w_: conv_lax(x, w_), w)[1](g)[0]
    return g_x, g_w


conv_flip.defvjp(_conv_flip_fwd, _conv_flip_bwd)
CONVS = {"lax": conv_lax, "flip_vjp": conv_flip}


def init_lenet(key):
    ks = jax.random.split(key, 4)
    he = lambda k, shape, fan: jax.random.normal(k, shape) * np.sqrt(2.0 / fan)
    return {
        "c1": he(ks[0], (5, 5, 1, 32), 25), "b1": jnp.zeros(32),
        "c2": he(ks[1], (5, 5, 32, 64), 800), "b2": jnp.zeros(64),
        "d1": he(ks[2], (3136, 1024), 3136), "e1": jnp.zeros(1024),
        "d2": he(ks[3], (1024, 10), 1024), "e2": jnp.zeros(10),
    }


def lenet(params, x, pool=pool_reshape, conv=conv_lax):
    h = pool(jax.nn.relu(conv(x, params["c1"]) + params["b1"]))
    h = pool(jax.nn.relu(conv(h, params["c2"]) + params["b2"]))
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ params["d1"] + params["e1"])
    return h @ params["d2"] + params["e2"]


# ----------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------


def run_interleaved(variants: dict, reps: int) -> dict:
    """variants: name -> zero-arg callable. Returns name -> (compile+first-run seconds, [run seconds])."""
    first, times = {}, {name: [] for name in variants}
    for name, fn in variants.items():
        t = time.perf_counter()
        jax.block_until_ready(fn())
        first[name] = time.perf_counter() - t
    for _ in range(reps):
        for name, fn in variants.items():
            t = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - t)
    return {name: (first[name], times[name]) for name in variants}


def fmt(ts) -> str:
    return f"{np.median(ts) * 1e3:9.1f} ms  [{', '.join(f'{t * 1e3:.0f}' for t in ts)}]"


# ----------------------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------------------


def part_pieces(params, x, y, reps):
    print("\n## pieces (median ms over reps; [all runs])")
    a = jax.random.normal(jax.random.key(1), (x.shape[0], 28, 28, 32))
    variants = {}
    for name, pool in POOLS.items():
        fwd = jax.jit(pool)
        vjp = jax.jit(lambda a, pool=pool: jax.vjp(pool, a)[1](pool(a))[0])
        variants[f"pool {name} fwd"] = functools.partial(fwd, a)
        variants[f"pool {name} fwd+vjp"] = functools.partial(vjp, a)
    for cname, pnames in (("lax", tuple(POOLS)), ("flip_vjp", ("reshape",))):
        conv = CONVS[cname]
        for pname in pnames:
            f = functools.partial(lenet, pool=POOLS[pname], conv=conv)
            fwd = jax.jit(f)
            grad = jax.jit(lambda p, x, y, f=f: core.input_gradient(functools.partial(f, p), "ce")(x, y))
            variants[f"lenet conv={cname} pool={pname} forward"] = functools.partial(fwd, params, x)
            variants[f"lenet conv={cname} pool={pname} input-grad"] = functools.partial(grad, params, x, y)
    for name, (_, ts) in run_interleaved(variants, reps).items():
        print(f"{name:50s} {fmt(ts)}")


def _pgd_manual(logits_fn, x, y, key, *, eps, step_size, num_steps, loop, canonicalize):
    """PGD-Linf written out here (same math as attacks.pgd) to compare loop primitives, with or without
    core.canonicalize_convs on the body."""
    x0 = core.clip_box(x + jax.random.uniform(key, x.shape, x.dtype, -eps, eps), 0.0, 1.0)

    def body(_, x_adv):
        g = core.loss_and_grad(logits_fn, core.ce_loss, x_adv, y)[2]
        return core.project(x_adv + step_size * jnp.sign(g), x, eps, "linf", (0.0, 1.0))

    if canonicalize:
        body = core.canonicalize_convs(body)
    if loop == "scan":
        return jax.lax.scan(lambda c, _: (body(0, c), None), x0, None, length=num_steps)[0]
    return jax.lax.fori_loop(0, num_steps, body, x0)


def part_loops(params, x, y, reps, steps, convs, loops, pool, torch_too=False):
    print(f"\n## PGD-{steps} loop forms (eps 0.3, step 0.01, L-inf, pool={pool}; median ms; [all runs])")
    key = jax.random.key(0)
    kw = dict(eps=0.3, step_size=0.01, num_steps=steps)
    variants, grads = {}, {}
    for cname in convs:
        f = functools.partial(lenet, pool=POOLS[pool], conv=CONVS[cname])
        forms = {
            "fori": lambda p, x, y, k, f=f: attacks.pgd(functools.partial(f, p), x, y, k, unroll=1, **kw),
            "fori_unroll4": lambda p, x, y, k, f=f: attacks.pgd(functools.partial(f, p), x, y, k, unroll=4, **kw),
            "fori_raw": lambda p, x, y, k, f=f: _pgd_manual(functools.partial(f, p), x, y, k, loop="fori",
                                                           canonicalize=False, **kw),
            "scan": lambda p, x, y, k, f=f: _pgd_manual(functools.partial(f, p), x, y, k, loop="scan",
                                                       canonicalize=True, **kw),
            "scan_raw": lambda p, x, y, k, f=f: _pgd_manual(functools.partial(f, p), x, y, k, loop="scan",
                                                           canonicalize=False, **kw),
            "full_unroll": lambda p, x, y, k, f=f: attacks.pgd(functools.partial(f, p), x, y, k, unroll=True, **kw),
        }
        for lname in loops:
            if lname == "python":
                step = jax.jit(lambda p, x0, xa, y, f=f: core.project(
                    xa + 0.01 * jnp.sign(core.input_gradient(functools.partial(f, p))(xa, y)), x0, 0.3))

                def py_loop(p=params, step=step):
                    xa = x
                    for _ in range(steps):
                        xa = step(p, x, xa, y)
                    return xa

                variants[f"conv={cname} python-loop-of-jitted-steps"] = py_loop
            else:
                variants[f"conv={cname} {lname}"] = functools.partial(jax.jit(forms[lname]), params, x, y, key)
        grad = jax.jit(lambda p, x, y, f=f: core.input_gradient(functools.partial(f, p), "ce")(x, y))
        grads[cname] = functools.partial(grad, params, x, y)
        variants[f"conv={cname} one input-grad"] = grads[cname]
    if torch_too:
        variants["torchattacks PGD (same weights)"] = _torchattacks_pgd(params, x, y, steps)
    results = run_interleaved(variants, reps)
    n = x.shape[0]
    for name, (first, ts) in results.items():
        line = f"{name:46s} {fmt(ts)}  first call {first:6.1f} s"
        if name.startswith("torch"):
            line += f"  {n / np.median(ts):6.1f} img/s"
        elif "input-grad" not in name:
            cname = name.split()[0].split("=")[1]
            ratio = np.median(ts) / (steps * np.median(results[f"conv={cname} one input-grad"][1]))
            line += f"  {n / np.median(ts):6.1f} img/s  overhead ratio {ratio:4.2f}"
        print(line)


def _torchattacks_pgd(params, x, y, steps):
    """torchattacks.PGD (eps 0.3, alpha 0.01, random start) on a PyTorch copy of the same LeNet."""
    import torch
    import torchattacks

    class LeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.Conv2d(32, 64, 5, padding=2)
            self.d1, self.d2 = torch.nn.Linear(3136, 1024), torch.nn.Linear(1024, 10)

        def forward(self, z):
            z = torch.nn.functional.max_pool2d(torch.relu(self.c1(z)), 2)
            z = torch.nn.functional.max_pool2d(torch.relu(self.c2(z)), 2)
            z = z.permute(0, 2, 3, 1).reshape(z.shape[0], -1)  # NHWC flatten, as the JAX model
            return self.d2(torch.relu(self.d1(z)))

    net = LeNet().eval()
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))
    with torch.no_grad():
        net.c1.weight.copy_(t(params["c1"]).permute(3, 2, 0, 1)); net.c1.bias.copy_(t(params["b1"]))
        net.c2.weight.copy_(t(params["c2"]).permute(3, 2, 0, 1)); net.c2.bias.copy_(t(params["b2"]))
        net.d1.weight.copy_(t(params["d1"]).T); net.d1.bias.copy_(t(params["e1"]))
        net.d2.weight.copy_(t(params["d2"]).T); net.d2.bias.copy_(t(params["e2"]))
    xt, yt = t(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.array(y)).long()
    with torch.no_grad():
        diff = np.abs(net(xt).numpy() - np.asarray(lenet(params, x))).max()
    assert diff < 1e-3, f"torch copy of the LeNet disagrees with the JAX one by {diff}"
    attack = torchattacks.PGD(net, eps=0.3, alpha=0.01, steps=steps, random_start=True)
    return lambda: attack(xt, yt)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["pieces", "loops", "all"], default="all")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--convs", default="lax,flip_vjp", help="comma list of " + ",".join(CONVS))
    parser.add_argument("--pool", default="mask_vjp", choices=list(POOLS))
    parser.add_argument("--torch", action="store_true", help="also time torchattacks PGD on the same weights")
    parser.add_argument("--loops", default="fori_raw,fori,scan,fori_unroll4,full_unroll,python")
    args = parser.parse_args()

    print(f"# attacks_speed {datetime.datetime.now().isoformat(timespec='seconds')}  jax {jax.__version__}  "
          f"{platform.processor() or platform.machine()}  cpus {os.cpu_count()}  load {os.getloadavg()}")
    data = np.load(DATA)
    x = jnp.asarray(data["x_test"][: args.batch], jnp.float32) / 255.0
    y = jnp.asarray(data["y_test"][: args.batch], jnp.int32)
    params = init_lenet(jax.random.key(0))
    if args.part in ("pieces", "all"):
        part_pieces(params, x, y, args.reps)
    if args.part in ("loops", "all"):
        part_loops(params, x, y, args.reps, args.steps, args.convs.split(","), args.loops.split(","),
                   args.pool, args.torch)
    print(f"# done, load {os.getloadavg()}")


if __name__ == "__main__":
    main()
