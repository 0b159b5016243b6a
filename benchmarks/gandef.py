"""GanDef's results on a CPU budget: Table 2's rows, Fig. 2's convergence curves, Fig. 4's ratio curve.

Full-budget commands (each writes ``<out>/results.md``, ``summary.json``, ``fig2_convergence.png`` and
``fig4_ratio.png``; a row whose ``results.json`` exists is not trained again, and the first invocation's
plan is kept in ``plan.json``, so an interrupted run continues where it stopped with the same training size,
and a row added later, e.g. V1 after a ``--no_v1`` run, trains on it too):

    python benchmarks/gandef.py --dataset mnist --npz $ROBUSTJAX_TEST_DATA/mnist.npz \
        --budget_hours 12 --out runs/gandef_mnist
    python benchmarks/gandef.py --dataset cifar10 --npz $ROBUSTJAX_TEST_DATA/cifar10_subset.npz \
        --budget_hours 12 --width 0.5 --out runs/gandef_cifar10
    python benchmarks/gandef.py --dataset mnist --npz $ROBUSTJAX_TEST_DATA/mnist.npz --tiny \
        --out /tmp/gandef_tiny                       # the end-to-end check: a minute or two, numbers meaningless

Rows (Table 2): vanilla (``standard``), pure PGD (``pgd_at``), mix PGD and logit pairing (their defense
sections are read from ``configs/<--mix_pgd_config>.py`` / ``<--logit_pairing_config>.py``; a row whose
config file or defense does not exist yet is skipped with a message saying so), GanDef (V2), GanDef V1
(for Fig. 2 only; ``--no_v1`` drops it), and GanDef-Comb: the GanDef run's state with D deployed as the
detector (nothing is trained for it). ``--rows standard,pgd_at`` keeps only the named trained rows besides
GanDef (the issue's CIFAR-10 table is GanDef and Comb beside pure PGD); a row left out can be added later
on the same ``--out``, as V1 can. ``--gamma`` sets GanDef's trade-off (V2 and V1; the config's 2.0 by
default); a finished GanDef row trained at another gamma is refused, so each gamma needs its own ``--out``.

One shared setting for every row, so the rows differ only in their defense: the data, the classifier
(``configs/gandef_<dataset>.py``'s model; ``--width`` shrinks it for a CPU), the batch (128), the number
of epochs and of training examples, Adam at ``--lr`` for the classifier (GanDef's D at ``--d_lr``, 10x),
the train-time PGD-1 (the paper's: MNIST 40 x 0.01 at 0.3, CIFAR-10 7 x 2/255 at 8/255, random start;
``--train_pgd_steps`` lowers the count with the step scaled to 2.5 eps / steps) and its eps curriculum
(``--ramp`` epochs), wherever a defense has those fields.

The budget. ``--budget_hours`` is the whole run's CPU time. The script first times two train steps of
every row (compiling each once), estimates the evaluation from the gradient count of its attacks, and
then sizes training: ``--epochs`` epochs of the largest training subset that fits the rest of the budget
(every row the same). It prints that plan before it trains; ``--plan_only`` stops there.

Evaluation, on the first ``--eval`` test images: Table 2's columns (FGSM, BIM with 10 steps, PGD-1,
PGD-2; accuracy on the adversarial examples, as the paper counts it; for Comb a flagged adversarial input
counts as correct and a flagged clean input as wrong), on the first ``--strong_eval`` test images PGD-1000
and AutoAttack (standard), and for Comb every attack again adaptively (against classifier and detector
together: ``"against_detector": True``). Fig. 2: the clean test accuracy of every checkpoint (one per
epoch) on the first ``--curve_eval`` test images. Fig. 4: overall accuracy when a fraction rho of the test
inputs is adversarial (FGSM, PGD-2): ``(1 - rho) clean + rho adversarial``, a line per row, and the ratio
where GanDef-Comb's line crosses pure PGD's (the paper: 41.7% on CIFAR-10).

Runtime estimates per row are printed in the plan; the measured ones go into ``summary.json``. Measured
here (2-core CPU shared with other jobs, load average ~16, 23 Nov 2026; ``--plan_only`` at the defaults):
MNIST LeNet, batch 128, train-time PGD-40: standard 1.8 s/step, pgd_at 41 s, GanDef 47 s, GanDef V1
37 s; CIFAR-10 allCNN (Table 4) at ``--width 0.5``, PGD-7: standard 5.0 s/step, pgd_at 22.5 s, GanDef
29.3 s, GanDef V1 21.5 s. At that speed the evaluation (Table 2 on 1000 images, PGD-1000 + AutoAttack on
200, for 3 rows + Comb plain and adaptive; mostly the two strong attacks) was estimated at ~800 min
(MNIST) and ~1900 min (CIFAR-10), more than 12 hours, and the script refuses to start: on such a loaded
machine lower ``--strong_eval`` (100 halves that part) and raise ``--budget_hours``. An unloaded 2-core
machine runs LeNet PGD-40 at 50-80 images/s (docs/benchmarks.md), 15-25x the loaded speed, where the
commands above leave most of the 12 hours to training.
The ``--tiny`` check took 12 min of wall time under that load (training 23-47 s a row, the rest compiles).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PAPER = {  # dataset -> eps, train PGD (steps, step), eval (bim step, pgd step, pgd-1 steps, pgd-2 steps)
    "mnist": dict(eps=0.3, pgd=(40, 0.01), bim_step=0.05, pgd_step=0.01, pgd1=40, pgd2=80),
    "cifar10": dict(eps=8 / 255, pgd=(7, 2 / 255), bim_step=2 / 255, pgd_step=2 / 255, pgd1=7, pgd2=20),
}
PAPER_TABLE2 = {  # the paper's Table 2 (accuracy, %): original, FGSM, BIM, PGD-1, PGD-2
    "mnist": {"standard": [98.70, 12.15, 1.07, 0.87, 0.93], "pgd_at": [99.15, 97.60, 94.75, 95.60, 94.14],
              "mix_pgd": [99.17, 96.89, 94.58, 95.56, 93.99], "logit_pairing": [98.50, 97.00, 95.83, 96.34, 95.42],
              "gandef": [99.10, 96.85, 94.28, 95.31, 93.62], "gandef_comb": [99.10, 96.85, 94.28, 95.21, 93.38]},
    "cifar10": {"standard": [89.69, 18.43, 6.76, 6.48, 6.44], "pgd_at": [82.06, 56.18, 49.21, 51.51, 48.33],
                "mix_pgd": [83.70, 52.21, 44.39, 47.11, 43.48], "logit_pairing": [84.21, 51.63, 44.09, 46.53, 43.28],
                "gandef": [84.05, 54.14, 46.64, 49.21, 45.62], "gandef_comb": [63.97, 87.61, 76.02, 80.39, 73.56]},
}
COLUMNS = ["fgsm", "bim", "pgd1", "pgd2"]
STRONG = ["pgd1000", "autoattack"]
ROWS = ("standard", "pgd_at", "mix_pgd", "logit_pairing", "gandef", "gandef_v1")  # trained rows, --rows
LABELS = {"standard": "Vanilla", "pgd_at": "Pure PGD", "mix_pgd": "Mix PGD", "logit_pairing": "Logit Pairing",
          "gandef_v1": "GanDef V1", "gandef": "GanDef", "gandef_comb": "GanDef-Comb",
          "gandef_comb_adaptive": "GanDef-Comb (adaptive attacker)"}


def load_config(name, arg=None):
    from robustjax.config import load_config_file

    return load_config_file(os.path.join(ROOT, "configs", name + ".py"), arg)


# ----------------------------------------------------------------------------------------------
# The rows and their shared setting.


def shared_attack(a) -> dict:
    p = PAPER[a.dataset]
    steps = a.train_pgd_steps or p["pgd"][0]
    step = p["pgd"][1] if steps == p["pgd"][0] else 2.5 * p["eps"] / steps
    return {"attack": "pgd", "eps": p["eps"], "step_size": step, "num_steps": steps, "random_start": True}


def paper_attacks(a, strong: bool) -> dict:
    from robustjax.defenses import gandef

    p = PAPER[a.dataset]
    attacks = gandef.table2_attacks(p["eps"], bim_step=p["bim_step"], pgd_step=p["pgd_step"],
                                    pgd1_steps=p["pgd1"], pgd2_steps=p["pgd2"])
    if a.tiny:
        for spec in attacks.values():
            if "num_steps" in spec:
                spec["num_steps"] = min(spec["num_steps"], 3)
        attacks["autoattack"].update(attacks=["apgd-ce", "apgd-t"], num_steps=2, num_targets=1)
    keep = STRONG if strong else COLUMNS
    return {k: v for k, v in attacks.items() if k in keep}


def base(a):
    """The shared setting, from GanDef's config: data, model, batch, optimizer, logging."""
    import ml_collections

    from robustjax.config import optimizer

    c = load_config(f"gandef_{a.dataset}")
    c.data.source, c.data.path, c.data.name = "npz", os.path.abspath(a.npz), a.dataset
    c.data.batch_size = a.batch
    c.model.width = float(a.width)
    c.train.steps, c.train.epochs = 0, float(a.epochs)
    c.train.optimizer = optimizer("adam", a.lr)
    c.train.optimizers = ml_collections.ConfigDict()
    c.train.log_every = 10
    c.eval.num_examples, c.eval.batch_size = a.eval, min(250, a.eval)
    c.eval.attacks, c.eval.curves = paper_attacks(a, strong=False), {}
    return c


