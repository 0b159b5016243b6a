"""The ATGAN paper's sweep in one command: ATGAN and its baseline CNN over train radii eps_t, with and
without FracAT, then Figs. 2-4 (the family of robustness curves), Tables 2-4 (point-wise accuracies at the
table's eps_i), Figs. 5-7 (saliency maps across eps_t and eps_i) and Table 5 (the obfuscation checks) from
the run directories.

    # MNIST on a CPU (the budget of docs/results.md: 4,096 training images, 6 epochs, PGD-10 in training)
    python benchmarks/atgan_sweep.py --dataset mnist --npz ../shared/data/mnist.npz --out runs/atgan_sweep_mnist \\
        --eps_t 0 0.2 0.3 --frac 1 0.5 --train 4096 --epochs 6 --ramp 2 --train_steps 10 --eval 500
    # the paper's scale (every eps_t, full data, the paper's epochs and PGD), e.g. on a GPU / TPU:
    python benchmarks/atgan_sweep.py --dataset mnist --out runs/atgan_sweep_mnist --paper
    python benchmarks/atgan_sweep.py --dataset cifar10 --out runs/atgan_sweep_cifar10 --paper --print

Each run is what ``main.py`` would do with the same config (``configs/atgan_<dataset>.py`` and
``configs/atgan_baseline_<dataset>.py`` with ``eps_t`` / ``frac``, then the budget overrides below): the
script prints the equivalent ``main.py`` command of every run, and ``--print`` prints them without running
anything. A finished run (``results.json`` present) is not run again, an interrupted one resumes from its
checkpoint: re-run the same command. ``eps_t = 0`` is standard training for the baseline and ATGAN without
adversarial training (FracAT does not apply to it). ATGAN's loss network is the baseline trained at
``eps_t = 0`` (the plain CNN), trained first and reused (``defense.loss_net_workdir``), as the paper does.

Budget options (they override the configs' paper settings; leave them out with ``--paper``):
``--train`` training images (first N), ``--epochs``, ``--train_steps`` train-time PGD steps (step
``2.5 * eps_t / steps``), ``--ramp`` epochs of linear eps curriculum, ``--eval`` test images.

Evaluation: the configs' own suite (``linf_suite``: FGSM and the paper's PGD at eps_t with its step,
PGD-1000 and AutoAttack there, the PGD robustness curve over the paper's eps_i grid with the step scaled to
each radius, the gradient-masking diagnostics with unbounded PGD, saliency maps; on MNIST also PGD-40
with a step that converges, ``pgd40c_<eps>``, so Table 5's two readings of the paper's step stand side by
side). The comparison goes to ``<out>/compare`` (accuracy on
adversarial examples, the paper's measure) and ``<out>/compare_robust`` (robust accuracy). It covers every
finished run of the sweep under ``--out``, not only this invocation's, so a sweep can be run in parts
(``--eps_t 0.3`` today, ``--eps_t 0.2 --frac 0.5`` tomorrow) and still gives one table; ``summary.json``
keeps the ``main.py`` command recorded for each run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import runs as runs_lib  # noqa: E402
from benchmarks.runs import load_config  # noqa: E402

# The paper's grids (Sec. 4.2) in the configs' units (MNIST pixels; SVHN / CIFAR-10 x/255) and Tables 2-4's eps_i.
PAPER_EPS_T = {"mnist": [0.0, 0.1, 0.15, 0.2, 0.25, 0.3], "svhn": [0, 2, 4, 6, 8, 10], "cifar10": [0, 2, 4, 6, 8, 10]}
TABLE_EPS = {"mnist": [0.15, 0.3, 0.45], "svhn": [8 / 255, 12 / 255, 14 / 255], "cifar10": [8 / 255, 12 / 255, 14 / 255]}


def _fmt(v: float) -> str:
    return f"{v:g}"


def plan(a) -> list[dict]:
    """The runs, in order (the plain baseline first: it is ATGAN's loss network)."""
    runs = []
    eps_list = sorted(set(float(e) for e in a.eps_t))
    if 0.0 not in eps_list:
        eps_list = [0.0] + eps_list  # the loss network
    for eps_t in eps_list:
        for frac in ([1.0] if eps_t == 0 else sorted(set(float(f) for f in a.frac), reverse=True)):
            for model in ("baseline", "atgan"):
                arg = f"eps_t={_fmt(eps_t)}" + (f",frac={_fmt(frac)}" if frac != 1.0 else "")
                name = f"{model}-eps_t{_fmt(eps_t)}" + (f"-frac{_fmt(frac)}" if frac != 1.0 else "")
                cfg = "atgan_baseline_" + a.dataset if model == "baseline" else "atgan_" + a.dataset
                runs.append({"name": name, "config": cfg, "arg": arg, "model": model, "eps_t": eps_t, "frac": frac})
    return runs


RUN_NAME = re.compile(r"^(baseline|atgan)-eps_t([0-9.e+-]+?)(?:-frac([0-9.e+-]+))?$")


def finished_runs(out: str) -> list[str]:
    """Names of the sweep's finished runs under ``out`` (``results.json`` present), in the plan's order."""
    found = []
    for name in os.listdir(out) if os.path.isdir(out) else []:
        m = RUN_NAME.match(name)
        if m and os.path.exists(os.path.join(out, name, "results.json")):
            try:
                key = (float(m[2]), -float(m[3] or 1.0), m[1] != "baseline")
            except ValueError:
                continue
            found.append((key, name))
    return [name for _, name in sorted(found)]


def overrides(a, run: dict, config, out: str) -> dict:
    """``--config.<field>`` overrides of one run (applied to ``config`` too)."""
    o = runs_lib.budget_overrides(a)
    if not a.paper:
        attack = config.defense.get("attack")
        if attack is not None and float(attack.get("eps", 0.0)) > 0 and run["eps_t"] > 0:
            eps = float(attack.eps)
            o["defense.attack.num_steps"] = a.train_steps
            o["defense.attack.step_size"] = 2.5 * eps / a.train_steps
            o["defense.eps_ramp_epochs"] = float(a.ramp)
    if run["model"] == "atgan":
        o["defense.loss_net_epochs"] = 0.0
        o["defense.loss_net_workdir"] = os.path.join(out, "baseline-eps_t0")
    return runs_lib.apply(config, o)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(PAPER_EPS_T), default="mnist")
    p.add_argument("--npz", default="", help="an npz of the dataset (else the config's tfds source)")
    p.add_argument("--out", default="")
    p.add_argument("--eps_t", type=float, nargs="+", default=None,
                   help="train radii in the configs' units (MNIST pixels, SVHN/CIFAR-10 x/255); default: the paper's")
    p.add_argument("--frac", type=float, nargs="+", default=[1.0, 0.5], help="FracAT fractions (1 = PGD-AT)")
    p.add_argument("--paper", action="store_true", help="the configs' paper settings, no budget overrides")
    p.add_argument("--train", type=int, default=4096)
    p.add_argument("--epochs", type=float, default=6)
    p.add_argument("--ramp", type=float, default=2)
    p.add_argument("--train_steps", type=int, default=10)
    p.add_argument("--eval", type=int, default=500)
    p.add_argument("--print", action="store_true", help="print the main.py commands, run nothing")
    a = p.parse_args()
    if a.eps_t is None:
        a.eps_t = PAPER_EPS_T[a.dataset]
    out = a.out or os.path.join("runs", f"atgan_sweep_{a.dataset}")

    configs = []
    for run in plan(a):
        config = load_config(run["config"], run["arg"])
        workdir = os.path.join(out, run["name"])
        o = overrides(a, run, config, out)
        run["command"] = runs_lib.main_command(run["config"], run["arg"], o, workdir)
        configs.append((run, config, workdir))
        print(run["command"], flush=True)
    if a.print:
        return

    from robustjax.evaluate import compare

    runs_lib.run_missing((run["name"], config, workdir) for run, config, workdir in configs)

    names = finished_runs(out)
    runs = [compare.load_run(os.path.join(out, n)) for n in names]
    eps = TABLE_EPS[a.dataset]
    for sub, metric in (("compare", "accuracy_on_adversarial"), ("compare_robust", "robust_accuracy")):
        _, md = compare.write(runs, os.path.join(out, sub), eps=eps, metric=metric)
        if metric == "accuracy_on_adversarial":
            print(md)
    summary_path = os.path.join(out, "summary.json")
    earlier = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            earlier = json.load(f).get("runs", {})
    commands = {n: earlier.get(n, {}).get("command") for n in names}
    commands.update({run["name"]: run["command"] for run, _, _ in configs})
    summary = {"args": vars(a), "runs": {}}
    for name, r in zip(names, runs):
        res = r.results
        diag = res.get("diagnostics", {}).get("checks", {})
        summary["runs"][name] = {
            "command": commands.get(name), "clean": res["clean_accuracy"],
            "attacks": {k: {m: v.get(m) for m in ("robust_accuracy", "accuracy_on_adversarial", "eps")}
                        for k, v in res["attacks"].items()},
            "unbounded_pgd": diag.get("unbounded_pgd", {}).get("accuracy_on_adversarial"),
            "warnings": res.get("diagnostics", {}).get("warnings", []),
            "train_seconds": res["info"].get("train_seconds"),
        }
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"wrote {out}/compare, {out}/compare_robust, {out}/summary.json")


if __name__ == "__main__":
    main()
