"""Attack speed: images/second of robustjax, torchattacks and foolbox on identical weights, in one run.

    python benchmarks/attacks.py --quick                   # batch 16, 2 repeats, tiny budgets: a smoke run
    python benchmarks/attacks.py --write                   # batch 128, the table in docs/benchmarks.md
    python benchmarks/attacks.py --models lenet --attacks pgd40 --repeats 7

Models (``common.py``): GanDef's LeNet trained on real MNIST, and a CIFAR-10 CNN (ConvPool-CNN-C at width
0.25 with 2x2 pools) trained briefly (3 epochs) on the 10,000-image CIFAR-10 subset. Inputs: the first
``--batch`` test images of each dataset.

Attacks and budgets (identical for every library):

* FGSM; PGD-40 (L-inf, random start; LeNet eps 0.3 step 0.01, CIFAR eps 8/255 step 2/255);
* C&W L2: 1 binary-search step (c = 1 fixed) x 100 Adam steps, lr 0.01, early abort off where the library
  allows it (torchattacks' CW always stops when its summed cost rises at a tenth-of-budget check: the
  number of steps it really ran is counted and printed);
* APGD-CE, 100 steps, 1 restart (robustjax and torchattacks; foolbox has none) and AutoAttack standard
  (robustjax and torchattacks) at the PGD eps.

Protocol: robustjax functions are jitted once (``robustjax.xla.jit``: ``jax.jit`` plus the CPU compile
options robustjax uses everywhere; the ``robustjax-jax.jit`` column is the same attack under plain
``jax.jit``, i.e. XLA's defaults, for FGSM and PGD; ``robustjax-user`` is the LeNet as a user writes it
in plain flax, with ``nn.max_pool``, attacked under plain ``jax.jit``; ``robustjax-chunked`` is
APGD/AutoAttack with ``chunk_size=32``, attacking only what is not yet fooled) with the params as a jit
argument, run once to compile (excluded), and timed with ``block_until_ready``; torchattacks and foolbox
run a warm-up call too. Each measurement is the median of ``--repeats`` timed calls, the libraries
interleaved round-robin so that load from other processes spreads evenly. torch uses
``set_num_threads(2)``; XLA uses both cores by default. foolbox is run twice: on the JAX model itself
(``foolbox-jax``, one jitted model call per step, gradients through it) and on the PyTorch twin
(``foolbox-torch``).

Loop overhead: robustjax PGD-K time / (K x the time of one jitted input gradient of the CE loss on the same
batch) for K = 40; the target (issue 3) is <= 1.05.
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

from robustjax import attacks, xla  # noqa: E402

ATTACKS = ("fgsm", "pgd40", "cw", "apgd", "autoattack")
LIBS = ("robustjax", "robustjax-jax.jit", "robustjax-user", "robustjax-chunked", "torchattacks", "foolbox-jax",
        "foolbox-torch")
CHUNK = 32  # robustjax-chunked: apgd/autoattack with chunk_size=CHUNK (attack only what is left)
EPS = {"lenet": (0.3, 0.01), "cifar_cnn": (8 / 255, 2 / 255)}


class CountingModule:
    """Wraps a torch module and counts forward calls (to see how many C&W steps torchattacks ran)."""

    def __new__(cls, module):
        torch = common._torch()

        class _Counting(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner
                self.calls = 0

            def forward(self, x):
                self.calls += 1
                return self.inner(x)

        return _Counting(module).eval()


def build_runners(b: common.Bundle, x: np.ndarray, y: np.ndarray, attack: str, budget: dict, libs,
                  aa_full: bool = True):
    """{lib: zero-argument callable that runs the attack on the batch and blocks until it is done}."""
    import foolbox as fb
    import torchattacks

    torch = common._torch()
    eps, step = EPS[b.name]
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    xt, yt = torch.from_numpy(common.nchw(x)), torch.from_numpy(y.astype(np.int64))
    key = jax.random.PRNGKey(0)
    k_pgd, k_cw, k_apgd = budget["pgd_steps"], budget["cw_steps"], budget["apgd_steps"]
    runners, notes = {}, {}

    def jitted(fn, jit=xla.jit, logits_fn=b.logits_fn, **kw):
        f = jit(lambda p, xx, yy, kk: fn(logits_fn(p), xx, yy, kk, **kw))
        return lambda: jax.block_until_ready(f(b.params, xj, yj, key))

    def user(fn, **kw):  # the LeNet as a user writes it (nn.max_pool), under the user's own plain jax.jit
        if b.name != "lenet":
            return {}
        np.testing.assert_allclose(common.user_lenet_logits(b.params)(xj[:16]), b.logits_fn()(xj[:16]),
                                   rtol=1e-4, atol=1e-4)
        return {"robustjax-user": jitted(fn, jit=jax.jit, logits_fn=common.user_lenet_logits, **kw)}

    def torch_run(atk):
        def run():
            with torch.enable_grad():
                return atk(xt, yt)
        return run

    fmodels = {}
    if "foolbox-jax" in libs:
        fmodels["foolbox-jax"] = (fb.JAXModel(jax.jit(lambda xx: b.model.apply({"params": b.params}, xx)),
                                              bounds=(0, 1)), xj, yj)
    if "foolbox-torch" in libs:
        fmodels["foolbox-torch"] = (fb.PyTorchModel(b.torch_model, bounds=(0, 1)), xt, yt)

    def fb_run(fbattack, epsilons):
        out = {}
        for name, (fm, xi, yi) in fmodels.items():
            def run(fm=fm, xi=xi, yi=yi):
                _, clipped, _ = fbattack(fm, xi, yi, epsilons=epsilons)
                return jax.block_until_ready(clipped) if name == "foolbox-jax" else clipped
            out[name] = run
        return out

    if attack == "fgsm":
        runners["robustjax"] = jitted(attacks.fgsm, eps=eps)
        runners["robustjax-jax.jit"] = jitted(attacks.fgsm, jit=jax.jit, eps=eps)
        runners.update(user(attacks.fgsm, eps=eps))
        runners["torchattacks"] = torch_run(torchattacks.FGSM(b.torch_model, eps=eps))
        runners.update(fb_run(fb.attacks.FGSM(), eps))
    elif attack == "pgd40":
        runners["robustjax"] = jitted(attacks.pgd, eps=eps, step_size=step, num_steps=k_pgd, random_start=True)
        runners["robustjax-jax.jit"] = jitted(attacks.pgd, jit=jax.jit, eps=eps, step_size=step, num_steps=k_pgd,
                                              random_start=True)
        runners.update(user(attacks.pgd, eps=eps, step_size=step, num_steps=k_pgd, random_start=True))
        runners["torchattacks"] = torch_run(torchattacks.PGD(b.torch_model, eps=eps, alpha=step, steps=k_pgd,
                                                             random_start=True))
        runners.update(fb_run(fb.attacks.LinfPGD(abs_stepsize=step, steps=k_pgd, random_start=True), eps))
    elif attack == "cw":
        runners["robustjax"] = jitted(attacks.cw_l2, confidence=0.0, initial_const=1.0, binary_search_steps=1,
                                      num_steps=k_cw, learning_rate=0.01, abort_early=False)
        counted = CountingModule(b.torch_model)
        ta = torchattacks.CW(counted, c=1.0, kappa=0.0, steps=k_cw, lr=0.01)

        def ta_run():
            counted.calls = 0
            with torch.enable_grad():
                out = ta(xt, yt)
            notes["torchattacks"] = f"{counted.calls - 1} of {k_cw} steps"  # -1: torchattacks' own label check
            return out

        runners["torchattacks"] = ta_run
        runners.update(fb_run(fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=1, steps=k_cw, stepsize=0.01, confidence=0.0, initial_const=1.0,
            abort_early=False), None))
    elif attack == "apgd":
        runners["robustjax-chunked"] = jitted(attacks.apgd, eps=eps, norm="linf", num_steps=k_apgd, loss="ce",
                                              restarts=1, chunk_size=CHUNK)
        runners["robustjax"] = jitted(attacks.apgd, eps=eps, norm="linf", num_steps=k_apgd, loss="ce",
                                      restarts=1)
        runners["torchattacks"] = torch_run(torchattacks.APGD(b.torch_model, norm="Linf", eps=eps,
                                                              steps=k_apgd, n_restarts=1, seed=0, loss="ce"))
    elif attack == "autoattack":
        q = budget["aa_queries"]
        if aa_full:
            runners["robustjax"] = jitted(attacks.autoattack, eps=eps, norm="linf", version="standard",
                                          num_steps=k_apgd, num_queries=q)
        runners["robustjax-chunked"] = jitted(attacks.autoattack, eps=eps, norm="linf", version="standard",
                                              num_steps=k_apgd, num_queries=q, chunk_size=CHUNK)
        # torchattacks.AutoAttack builds its APGD/APGD-T/FAB with their default steps=10 (not the paper's 100),
        # so the same four components are assembled here with the budget given to robustjax.
        m = b.torch_model
        ta = torchattacks.MultiAttack([
            torchattacks.APGD(m, norm="Linf", eps=eps, steps=k_apgd, n_restarts=1, seed=0, loss="ce"),
            torchattacks.APGDT(m, norm="Linf", eps=eps, steps=k_apgd, n_restarts=1, seed=0, n_classes=10),
            torchattacks.FAB(m, norm="Linf", eps=eps, steps=k_apgd, n_restarts=1, seed=0,
                             multi_targeted=True, n_classes=10),
            torchattacks.Square(m, norm="Linf", eps=eps, n_queries=q, n_restarts=1, seed=0),
        ])
        runners["torchattacks"] = torch_run(ta)
    else:
        raise ValueError(f"unknown attack {attack!r}; choose from {ATTACKS}")
    return {k: v for k, v in runners.items() if k in libs}, notes


def robust_accuracy(b: common.Bundle, x_adv, y: np.ndarray) -> float:
    """Accuracy of the JAX model on one library's adversarial batch (a jax array, or an NCHW torch tensor)."""
    if hasattr(x_adv, "detach"):
        x_adv = common.nhwc(x_adv.detach().cpu().numpy())
    logits = np.asarray(b.logits(b.params, jnp.asarray(np.asarray(x_adv, np.float32))))
    return float(np.mean(np.argmax(logits, -1) == y))