def row_defenses(a) -> tuple[dict, list[str]]:
    """{row: config.defense as a dict}, and the messages for the rows skipped."""
    from robustjax import defenses

    attack, ramp = shared_attack(a), float(a.ramp)
    gd = base(a).defense.to_dict()
    gd.update(attack=attack, eps_ramp_epochs=ramp, comb=False)
    if a.gamma is not None:
        gd["gamma"] = float(a.gamma)
    rows = {"standard": {"name": "standard"},
            "pgd_at": {"name": "pgd_at", "attack": attack, "eps_ramp_epochs": ramp}}
    skipped = []
    for row, name in (("mix_pgd", a.mix_pgd_config), ("logit_pairing", a.logit_pairing_config)):
        path = os.path.join(ROOT, "configs", name + ".py")
        if not os.path.exists(path):
            skipped.append(f"{LABELS[row]}: skipped, configs/{name}.py does not exist yet "
                           f"(--{row}_config names it)")
            continue
        section = load_config(name).defense.to_dict()
        module = defenses.DEFENSES.get(section.get("name"))
        if module is None:
            skipped.append(f"{LABELS[row]}: skipped, configs/{name}.py names defense {section.get('name')!r}, "
                           "which robustjax.defenses does not have yet")
            continue
        schema = getattr(module, "FIELDS", {})
        if "attack" in schema:
            section["attack"] = attack  # the shared PGD-1 (the paper: every defense trains on PGD-1)
        if "eps_ramp_epochs" in schema:
            section["eps_ramp_epochs"] = ramp
        rows[row] = section
    rows["gandef"] = gd
    if not a.no_v1:
        rows["gandef_v1"] = {**gd, "classifier_loss": "v1"}
    if a.rows:
        keep = {r.strip() for r in a.rows.split(",") if r.strip()} | {"gandef"}
        unknown = keep - set(ROWS)
        if unknown:
            raise SystemExit(f"--rows: unknown row(s) {sorted(unknown)}; choose from {', '.join(ROWS)}")
        skipped += [f"{LABELS[r]}: left out by --rows" for r in rows if r not in keep]
        rows = {r: v for r, v in rows.items() if r in keep}
    return rows, skipped


