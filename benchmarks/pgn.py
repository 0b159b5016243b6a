"""PGN against its paper on the CIFAR-10 subset: Table 3's rows with benign accuracy balanced, Fig. 5's
robustness curve over a small sweep, and seconds per epoch beside the paper's ratios.

Full budget (the results run; see "Cost" for how long it takes on 2 CPU cores):

    python benchmarks/pgn.py --npz ../shared/data/cifar10_subset.npz --out runs/pgn_cifar10 \
        --epochs 30 --width 0.5 --eval 500 --select 500 --aa_eval 200 --curve_eval 200 \
        --cl_sweep 10 25 50 100 --eps_sweep 0.05 0.1 0.2 0.3

The CPU-sized run in docs/results.md (50 min on 2 idle cores):

    python benchmarks/pgn.py --npz ../shared/data/cifar10_subset.npz --out runs/pgn_cifar10 --epochs 12 \
        --width 0.25 --eval 300 --select 300 --aa_eval 150 --curve_eval 100 --eps_sweep 0.1 0.3 --cl_sweep 25 50

End-to-end check at a tiny budget (every step of the script, numbers meaningless):

    python benchmarks/pgn.py --npz ../shared/data/cifar10_subset.npz --out runs/pgn_tiny --tiny

Runs (each a ``main.py``-style work directory under ``--out``, trained by ``experiment.run`` from
configs/pgn_cifar10.py and configs/pgn_baseline_cifar10.py with the same budget: ``--train`` images,
``--epochs``, classifier width ``--width``, batch 128, Adam 5e-4, EMA 0.998, Table 1's classifier). PGN's
generator is narrowed with the classifier (``--gen_width``, default ``--width``): at full size it costs
more than the classifier (about 370M multiply-adds an image against 300M), and shrinking both alike
keeps the cost ratios comparable with the paper's.

- ``naive``: plain training (Table 3's "Baseline"); ``naive_source``: the same with another seed, the
  independently trained network the black-box examples are crafted on;
- ``fgm_at_eps<e>``: FGM-AT, L2 radius ``e`` for every ``e`` of ``--eps_sweep``: the ``fgm_at`` defense
  with alpha 0 (``robustjax.defenses.pgn.baseline_config``);
- ``pgd_at_eps<e>``: L2 PGD-AT, 10 steps of 0.25 e from a random start (Table 1's PGD iter 10);
- ``pgn_cl<c>``: PGN with c_L = ``c`` for every ``c`` of ``--cl_sweep``.

Table 3's rows are naive, FGM-AT and PGD-AT at eps 0.1, and PGN at c_L 50 (``--table_eps``,
``--table_cl``).

Benign-accuracy balancing (the paper: "Benign accuracy of all defenses were balanced out with that of the
baseline network before the comparison"; by early stopping or by the hyperparameter). Implemented: early
stopping. Every run keeps a checkpoint every ``--select_every`` epochs; the benign accuracy of each is
measured on ``--select`` held-out test images (``test[eval : eval + select]``, never attacked, so the
choice does not peek at the reported numbers). The target is the naive network's final accuracy there;
each defended row takes its checkpoint closest to the target. If a defended row never comes within
``--tolerance`` of it (adversarial training usually costs benign accuracy), the target becomes the lowest
of the rows' best accuracies and the naive network is early-stopped to it as well. The table says which
target was used and each row's checkpoint and accuracy. Fig. 5's sweep points are final checkpoints.

Evaluation (all L2, on the first ``--eval`` test images, of the deployed classifier: EMA weights, eval
mode), with the attack specs of configs/pgn_cifar10.py (Table 1's budgets, CleverHans's defaults for the
rest): FGM eps 0.5, MIM eps 0.5 x 100 (step 0.06), DeepFool 100 iterations, C&W 100 iterations x 5
binary-search steps; AutoAttack-L2 (standard) at eps 0.5 on the first ``--aa_eval`` of them.

- W-box accuracy (FGM, MIM, AutoAttack): the fraction classified correctly after the attack (what the
  paper reports; it counts examples that were wrong clean and stay wrong as wrong).
- Mean / median L2 (DeepFool, C&W): over the successful perturbations (the example was classified
  correctly clean and is not after the attack); the mean for C&W is rho_cw (Eq. 6). The success rate is
  shown beside them: a failed minimal attack leaves the example out of the mean.
- B-box accuracy: the accuracy of each row on the examples of the same four attacks crafted on
  ``naive_source`` (white-box there).
- Seconds per epoch: steps per epoch / the median logged steps per second of training after the first
  logging window (which holds compilation); all runs share one machine in sequence, so concurrent load
  on it shows up in these numbers.

Outputs in ``--out``: ``results.md`` (the tables, also printed), ``summary.json``, ``curve.png`` (Fig. 5:
benign accuracy against rho_cw while sweeping c_L and eps), ``cw_curves.png`` (Fig. 4: accuracy against
the C&W perturbation norm for the balanced rows). Runs and evaluations already on disk are reused (delete
a run's folder to redo it).

Cost (``--tiny`` on the shared 2-core CPU: see the bottom of results.md, "seconds" per run): a full-budget
row trains ``epochs x 10000 / 128`` steps; per step PGD-AT costs about 11 forward-backward passes of the
classifier, FGM-AT 2, PGN 3 plus the generator's, naive 1. Measured at width 0.25 on 2 idle cores
(2026-11-25): naive 6.7 s an epoch of 10,000 images, FGM-AT 9.9, PGD-AT 38.3, PGN 22.4; evaluating one
table row 3.4-4 min (AutoAttack-L2 on 150 images 2 min of it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The paper's Table 3 (CIFAR-10) training times, seconds per epoch on one RTX 2080 Ti.
PAPER_SEC_PER_EPOCH = {"naive": 8.28, "fgm_at": 25.1424, "pgd_at": 175.2541, "pgn": 52.1851}
WHITE_BOX = ("fgm", "mim", "deepfool", "cw")
# --tiny only: AutoAttack with a few iterations (the full one costs minutes per image batch on a CPU).
TINY_AUTOATTACK = {"num_steps": 10, "num_queries": 100, "num_targets": 3}
BUDGET_ROWS = ("fgm", "mim")
MINIMAL_ROWS = ("deepfool", "cw")


def load_config_module(name):
    from robustjax.config import config_module

    return config_module(os.path.join(ROOT, "configs", name + ".py"))


def attack_specs():
    """{"fgm", "mim", "deepfool", "cw", "autoattack"} -> spec, from configs/pgn_cifar10.py's evaluation."""
    suite = load_config_module("pgn_cifar10").paper_config("cifar10").eval.attacks.to_dict()
    out = {}
    for label, spec in suite.items():
        key = {"fgm": "fgm", "mim": "mim", "deepfool": "deepfool", "cw_l2": "cw", "autoattack": "autoattack"}
        out[key[spec["attack"]]] = spec
    return out