def loop_overhead(b: common.Bundle, x, y, k: int, repeats: int) -> dict:
    """PGD-K time / (K x one jitted input-gradient time), both interleaved; plus the two times."""
    eps, step = EPS[b.name]
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    key = jax.random.PRNGKey(0)
    grad = xla.jit(lambda p, xx, yy: attacks.input_gradient(b.logits_fn(p), "ce")(xx, yy))
    pgd = xla.jit(lambda p, xx, yy, kk: attacks.pgd(b.logits_fn(p), xx, yy, kk, eps=eps, step_size=step,
                                                     num_steps=k, random_start=True))
    res = common.interleaved({"grad": lambda: grad(b.params, xj, yj), "pgd": lambda: pgd(b.params, xj, yj, key)},
                             repeats)
    g, p = res["grad"].median, res["pgd"].median
    return {"grad_ms": 1e3 * g, "pgd_s": p, "ratio": p / (k * g)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="lenet,cifar_cnn")
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--libs", default=",".join(LIBS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--aa-repeats", type=int, default=3, help="repeats for AutoAttack (slow)")
    p.add_argument("--aa-models", default="lenet,cifar_cnn", help="models to run AutoAttack on")
    p.add_argument("--aa-full-models", default="lenet",
                   help="models where the unchunked robustjax AutoAttack runs too (on the CIFAR CNN images stay "
                        "robust after APGD-CE, so every component runs on the whole batch: many minutes a call)")
    p.add_argument("--quick", action="store_true", help="batch 16, 2 repeats, tiny budgets (smoke run)")
    p.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = p.parse_args(argv)
    budget = dict(pgd_steps=40, cw_steps=100, apgd_steps=100, aa_queries=5000)
    if args.quick:
        args.batch, args.repeats, args.aa_repeats = 16, 2, 1
        budget = dict(pgd_steps=5, cw_steps=10, apgd_steps=10, aa_queries=50)
    model_names = [m for m in args.models.split(",") if m]
    attack_names = [a for a in args.attacks.split(",") if a]
    libs = [lib for lib in args.libs.split(",") if lib]
    for a in attack_names:
        if a not in ATTACKS:
            p.error(f"--attacks: unknown {a!r}; choose from {ATTACKS}")
    for lib in libs:
        if lib not in LIBS:
            p.error(f"--libs: unknown {lib!r}; choose from {LIBS}")

    load_start = common.loadavg()
    t_start = time.perf_counter()
    rows, overhead_rows, printed = [], [], []
    for mname in model_names:
        b = common.load(mname)
        x, y = common.load_test(b.data, args.batch)
        eps, step = EPS[mname]
        for attack in attack_names:
            if attack == "autoattack" and mname not in args.aa_models.split(","):
                continue
            runners, notes = build_runners(b, x, y, attack, budget, libs,
                                           aa_full=mname in args.aa_full_models.split(","))
            reps = args.aa_repeats if attack == "autoattack" else args.repeats
            outs = {}
            res = common.interleaved(runners, reps, outs)
            accs = {lib: robust_accuracy(b, out, y) for lib, out in outs.items()}
            ips = {lib: args.batch / t.median for lib, t in res.items()}
            line = (f"{mname} {attack}: " + ", ".join(f"{lib} {v:.1f} img/s (robust acc {accs[lib]:.3f})"
                                                     for lib, v in ips.items())
                    + (f" ({notes})" if notes else "") + f"  [load {common.loadavg()}]")
            print(line, flush=True)
            printed.append(line)
            rows.append((mname, attack, ips, accs, notes))
        if "pgd40" in attack_names:
            k = budget["pgd_steps"]
            ov = loop_overhead(b, x, y, k, args.repeats)
            line = (f"{mname} loop overhead: PGD-{k} {ov['pgd_s']:.3f}s, one input gradient {ov['grad_ms']:.1f} ms,"
                    f" ratio {ov['ratio']:.3f}")
            print(line, flush=True)
            overhead_rows.append((mname, k, ov))
    total = time.perf_counter() - t_start

    names = {"fgsm": "FGSM", "pgd40": f"PGD-{budget['pgd_steps']}",
             "cw": f"C&W L2 (1 x {budget['cw_steps']})", "apgd": f"APGD-CE ({budget['apgd_steps']} steps)",
             "autoattack": "AutoAttack (standard)"}
    table_rows = []
    for mname, attack, ips, _, notes in rows:
        cells = []
        for lib in libs:
            if lib in ips:
                cell = f"{ips[lib]:.1f}"
                if lib in notes:
                    cell += f" ({notes[lib]})"
                cells.append(cell)
            else:
                cells.append("-")
        best = max([ips[k] for k in ("robustjax", "robustjax-chunked") if k in ips], default=float("nan"))
        ratio = best / ips["torchattacks"] if "torchattacks" in ips else float("nan")
        table_rows.append([mname, names[attack]] + cells + [f"{ratio:.2f}"])
    table = common.md_table(["model", "attack"] + list(libs) + ["best robustjax / torchattacks"], table_rows)
    acc_table = common.md_table(["model", "attack"] + list(libs), [
        [mname, names[attack]] + [f"{accs[lib]:.3f}" if lib in accs else "-" for lib in libs]
        for mname, attack, _, accs, _ in rows])
    ov_table = common.md_table(
        ["model", "K", "PGD-K (s)", "one input gradient (ms)", "PGD-K / (K x gradient)"],
        [[m, k, f"{ov['pgd_s']:.3f}", f"{ov['grad_ms']:.1f}", f"{ov['ratio']:.3f}"] for m, k, ov in overhead_rows])
    print()
    print(table)
    print()
    print(acc_table)
    print()
    print(ov_table)
    verdicts = []
    for mname, attack, ips, _, _ in rows:
        if attack == "pgd40" and "robustjax" in ips and "torchattacks" in ips:
            ok = ips["robustjax"] >= ips["torchattacks"]
            verdicts.append(f"{mname}: robustjax PGD-{budget['pgd_steps']} {ips['robustjax']:.1f} vs torchattacks "
                            f"{ips['torchattacks']:.1f} img/s -> {'holds' if ok else 'FAILS'}")
        if attack == "pgd40" and "robustjax-user" in ips and "torchattacks" in ips:
            ok = ips["robustjax-user"] >= ips["torchattacks"]
            verdicts.append(f"{mname}: the user's LeNet (nn.max_pool, plain jax.jit) PGD-{budget['pgd_steps']} "
                            f"{ips['robustjax-user']:.1f} vs torchattacks {ips['torchattacks']:.1f} img/s -> "
                            f"{'holds' if ok else 'FAILS'}")
        if attack == "pgd40" and "robustjax" in ips and "foolbox-jax" in ips:
            verdicts.append(f"{mname}: robustjax PGD-{budget['pgd_steps']} is {ips['robustjax'] / ips['foolbox-jax']:.1f}x foolbox-jax"
                            + (f", {ips['robustjax'] / ips['foolbox-torch']:.1f}x foolbox-torch"
                               if "foolbox-torch" in ips else ""))
    for m, k, ov in overhead_rows:
        verdicts.append(f"{m}: loop overhead {ov['ratio']:.3f} -> {'holds' if ov['ratio'] <= 1.05 else 'FAILS'} (<= 1.05)")
    print("\n".join(verdicts))

    if args.write:
        cmd = "python benchmarks/attacks.py " + " ".join(sys.argv[1:] if argv is None else argv)
        eps_txt = "; ".join(f"{m}: eps {EPS[m][0]:.4g}, PGD step {EPS[m][1]:.4g}" for m in model_names)
        body = "\n".join([
            f"Images per second (higher is better), batch {args.batch}, CPU, median of {args.repeats} timed calls "
            f"({args.aa_repeats} for AutoAttack) after one warm-up (compilation excluded), libraries interleaved. "
            f"Identical weights (see `benchmarks/common.py`): GanDef's LeNet trained {common.LENET_EPOCHS} epochs "
            "on real MNIST; the CIFAR-10 CNN is ConvPool-CNN-C at width 0.25 with 2x2 pools (24/48 channels), "
            f"trained {common.CIFAR_EPOCHS} epochs on the 10k CIFAR-10 subset (37% clean accuracy: a speed "
            f"model only). Budgets: {eps_txt}; PGD with random start; C&W 1 binary step (c = 1) x "
            f"{budget['cw_steps']} Adam steps, no early abort where the library allows it (torchattacks' CW "
            "always may stop early: its step count is shown); APGD-CE 100 steps, 1 restart; AutoAttack standard "
            "(APGD-CE, APGD-T, FAB-T, Square 5000; 100 steps each, 9 targets; for torchattacks assembled from its "
            "components with that budget, since `torchattacks.AutoAttack` leaves APGD/APGD-T/FAB at their default 10 "
            f"steps) at the PGD eps, on {args.aa_models} (unchunked robustjax on {args.aa_full_models} only). "
            "robustjax = the attack compiled with "
            "`robustjax.xla.jit` (jax.jit plus the CPU compile option robustjax uses for everything it compiles: "
            "YNNPACK for matmuls only, XLA's own convolutions; see `robustjax/xla.py`); robustjax-jax.jit = the "
            "same attack under plain `jax.jit` (XLA's defaults; FGSM and PGD only); robustjax-user = the LeNet as "
            "a user writes it in plain flax (`nn.Conv`, `nn.max_pool`, same weights; `common.user_lenet_logits`) "
            "attacked under plain `jax.jit` (LeNet, FGSM and PGD only); robustjax-chunked = "
            f"`chunk_size={CHUNK}` (APGD, AutoAttack): only the examples not yet fooled are attacked, in chunks "
            "of 32, as torchattacks and the reference AutoAttack do (on the CIFAR CNN, with 37% clean accuracy, "
            "most of the batch needs no attack). foolbox-jax = foolbox on the "
            "JAX model itself (its own plain `jax.jit`, so XLA's defaults); foolbox-torch = foolbox on the PyTorch "
            "twin; foolbox has no APGD/AutoAttack.",
            "",
            *common.machine_lines(cmd),
            f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {common.loadavg()} "
            f"(2 cores shared with other processes); total wall time {total / 60:.1f} min",
            "",
            table,
            "",
            "Robust accuracy of each library's adversarial batch (the JAX model's accuracy on it; lower = stronger "
            "attack; for C&W, the share of the batch it did not fool). A speed ratio counts only at equal or lower "
            "robust accuracy:",
            "",
            acc_table,
            "",
            "Loop overhead (robustjax PGD-K with random start vs K jitted CE input gradients on the same batch; "
            "target <= 1.05):",
            "",
            ov_table,
            "",
            "Verdicts: " + "; ".join(verdicts) + ".",
        ])
        path = os.path.join(common.ROOT, "docs", "benchmarks.md")
        common.write_section(path, "Attack speed", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