def row_config(a, row: str, section: dict, steps_per_epoch: int | None = None):
    from robustjax.config import optimizer

    c = base(a)
    c.defense = section
    if row.startswith("gandef"):
        c.train.optimizers = {"classifier": optimizer("adam", a.lr), "discriminator": optimizer("adam", a.d_lr)}
    if steps_per_epoch:  # one checkpoint per epoch, all kept: Fig. 2 evaluates each
        c.train.checkpoint_every = steps_per_epoch
        c.train.keep_checkpoints = int(math.ceil(a.epochs)) + 2
    return c


# ----------------------------------------------------------------------------------------------
# Budget: time two train steps per row, estimate the evaluation, size the training subset.


def time_steps(config) -> float:
    """Seconds per train step of ``config`` (median of 2 steps after one compile)."""
    import jax
    import numpy as np

    from robustjax import experiment, xla

    defense, train_ds, _, _, _ = experiment.build(config)
    sample = train_ds.get(np.arange(config.data.batch_size))
    state = xla.jit(defense.init)(jax.random.PRNGKey(0), sample)
    times = []
    for phase in defense.phases:
        step = xla.jit(phase.train_step)
        state, m = step(state, sample, jax.random.PRNGKey(1))
        jax.block_until_ready(m)
        for i in range(2):
            t0 = time.perf_counter()
            state, m = step(state, sample, jax.random.PRNGKey(2 + i))
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def eval_gradients(a) -> tuple[int, int]:
    """(gradient evaluations per example of the Table 2 columns, of the strong attacks): an estimate."""
    p = PAPER[a.dataset]
    table = 1 + 10 + p["pgd1"] + p["pgd2"]
    # AutoAttack standard, upper end: APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100 (~2 gradients a step),
    # Square 5000 forward passes (~1/3 gradient each) on what is left; PGD-1000.
    strong = 1000 + 100 + 900 + 1800 + 5000 // 3
    return table, strong