# ----------------------------------------------------------------------------------------------
# Runs.


def tag(v: float) -> str:
    return f"{v:g}".replace(".", "p")


def run_configs(a) -> dict:
    """name -> (config, method, hyperparameter) of every run (see the module docstring)."""
    from robustjax.defenses import pgn

    paper = load_config_module("pgn_cifar10").paper_config

    def common(c, seed=0):
        c.seed = seed
        c.data.source, c.data.path, c.data.name = "npz", os.path.abspath(a.npz), "cifar10"
        c.data.train_size, c.data.test_size, c.data.batch_size = a.train, 0, 128
        c.train.epochs, c.train.steps = float(a.epochs), 0
        spe = max(1, a.train // 128)
        c.train.log_every = max(1, spe // 4)
        c.train.checkpoint_every = max(1, int(round(a.select_every * spe)))
        c.train.keep_checkpoints = 100000
        c.train.progress = False
        c.eval.attacks, c.eval.curves = {}, {}  # evaluated here, on the chosen checkpoint
        c.eval.num_examples = a.eval
        return c

    base = paper("cifar10", f"width={a.width}")
    runs = {"naive": (common(pgn.baseline_config(base, "naive")), "naive", None),
            "naive_source": (common(pgn.baseline_config(base, "naive"), seed=1), "naive", None)}
    for eps in a.eps_sweep:
        for method in ("fgm_at", "pgd_at"):
            runs[f"{method}_eps{tag(eps)}"] = (common(pgn.baseline_config(base, method, eps=eps)), method, eps)
    for c_l in a.cl_sweep:
        c = paper("cifar10", f"width={a.width},c_l={c_l}")
        c.defense.generator_width = float(a.gen_width)
        runs[f"pgn_cl{tag(c_l)}"] = (common(c), "pgn", c_l)
    return runs


def train(name, config, out):
    from robustjax import experiment

    workdir = os.path.join(out, name)
    if not os.path.exists(os.path.join(workdir, "results.json")):
        t0 = time.time()
        print(f"=== train {name}", flush=True)
        experiment.run(config, workdir)
        print(f"=== {name} trained in {time.time() - t0:.0f} s", flush=True)
    return workdir


def seconds_per_epoch(workdir) -> float | None:
    from robustjax.train import loop

    results = json.load(open(os.path.join(workdir, "results.json")))
    spe = results["info"]["steps_per_epoch"]
    rates = [r["steps_per_sec"] for r in loop.read_metrics(workdir) if "steps_per_sec" in r]
    if not rates:
        return None
    rates = rates[1:] or rates  # the first window holds the compilation
    rates.sort()
    return spe / rates[len(rates) // 2]


# ----------------------------------------------------------------------------------------------
# Restoring a run's classifier at a checkpoint.


class Run:
    """A trained run rebuilt from its ``config.json``: its defense, data and checkpoints."""

    def __init__(self, workdir):
        import jax
        import ml_collections

        from robustjax import experiment

        self.workdir = workdir
        self.config = ml_collections.ConfigDict(json.load(open(os.path.join(workdir, "config.json"))))
        self.defense, train_ds, self.test_ds, self.info, self.spe = experiment.build(self.config)
        sample = train_ds.get(list(range(self.config.data.batch_size)))
        self.template = jax.eval_shape(self.defense.init, jax.random.PRNGKey(0), sample)

    def steps(self) -> list[int]:
        from robustjax.train import loop

        return loop.checkpoint_steps(self.workdir)

    def variables(self, step: int | None = None):
        """The deployed classifier's variables (EMA weights) at checkpoint ``step`` (None: the newest)."""
        from robustjax.defenses.base import eval_variables
        from robustjax.train import loop

        if step is None:
            state, meta = loop.restore_latest(self.workdir, self.template)
            if meta is None:
                raise SystemExit(f"{self.workdir}: no usable checkpoint")
        else:
            import orbax.checkpoint as ocp

            options = ocp.CheckpointManagerOptions(create=False, max_to_keep=None)
            mngr = ocp.CheckpointManager(os.path.join(os.path.abspath(self.workdir), "checkpoints"), options=options,
                                         item_handlers={loop.STATE_ITEM: ocp.StandardCheckpointHandler()})
            try:
                state = mngr.restore(step, args=ocp.args.Composite(
                    **{loop.STATE_ITEM: ocp.args.StandardRestore(self.template)}))[loop.STATE_ITEM]
            finally:
                mngr.close()
        return eval_variables(state["classifier"])


# ----------------------------------------------------------------------------------------------
# Evaluation.


class Evaluator:
    """Jitted prediction and attacks on the shared classifier architecture (one compile for all runs)."""

    def __init__(self, config, info, batch: int, aa_override: dict | None = None):
        from robustjax import attacks, models, xla

        self.module = models.make(config.model, info.num_classes)
        self.bounds = tuple(float(b) for b in info.bounds)
        self.batch = batch
        self.specs = attack_specs()
        apply = self.module.apply
        self.predict = xla.jit(lambda v, x: apply(v, x).argmax(-1))
        self.fns = {}
        for name, spec in self.specs.items():
            if name == "autoattack":  # attack only what is still robust, in chunks (the same strength)
                spec = {**spec, "chunk_size": max(1, batch // 4), **(aa_override or {})}
            atk = attacks.resolve(spec, where=f"benchmarks/pgn.py:{name}")
            self.fns[name] = xla.jit(
                lambda v, x, y, key, atk=atk: atk(lambda z: apply(v, z), x, y, key, bounds=self.bounds))

    def batches(self, x, y):
        """``(start, x_batch, y_batch, n_real)``: fixed-size batches (one compile), the last one padded by
        repeating its own examples; results beyond ``n_real`` are dropped."""
        import numpy as np

        for i in range(0, len(x), self.batch):
            xb, yb = x[i:i + self.batch], y[i:i + self.batch]
            n = len(xb)
            if n < self.batch:
                idx = np.arange(self.batch) % n
                xb, yb = xb[idx], yb[idx]
            yield i, xb, yb, n

    def predictions(self, variables, x, y):
        import numpy as np

        return np.concatenate([np.asarray(self.predict(variables, xb))[:n] for _, xb, _, n in self.batches(x, y)])

    def accuracy(self, variables, x, y):
        return float((self.predictions(variables, x, y) == y).mean())

    def craft(self, name, variables, x, y, seed=0):
        import jax
        import numpy as np

        out = []
        for i, xb, yb, n in self.batches(x, y):
            out.append(np.asarray(self.fns[name](variables, xb, yb, jax.random.PRNGKey(seed * 100003 + i)))[:n])
        return np.concatenate(out)

    def score(self, variables, x, y, x_adv):
        """Per-example correctness on ``x_adv`` and the L2 norms of ``x_adv - x``."""
        import numpy as np

        correct = self.predictions(variables, x_adv, y) == y
        norms = np.sqrt(((x_adv - x).reshape(len(x), -1).astype(np.float64) ** 2).sum(1))
        return correct, norms


def summarize(name, clean, correct, norms):
    import numpy as np

    if name in BUDGET_ROWS or name == "autoattack":
        return {"accuracy": float(correct.mean())}
    success = clean & ~correct
    s = norms[success]
    return {"accuracy": float(correct.mean()), "success_rate": float(success.sum() / max(1, clean.sum())),
            "mean_l2": float(s.mean()) if len(s) else None, "median_l2": float(np.median(s)) if len(s) else None,
            "norms": [float(v) for v in s]}


def evaluate_white_box(ev, variables, x, y, a, curve_only=False):
    """The white-box columns (and AutoAttack) of one classifier; ``curve_only``: C&W on the curve images."""
    out = {}
    if curve_only:
        xs, ys = x[:a.curve_eval], y[:a.curve_eval]
        clean = ev.predictions(variables, xs, ys) == ys
        correct, norms = ev.score(variables, xs, ys, ev.craft("cw", variables, xs, ys))
        out["benign"] = float(clean.mean())
        out["cw"] = summarize("cw", clean, correct, norms)
        return out
    clean = ev.predictions(variables, x, y) == y
    out["benign"] = float(clean.mean())
    for name in WHITE_BOX:
        t0 = time.time()
        correct, norms = ev.score(variables, x, y, ev.craft(name, variables, x, y))
        out[name] = summarize(name, clean, correct, norms)
        out[name]["seconds"] = round(time.time() - t0, 1)
        print(f"    {name}: {json.dumps({k: v for k, v in out[name].items() if k != 'norms'})}", flush=True)
    xa, ya = x[:a.aa_eval], y[:a.aa_eval]
    t0 = time.time()
    correct, norms = ev.score(variables, xa, ya, ev.craft("autoattack", variables, xa, ya))
    out["autoattack"] = summarize("autoattack", clean[:a.aa_eval], correct, norms)
    out["autoattack"].update(num_examples=len(xa), seconds=round(time.time() - t0, 1))
    mim_same = float(ev.score(variables, xa, ya, ev.craft("mim", variables, xa, ya))[0].mean())
    out["autoattack"]["mim_accuracy_same_images"] = mim_same
    print(f"    autoattack: {json.dumps(out['autoattack'])}", flush=True)
    return out


def cached(path, compute):
    """``compute()``'s dict, stored at ``path`` with its wall time (``"eval_seconds"``); reused if there."""
    if os.path.exists(path):
        return json.load(open(path))
    t0 = time.time()
    value = compute()
    if isinstance(value, dict):
        value["eval_seconds"] = round(time.time() - t0, 1)
    json.dump(value, open(path, "w"), indent=1)
    return value


# ----------------------------------------------------------------------------------------------
# Balancing benign accuracy (early stopping).


def balance(trajectories: dict, rows: dict, tolerance: float) -> dict:
    """Picks each row's checkpoint (see the module docstring).

    Args:
      trajectories: run name -> [(global step, benign accuracy on the selection images)], oldest first.
      rows: Table 3's row label -> run name ("naive" first).
      tolerance: how far below the target a row's best checkpoint may stay.

    Returns ``{"target", "rule", "rows": {label: {"run", "step", "selection_accuracy"}}}``.
    """
    naive = rows["naive"]
    target = trajectories[naive][-1][1]
    best = {label: max(acc for _, acc in trajectories[run]) for label, run in rows.items()}
    reachable = all(best[label] >= target - tolerance for label in rows if label != "naive")
    rule = "naive network's final benign accuracy"
    if not reachable:
        target = min(best.values())
        rule = ("lowest best benign accuracy among the rows (a defended row never reached the naive network's "
                f"{trajectories[naive][-1][1]:.3f}); the naive network early-stopped to it too")
    chosen = {}
    for label, run in rows.items():
        if label == "naive" and reachable:
            step, acc = trajectories[run][-1]
        else:  # closest to the target; on a tie the later checkpoint
            step, acc = min(reversed(trajectories[run]), key=lambda sa: abs(sa[1] - target))
        chosen[label] = {"run": run, "step": int(step), "selection_accuracy": float(acc)}
    return {"target": float(target), "rule": rule, "rows": chosen}


# ----------------------------------------------------------------------------------------------
# Report.


def fmt(v, digits=4):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def markdown(summary) -> str:
    a = summary["args"]
    lines = [f"# PGN against its paper: Table 3 on the CIFAR-10 subset ({a['train']} training images)", ""]
    lines += [f"Budget per run: {a['epochs']:g} epochs, classifier width {a['width']:g}, batch 128, Adam 5e-4, "
              f"EMA 0.998. Evaluation on {a['eval']} test images (AutoAttack on {a['aa_eval']}); checkpoint "
              f"selection on {a['select']} other test images.", ""]
    b = summary["balance"]
    lines += [f"Benign accuracy balanced by early stopping to {b['target']:.3f} ({b['rule']}).", ""]
    lines += ["| defense | attack | accuracy W-box | mean L2 W-box | median L2 W-box | success rate | "
              "accuracy B-box | benign accuracy | checkpoint (epoch) | sec/epoch |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for label, row in summary["table"].items():
        wb, bb = row["white_box"], row["black_box"]
        for i, name in enumerate(WHITE_BOX + ("autoattack",)):
            r = wb[name]
            budget = name in BUDGET_ROWS or name == "autoattack"
            cells = [label if i == 0 else "",
                     f"{name} ({r['num_examples']} images)" if name == "autoattack" else name,
                     fmt(r["accuracy"]) if budget else "-", fmt(r.get("mean_l2")), fmt(r.get("median_l2")),
                     "-" if budget else fmt(r.get("success_rate"), 3),
                     fmt(bb[name]["accuracy"]) if name in bb else "-",
                     fmt(wb["benign"]) if i == 0 else "", f"{row['epoch']:.1f}" if i == 0 else "",
                     fmt(row["sec_per_epoch"], 1) if i == 0 else ""]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Training cost, seconds per epoch (this machine) beside the paper's (one RTX 2080 Ti):", "",
              "| | naive | FGM-AT | PGD-AT | PGN | PGN / FGM-AT | PGD-AT / PGN |", "|---|---|---|---|---|---|---|"]
    t = summary["timing"]
    p = PAPER_SEC_PER_EPOCH
    lines.append(f"| here | {fmt(t['naive'], 1)} | {fmt(t['fgm_at'], 1)} | {fmt(t['pgd_at'], 1)} | {fmt(t['pgn'], 1)} | "
                 f"{fmt(_ratio(t['pgn'], t['fgm_at']), 2)} | {fmt(_ratio(t['pgd_at'], t['pgn']), 2)} |")
    lines.append(f"| paper | {p['naive']} | {p['fgm_at']} | {p['pgd_at']} | {p['pgn']} | {p['pgn'] / p['fgm_at']:.2f} | "
                 f"{p['pgd_at'] / p['pgn']:.2f} |")
    lines += ["", "Robustness curve (Fig. 5, curve.png; final checkpoints; benign accuracy and rho_cw = mean L2 of "
              f"successful C&W, both on the first {min(a['curve_eval'], a['eval'])} evaluation images):", "",
              "| run | hyperparameter | benign accuracy | rho_cw | C&W success |", "|---|---|---|---|---|"]
    for name, pt in summary["curve"].items():
        lines.append(f"| {name} | {pt['hyper'] if pt['hyper'] is not None else '-'} | {fmt(pt['benign'])} | "
                     f"{fmt(pt['rho_cw'])} | {fmt(pt['cw_success'], 3)} |")
    lines += ["", "Checks (a much weaker MIM than AutoAttack on the same images would be a sign of gradient "
              "masking or of a weak MIM):", ""] + [f"- {c}" for c in summary["checks"]]
    lines += ["", "Wall time per run on this machine, seconds (training as logged by the run, including "
              "compilation; evaluation by this script):", "", "| run | train | evaluate |", "|---|---|---|"]
    lines += [f"| {k} | {v['train']:.0f} | {v['evaluate']:.0f} |" for k, v in summary["seconds"].items()]
    return "\n".join(lines) + "\n"


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def plot_curve(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    styles = {"fgm_at": ("FGM-AT (eps)", "s", "tab:blue"), "pgd_at": ("PGD-AT (eps)", "^", "tab:orange"),
              "pgn": ("PGN (c_L)", "o", "tab:green")}
    for method, (label, marker, color) in styles.items():
        pts = sorted((pt for pt in summary["curve"].values() if pt["method"] == method), key=lambda p: p["benign"])
        pts = [p for p in pts if p["rho_cw"] is not None]
        if not pts:
            continue
        ax.plot([p["benign"] for p in pts], [p["rho_cw"] for p in pts], marker=marker, color=color, label=label)
        for p in pts:
            ax.annotate(f"{p['hyper']:g}", (p["benign"], p["rho_cw"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color=color)
    naive = summary["curve"].get("naive")
    if naive and naive["rho_cw"] is not None:
        ax.plot([naive["benign"]], [naive["rho_cw"]], marker="*", markersize=11, color="black", linestyle="",
                label="naive")
    ax.set_xlabel("benign accuracy")
    ax.set_ylabel("rho_cw (mean L2 of successful C&W)")
    ax.set_title("Robustness curve (CIFAR-10 subset)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_cw_curves(summary, path):
    """Fig. 4: accuracy against the L2 radius r, from C&W's minimal perturbations (an example counts as
    correct at r if it is classified correctly clean and C&W needed more than r, or failed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    top = max([1.0] + [max(row["white_box"]["cw"]["norms"] or [0.0]) for row in summary["table"].values()])
    radii = np.linspace(0.0, min(top, 5.0), 201)
    for label, row in summary["table"].items():
        wb = row["white_box"]
        n, benign, cw = row["num_eval"], wb["benign"], wb["cw"]
        norms = np.asarray(cw["norms"])
        acc = [benign - (norms <= r).sum() / n for r in radii]
        ax.plot(radii, acc, label=f"{label} (benign {benign:.3f})")
    ax.set_xlabel("L2 perturbation norm r (C&W)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Accuracy against C&W's L2 norm, balanced rows", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--npz", required=True, help="cifar10_subset.npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--out", default="runs/pgn_cifar10")
    p.add_argument("--train", type=int, default=10000, help="training images (the shared budget)")
    p.add_argument("--epochs", type=float, default=20, help="epochs of every run (the shared budget)")
    p.add_argument("--width", type=float, default=0.25, help="classifier width multiplier (1.0 = Table 1)")
    p.add_argument("--gen_width", type=float, default=None,
                   help="PGN generator's width multiplier (default: --width, so G and F shrink together)")
    p.add_argument("--select_every", type=float, default=1.0, help="epochs between checkpoints (early stopping)")
    p.add_argument("--eval", type=int, default=500, help="test images attacked")
    p.add_argument("--select", type=int, default=500, help="other test images for checkpoint selection")
    p.add_argument("--aa_eval", type=int, default=100, help="test images for AutoAttack-L2")
    p.add_argument("--curve_eval", type=int, default=200, help="test images for the sweep's C&W (rho_cw)")
    p.add_argument("--batch", type=int, default=100, help="evaluation batch size")
    p.add_argument("--eps_sweep", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--cl_sweep", type=float, nargs="+", default=[25.0, 50.0, 100.0])
    p.add_argument("--table_eps", type=float, default=0.1)
    p.add_argument("--table_cl", type=float, default=50.0)
    p.add_argument("--tolerance", type=float, default=0.01)
    p.add_argument("--tiny", action="store_true", help="a tiny budget: checks the script end to end")
    p.add_argument("--estimate", type=int, default=0, metavar="STEPS",
                   help="only time STEPS training steps of each Table 3 method and one batch of each attack at "
                        "this budget, and print the implied hours (nothing is written)")
    a = p.parse_args(argv)
    if a.tiny:
        a.train, a.epochs, a.width, a.select_every = 512, 2.0, 0.125, 1.0
        a.eval, a.select, a.aa_eval, a.curve_eval, a.batch = 32, 32, 16, 16, 16
        a.eps_sweep, a.cl_sweep = [0.1, 0.3], [25.0, 50.0]
    if a.gen_width is None:
        a.gen_width = a.width
    if a.table_eps not in a.eps_sweep:
        a.eps_sweep.append(a.table_eps)
    if a.table_cl not in a.cl_sweep:
        a.cl_sweep.append(a.table_cl)
    return a


def estimate(a, num_steps: int):
    """Times ``num_steps`` training steps of each of Table 3's methods at this budget (after one compile) and
    one evaluation batch of each attack on the naive network at init, and prints the implied hours."""
    import jax
    import numpy as np

    from robustjax import experiment, xla
    from robustjax.defenses.base import eval_variables

    runs = run_configs(a)
    table = {"naive": "naive", "fgm_at": f"fgm_at_eps{tag(a.table_eps)}", "pgd_at": f"pgd_at_eps{tag(a.table_eps)}",
             "pgn": f"pgn_cl{tag(a.table_cl)}"}
    hours = {}
    print(f"budget: {a.train} images, {a.epochs:g} epochs, width {a.width:g} (generator {a.gen_width:g})")
    for method, name in table.items():
        config = runs[name][0]
        defense, train_ds, _, info, spe = experiment.build(config)
        batch = train_ds.get(np.arange(config.data.batch_size))
        state = xla.jit(defense.init)(jax.random.PRNGKey(0), batch)
        step = xla.jit(defense.phases[0].train_step, donate_argnums=0)
        state, m = step(state, batch, jax.random.PRNGKey(1))
        jax.block_until_ready(m)
        t0 = time.perf_counter()
        for i in range(num_steps):
            state, m = step(state, batch, jax.random.PRNGKey(2 + i))
        jax.block_until_ready(m)
        sec = (time.perf_counter() - t0) / num_steps
        hours[method] = sec * spe * a.epochs / 3600
        print(f"{method}: {sec:.2f} s/step, {sec * spe:.0f} s/epoch, {hours[method]:.2f} h for the budget", flush=True)
        variables = eval_variables(state["classifier"])
    ev = Evaluator(config, info, a.batch, TINY_AUTOATTACK if a.tiny else None)
    test_x = np.asarray(train_ds.get(np.arange(a.batch))["image"])
    test_y = np.asarray(train_ds.get(np.arange(a.batch))["label"])
    per = {}
    for name in ("fgm", "mim", "deepfool", "cw", "autoattack"):
        ev.craft(name, variables, test_x, test_y)  # compile
        t0 = time.perf_counter()
        ev.craft(name, variables, test_x, test_y)
        per[name] = (time.perf_counter() - t0) / a.batch
        print(f"{name}: {per[name] * 1000:.0f} ms per image (an untrained network: minimal attacks stop early, "
              "so this is a lower bound)", flush=True)
    n_sweep = 2 * len(a.eps_sweep) + len(a.cl_sweep) + 1
    eval_h = (4 * (a.eval * (per["fgm"] + per["mim"] + per["deepfool"] + per["cw"]) + a.aa_eval * per["autoattack"])
              + n_sweep * a.curve_eval * per["cw"]) / 3600
    train_h = (hours["naive"] * 2 + sum(hours[m] * len(a.eps_sweep) for m in ("fgm_at", "pgd_at"))
               + hours["pgn"] * len(a.cl_sweep))
    print(f"training of all {n_sweep + 1} runs: {train_h:.1f} h; evaluation: at least {eval_h:.1f} h")


def main(argv=None):
    a = parse_args(argv)
    if a.estimate:
        return estimate(a, a.estimate)
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    import numpy as np

    runs = run_configs(a)
    workdirs = {name: train(name, config, out) for name, (config, _, _) in runs.items()}
    seconds = {name: {"train": json.load(open(os.path.join(w, "results.json")))["info"]["train_seconds"],
                      "evaluate": 0.0} for name, w in workdirs.items()}

    rows = {"naive": "naive", f"FGM-AT eps {a.table_eps:g}": f"fgm_at_eps{tag(a.table_eps)}",
            f"PGD-AT eps {a.table_eps:g}": f"pgd_at_eps{tag(a.table_eps)}", f"PGN c_L {a.table_cl:g}": f"pgn_cl{tag(a.table_cl)}"}
    rebuilt = {name: Run(workdirs[name]) for name in runs}
    first = rebuilt["naive"]
    test = first.test_ds.get(np.arange(len(first.test_ds)))
    test_x, test_y = np.asarray(test["image"], np.float32), np.asarray(test["label"])
    if a.eval + a.select > len(test_x):
        raise SystemExit(f"--eval + --select = {a.eval + a.select} exceeds the {len(test_x)} test images")
    x, y = test_x[:a.eval], test_y[:a.eval]
    xs, ys = test_x[a.eval:a.eval + a.select], test_y[a.eval:a.eval + a.select]
    ev = Evaluator(first.config, first.info, a.batch, TINY_AUTOATTACK if a.tiny else None)

    # Early stopping: benign accuracy of every checkpoint of the table's runs on the selection images.
    trajectories = {}
    for run in rows.values():
        r = rebuilt[run]

        def trajectory(r=r):
            return [[s, ev.accuracy(r.variables(s), xs, ys)] for s in r.steps()]

        trajectories[run] = [tuple(t) for t in cached(os.path.join(r.workdir, "selection.json"), trajectory)]
    bal = balance(trajectories, rows, a.tolerance)

    # Black-box examples, crafted once on the independent naive network.
    src = rebuilt["naive_source"]
    src_path = os.path.join(out, "blackbox_examples.npz")
    if not os.path.exists(src_path):
        t0 = time.time()
        v = src.variables()
        np.savez_compressed(src_path, **{n: ev.craft(n, v, x, y, seed=7) for n in WHITE_BOX})
        json.dump({"eval_seconds": round(time.time() - t0, 1)}, open(src_path + ".json", "w"))
    transfer = dict(np.load(src_path))
    seconds["naive_source"]["evaluate"] = json.load(open(src_path + ".json"))["eval_seconds"]

    table = {}
    timing = {}
    for label, run in rows.items():
        r, step = rebuilt[run], bal["rows"][label]["step"]
        print(f"=== evaluate {label} ({run}, step {step})", flush=True)
        v = r.variables(step)
        wb = cached(os.path.join(r.workdir, f"white_box_step{step}.json"), lambda: evaluate_white_box(ev, v, x, y, a))
        bb = {n: {"accuracy": float(ev.score(v, x, y, transfer[n])[0].mean())} for n in WHITE_BOX}
        spe = r.spe
        table[label] = {"run": run, "step": step, "epoch": step / spe, "white_box": wb, "black_box": bb,
                        "selection_accuracy": bal["rows"][label]["selection_accuracy"], "num_eval": len(x),
                        "sec_per_epoch": seconds_per_epoch(r.workdir)}
        seconds[run]["evaluate"] += wb["eval_seconds"]
    for method in ("naive", "fgm_at", "pgd_at", "pgn"):
        run = {"naive": "naive", "fgm_at": rows[f"FGM-AT eps {a.table_eps:g}"],
               "pgd_at": rows[f"PGD-AT eps {a.table_eps:g}"], "pgn": rows[f"PGN c_L {a.table_cl:g}"]}[method]
        timing[method] = seconds_per_epoch(workdirs[run])

    # Fig. 5: every sweep run's final checkpoint.
    curve = {}
    for name, (_, method, hyper) in runs.items():
        if name == "naive_source":
            continue
        r = rebuilt[name]
        step = r.steps()[-1]
        v = r.variables(step)
        res = cached(os.path.join(r.workdir, f"curve_step{step}.json"),
                     lambda: evaluate_white_box(ev, v, x, y, a, curve_only=True))
        curve[name] = {"method": method, "hyper": hyper, "benign": res["benign"], "rho_cw": res["cw"]["mean_l2"],
                       "cw_success": res["cw"]["success_rate"], "num_examples": min(a.curve_eval, a.eval)}
        seconds[name]["evaluate"] += res["eval_seconds"]

    checks = []
    for label, row in table.items():
        aa = row["white_box"]["autoattack"]
        gap = aa["mim_accuracy_same_images"] - aa["accuracy"]
        checks.append(f"{label}: MIM {aa['mim_accuracy_same_images']:.3f} vs AutoAttack {aa['accuracy']:.3f} on the "
                      f"same {aa['num_examples']} images ({'AutoAttack stronger by' if gap > 0 else 'gap'} {gap:+.3f})")
    summary = {"args": vars(a), "balance": bal, "trajectories": trajectories, "table": table, "timing": timing,
               "curve": curve, "checks": checks, "seconds": seconds}
    json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=1)
    plot_curve(summary, os.path.join(out, "curve.png"))
    plot_cw_curves(summary, os.path.join(out, "cw_curves.png"))
    text = markdown(summary)
    open(os.path.join(out, "results.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