def plan(a, rows: dict) -> dict:
    """Measures each row's step time and returns the training size that fits the budget."""
    from robustjax import data as data_lib

    c = row_config(a, "gandef", rows["gandef"])
    train_full = len(data_lib.load(c.data)[0])
    if a.tiny:
        n = min(train_full, 4 * a.batch)
        return {"train_size": n, "epochs": a.epochs, "sec_per_step": {}, "estimate": {}, "train_full": train_full}
    sec = {}
    for row, section in rows.items():
        cfg = row_config(a, row, section)
        cfg.data.train_size = 4 * a.batch
        t0 = time.time()
        sec[row] = time_steps(cfg)
        print(f"[plan] {row}: {sec[row]:.2f} s/step (timed in {time.time() - t0:.0f} s with its compile)",
              flush=True)
    # per-example gradient cost: a PGD-k step costs about k + 1 gradients of B examples (GanDef's: 2B)
    k = shared_attack(a)["num_steps"]
    per_grad = sec["pgd_at"] / ((k + 2) * a.batch)
    g_table, g_strong = eval_gradients(a)
    n_comb = 2  # Comb: non-adaptive + adaptive
    eval_rows = len([r for r in rows if r != "gandef_v1"]) + n_comb
    eval_s = per_grad * eval_rows * (g_table * a.eval + g_strong * a.strong_eval) + per_grad * 3 * a.curve_eval * (
        a.epochs + 1) * len(rows)
    train_s = a.budget_hours * 3600 - eval_s - 120 * len(rows)  # ~2 min of compiles per row
    steps = max(1, int(train_s / sum(sec.values())))
    n = min(train_full, max(a.batch, int(steps * a.batch / a.epochs) // a.batch * a.batch))
    estimate = {row: round(s * n / a.batch * a.epochs / 60, 1) for row, s in sec.items()}
    return {"train_size": n, "epochs": a.epochs, "sec_per_step": sec, "eval_minutes": round(eval_s / 60, 1),
            "train_minutes_per_row": estimate, "train_full": train_full,
            "over_budget": train_s <= 0 or n == a.batch}


# ----------------------------------------------------------------------------------------------
# Training, per-epoch evaluation, the strong attacks, Comb.


def restore_step(workdir: str, step: int, like):
    """The state saved at global ``step`` in ``workdir/checkpoints`` (the train loop's layout)."""
    import jax
    import orbax.checkpoint as ocp

    from robustjax.train import loop

    mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                                 item_handlers={loop.STATE_ITEM: ocp.StandardCheckpointHandler()})
    try:
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return mngr.restore(step, args=ocp.args.Composite(**{loop.STATE_ITEM: ocp.args.StandardRestore(target)}))[
            loop.STATE_ITEM]
    finally:
        mngr.close()


def built(config):
    import jax
    import numpy as np

    from robustjax import experiment, xla

    defense, train_ds, test_ds, info, spe = experiment.build(config)
    state = xla.jit(defense.init)(jax.random.PRNGKey(config.seed), train_ds.get(np.arange(config.data.batch_size)))
    return defense, state, test_ds, info, spe


def convergence(config, workdir: str, n: int) -> list[dict]:
    """Clean test accuracy of every checkpoint of ``workdir`` on the first ``n`` test images (Fig. 2)."""
    import jax.numpy as jnp
    import numpy as np

    from robustjax import xla
    from robustjax.train import loop

    defense, state, test_ds, _, spe = built(config)
    batch = test_ds.get(np.arange(min(n, len(test_ds))))   # as the suite feeds them: float in the data's bounds
    x, y = batch["image"], np.asarray(batch["label"])
    predict = xla.jit(lambda s, xb: jnp.argmax(defense.classifier(s)(xb), -1))
    points = []
    for step in loop.checkpoint_steps(workdir):
        s = restore_step(workdir, step, state)
        pred = np.concatenate([np.asarray(predict(s, x[i:i + 250])) for i in range(0, n, 250)])
        points.append({"epoch": step / spe, "step": step, "clean_accuracy": float((pred == y).mean())})
    points.insert(0, {"epoch": 0.0, "step": 0,
                      "clean_accuracy": float((np.concatenate([np.asarray(predict(state, x[i:i + 250]))
                                                               for i in range(0, n, 250)]) == y).mean())})
    return points


def evaluate_saved(config, workdir: str, attacks: dict, n: int) -> dict:
    """The suite on the newest checkpoint of ``workdir`` with ``config``'s defense (Comb reads GanDef's)."""
    import jax
    import ml_collections

    from robustjax import evaluate
    from robustjax.train import loop

    defense, state, test_ds, info, _ = built(config)
    state, meta = loop.restore_latest(workdir, state)
    assert meta is not None, f"no checkpoint in {workdir}"
    e = ml_collections.ConfigDict(dict(num_examples=n, batch_size=min(250, n), num_pictures=0, curves={},
                                       attacks=attacks))
    res = evaluate.evaluate(defense, state, test_ds, e, jax.random.PRNGKey(7), bounds=info.bounds)
    res.pop("_pictures", None)
    return res


def run_row(a, out: str, row: str, section: dict, size: dict):
    """Trains ``row`` (unless its results.json exists) and evaluates it; returns (summary entry, config)."""
    from robustjax import data as data_lib
    from robustjax import experiment

    workdir = os.path.join(out, row)
    path = os.path.join(workdir, "results.json")
    if os.path.exists(path) and "gamma" in section:   # a GanDef row trained at another gamma is not this row
        trained = json.load(open(os.path.join(workdir, "config.json")))["defense"].get("gamma")
        if trained != section["gamma"]:
            raise SystemExit(f"{workdir} was trained with gamma {trained}, not {section['gamma']}: give this "
                             "--gamma another --out (copy the other rows' directories and plan.json there to "
                             "reuse them)")
    c = row_config(a, row, section)
    c.data.train_size = size["train_size"]
    spe = data_lib.steps_per_epoch(data_lib.load(c.data)[0], c.data.batch_size)
    c = row_config(a, row, section, spe)
    c.data.train_size = size["train_size"]
    t0 = time.time()
    if not os.path.exists(path):
        print(f"=== {row}: training {size['epochs']:g} epochs of {size['train_size']} examples", flush=True)
        experiment.run(c, workdir)
    res = json.load(open(path))
    entry = {"clean": res["clean_accuracy"], "attacks": res["attacks"], "train_seconds": res["info"]["train_seconds"],
             "steps": res["info"]["steps"]}
    extra_path = os.path.join(workdir, "extra.json")
    if not os.path.exists(extra_path):
        extra = {"convergence": convergence(c, workdir, a.curve_eval)}
        last = extra["convergence"][-1]["clean_accuracy"]
        if a.curve_eval == a.eval and abs(last - res["clean_accuracy"]) > 1e-6:   # the same state, the same images
            raise RuntimeError(f"{row}: the last checkpoint's clean accuracy {last} differs from the suite's "
                               f"{res['clean_accuracy']} on the same {a.eval} images: Fig. 2 would be wrong")
        if row != "gandef_v1":
            extra["strong"] = evaluate_saved(c, workdir, paper_attacks(a, strong=True), a.strong_eval)["attacks"]
        # the time this invocation spent on the row, kept so that a later one that reuses the row reports it
        extra["row_seconds"] = round(time.time() - t0, 1)
        json.dump(extra, open(extra_path, "w"), indent=2)
    entry.update(json.load(open(extra_path)))
    return entry, c


def run_comb(a, out: str, gandef_config) -> dict:
    """GanDef-Comb: GanDef's trained state with D as the detector; the attacks plain and adaptive."""
    from robustjax.defenses import gandef

    workdir = os.path.join(out, "gandef")
    path = os.path.join(out, "gandef_comb.json")
    if not os.path.exists(path):
        c = copy.deepcopy(gandef_config)
        c.defense.comb = True
        t0 = time.time()
        table = paper_attacks(a, strong=False)
        strong = paper_attacks(a, strong=True)
        res = evaluate_saved(c, workdir, {**table, **gandef.adaptive(table)}, a.eval)
        res_strong = evaluate_saved(c, workdir, {**strong, **gandef.adaptive(strong)}, a.strong_eval)
        json.dump({"results": res, "strong": res_strong, "seconds": round(time.time() - t0, 1)}, open(path, "w"),
                  indent=2)
    return json.load(open(path))


# ----------------------------------------------------------------------------------------------
# Tables and figures.


def table_rows(summary: dict) -> dict:
    """{row: {"clean": .., "fgsm": .., ...}}: the paper's metric (Comb: detections count as correct)."""
    out = {}
    for row, e in summary["runs"].items():
        r = {"clean": e["clean"], **{k: e["attacks"][k]["accuracy_on_adversarial"] for k in COLUMNS}}
        r.update({k: e.get("strong", {}).get(k, {}).get("accuracy_on_adversarial") for k in STRONG})
        out[row] = r
    comb = summary.get("comb")
    if comb:
        res, strong = comb["results"], comb["strong"]
        clean = res["detector"]["clean_accuracy_with_detector"]
        for name, suffix in (("gandef_comb", ""), ("gandef_comb_adaptive", "_adaptive")):
            r = {"clean": clean}
            r.update({k: res["attacks"][k + suffix]["accuracy_with_detector"] for k in COLUMNS})
            r.update({k: strong["attacks"][k + suffix]["accuracy_with_detector"] for k in STRONG})
            out[name] = r
    return out


def crossover(c1, a1, c2, a2) -> float | None:
    """The rho in [0, 1] where (1 - rho) c1 + rho a1 = (1 - rho) c2 + rho a2 (None if the lines do not
    cross there)."""
    den = (c1 - c2) - (a1 - a2)
    if abs(den) < 1e-12:
        return None
    rho = (c1 - c2) / den
    return rho if 0.0 <= rho <= 1.0 else None


def write_outputs(a, out: str, summary: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table_rows(summary)
    order = [r for r in ("standard", "pgd_at", "mix_pgd", "logit_pairing", "gandef", "gandef_comb",
                         "gandef_comb_adaptive", "gandef_v1") if r in rows]
    paper = PAPER_TABLE2[a.dataset]
    p = summary["plan"]
    md = [f"# GanDef on {a.dataset} (benchmarks/gandef.py)", ""]
    if a.tiny:
        md += ["**TINY RUN: a few steps on a few examples to check the script; these numbers mean nothing.**", ""]
    md += [f"Every row: {p['epochs']:g} epochs of {p['train_size']} training examples (of {p['train_full']}), "
           f"batch {a.batch}, Adam {a.lr:g} (GanDef's D: {a.d_lr:g}), model `{summary['model']}`, train-time "
           f"`{json.dumps(summary['train_attack'])}`, eps curriculum {a.ramp:g} epochs. Accuracy on the "
           f"adversarial examples (the paper's metric) on the first {a.eval} test images; PGD-1000 and "
           f"AutoAttack on the first {a.strong_eval}. GanDef-Comb: a flagged adversarial input counts as "
           "correct, a flagged clean input as wrong; its adaptive attacker attacks classifier and detector "
           "together. In parentheses: the paper's Table 2.", ""]
    for msg in summary["skipped"]:
        md.append(f"- {msg}")
    md += ["", "| | " + " | ".join(LABELS[r] for r in order) + " |", "|---" * (len(order) + 1) + "|"]
    for i, col in enumerate(["clean"] + COLUMNS + STRONG):
        cells = []
        for r in order:
            v = rows[r].get(col)
            s = "-" if v is None else f"{100 * v:.2f}%"
            ref = paper.get(r)
            if ref and i < 5:
                s += f" ({ref[i]:.2f}%)"
            cells.append(s)
        name = {"clean": "Original", "fgsm": "FGSM", "bim": "BIM", "pgd1": "PGD-1", "pgd2": "PGD-2",
                "pgd1000": "PGD-1000", "autoattack": "AutoAttack"}[col]
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    if "comb" in summary:
        det = summary["comb"]["results"]["detector"]
        md += ["", f"GanDef-Comb's detector flags {100 * det['flagged_clean']:.1f}% of the clean test images "
                   "(threshold 0.5 on D's probability)."]

    # Fig. 2: clean test accuracy per epoch.
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in ("pgd_at", "mix_pgd", "logit_pairing", "gandef_v1", "gandef"):
        if r in summary["runs"]:
            # from the first checkpoint on: the untrained start (~10%) would squash the differences to a line
            pts = [q for q in summary["runs"][r]["convergence"] if q["step"] > 0]
            ax.plot([q["epoch"] for q in pts], [100 * q["clean_accuracy"] for q in pts], marker="o", ms=4,
                    label=LABELS[r] + (" V2" if r == "gandef" else ""))
    ax.set_xlabel("epoch (a checkpoint per epoch)")
    ax.set_ylabel(f"clean test accuracy (%), first {a.curve_eval} test images")
    ax.set_title(f"Fig. 2: convergence on {a.dataset}" + (" (TINY RUN)" if a.tiny else ""))
    ax.grid(alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig2_convergence.png"), dpi=120)
    plt.close(fig)

    # Fig. 4: overall accuracy against the ratio rho of adversarial test inputs.
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    cross = {}
    for ax, atk in zip(axes, ("fgsm", "pgd2")):
        for r in order:
            if r == "gandef_v1":
                continue
            c0, a0 = rows[r]["clean"], rows[r][atk]
            style = "--" if r == "gandef_comb_adaptive" else "-"
            ax.plot([0, 1], [100 * c0, 100 * a0], style, label=LABELS[r])
        for r in ("gandef_comb", "gandef_comb_adaptive"):
            if r in rows and "pgd_at" in rows:
                rho = crossover(rows[r]["clean"], rows[r][atk], rows["pgd_at"]["clean"], rows["pgd_at"][atk])
                cross[f"{r}_vs_pgd_at_{atk}"] = rho
                if rho is not None:
                    y = 100 * ((1 - rho) * rows[r]["clean"] + rho * rows[r][atk])
                    ax.plot([rho], [y], "ko", ms=5)
                    ax.annotate(f"rho = {100 * rho:.1f}%", (rho, y), textcoords="offset points", xytext=(-20, 8),
                                bbox={"fc": "white", "ec": "none", "alpha": 0.8})
        ax.set_title(("FGSM" if atk == "fgsm" else "PGD-2") + " examples")
        ax.set_xlabel("ratio rho of adversarial test inputs")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("overall test accuracy (%)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Fig. 4 on {a.dataset}" + (" (TINY RUN)" if a.tiny else ""))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fig4_ratio.png"), dpi=120)
    plt.close(fig)
    summary["crossover"] = cross
    md += ["", "Crossover with pure PGD (the rho above which GanDef-Comb's overall accuracy is higher; the paper: "
               "41.7% on CIFAR-10):", ""]
    for k, v in cross.items():
        md.append(f"- {k}: " + ("none in [0, 1]" if v is None else f"{100 * v:.1f}%"))
    md += ["", "Time per row (training + its evaluation, s): " + ", ".join(
        f"{LABELS[r]} {e['row_seconds']:.0f} (train {e['train_seconds']:.0f})" for r, e in summary["runs"].items()),
        "", "![Fig. 2](fig2_convergence.png)", "", "![Fig. 4](fig4_ratio.png)", ""]
    text = "\n".join(md)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    return text


# The arguments a plan depends on: a re-run of the same --out with other values would mix two budgets.
PLAN_ARGS = ("dataset", "npz", "budget_hours", "epochs", "batch", "width", "lr", "d_lr", "train_pgd_steps", "ramp",
             "eval", "strong_eval", "curve_eval", "tiny")


def plan_args(a) -> dict:
    return {k: os.path.abspath(a.npz) if k == "npz" else getattr(a, k) for k in PLAN_ARGS}


def saved_plan(a, out: str) -> dict | None:
    """The plan of an earlier invocation on ``out`` (``plan.json``), so that an interrupted or extended run
    (e.g. GanDef V1 added later) trains every row on the same training size; ``None`` when there is none.
    Timing the steps again would give another size on a machine under other load."""
    path = os.path.join(out, "plan.json")
    if not os.path.exists(path):
        return None
    saved = json.load(open(path))
    now = plan_args(a)
    differ = {k: (saved["args"].get(k), now[k]) for k in now if saved["args"].get(k) != now[k]}
    if differ:
        sys.exit(f"[plan] {path} was planned with other settings ({differ}: saved, given): give the same "
                 f"settings to continue that run, or another --out (or delete plan.json) for a new one")
    size = {k: v for k, v in saved.items() if k != "args"}
    print(f"[plan] continuing the plan in {path}: {size['train_size']} training examples, "
          f"{size['epochs']:g} epochs", flush=True)
    return size


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(PAPER), required=True)
    p.add_argument("--npz", required=True, help="the dataset as an npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--out", default=None)
    p.add_argument("--budget_hours", type=float, default=12.0, help="CPU time for the whole run")
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=float, default=1.0, help="the classifier's width multiplier")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam for every classifier")
    p.add_argument("--d_lr", type=float, default=1e-2, help="Adam for GanDef's discriminator")
    p.add_argument("--gamma", type=float, default=None,
                   help="GanDef's gamma (default: configs/gandef_<dataset>.py's, 2.0); the other rows ignore it")
    p.add_argument("--train_pgd_steps", type=int, default=0, help="0: the paper's (40 MNIST, 7 CIFAR-10)")
    p.add_argument("--ramp", type=float, default=None, help="eps curriculum epochs (default: 2 MNIST, 0 CIFAR)")
    p.add_argument("--eval", type=int, default=1000)
    p.add_argument("--strong_eval", type=int, default=200)
    p.add_argument("--curve_eval", type=int, default=1000)
    p.add_argument("--mix_pgd_config", default=None, help="default mix_pgd_<dataset>")
    p.add_argument("--logit_pairing_config", default=None, help="default logit_pairing_<dataset>")
    p.add_argument("--no_v1", action="store_true")
    p.add_argument("--rows", default="", help="comma-separated trained rows to run (default: all): "
                   + ", ".join(ROWS) + "; gandef (and so Comb) always runs")
    p.add_argument("--plan_only", action="store_true")
    p.add_argument("--tiny", action="store_true", help="minutes: checks the script end to end")
    a = p.parse_args()
    a.mix_pgd_config = a.mix_pgd_config or f"mix_pgd_{a.dataset}"
    a.logit_pairing_config = a.logit_pairing_config or f"logit_pairing_{a.dataset}"
    if a.ramp is None:
        a.ramp = 2.0 if a.dataset == "mnist" else 0.0
    if a.tiny:
        a.epochs, a.width, a.train_pgd_steps, a.ramp = 2, 0.25, 2, 0.0
        a.eval, a.strong_eval, a.curve_eval, a.batch = 64, 32, 64, 32
    out = os.path.abspath(a.out or f"runs/gandef_{a.dataset}{'_tiny' if a.tiny else ''}")
    os.makedirs(out, exist_ok=True)
    t_start = time.time()

    rows, skipped = row_defenses(a)
    for msg in skipped:
        print(f"[gandef benchmark] {msg}", flush=True)
    size = saved_plan(a, out)
    if size is None:
        size = plan(a, rows)
        print(f"[plan] {json.dumps(size)}", flush=True)
        if not (a.plan_only or size.get("over_budget")):
            json.dump({"args": plan_args(a), **size}, open(os.path.join(out, "plan.json"), "w"), indent=2)
    if size.get("over_budget"):
        print("[plan] OVER BUDGET: the evaluation alone needs about the whole budget", flush=True)
    if a.plan_only:
        return
    if size.get("over_budget"):
        sys.exit(f"[plan] the budget does not cover even one batch per epoch after the evaluation "
                 f"(estimated {size['eval_minutes']} min): raise --budget_hours or lower --eval / --strong_eval")
    summary = {"args": vars(a), "plan": size, "skipped": skipped, "runs": {}, "train_attack": shared_attack(a),
               "model": json.dumps(base(a).model.to_dict())}
    configs = {}
    for row, section in rows.items():
        summary["runs"][row], configs[row] = run_row(a, out, row, section, size)
    summary["comb"] = run_comb(a, out, configs["gandef"])
    summary["total_seconds"] = round(time.time() - t_start, 1)
    text = write_outputs(a, out, summary)
    json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
    print(text)


if __name__ == "__main__":
    main()
