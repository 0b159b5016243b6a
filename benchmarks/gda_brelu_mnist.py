"""Zantedeschi, Nicolae and Rawat's MNIST study ("Efficient Defenses Against Adversarial Attacks", 2017) in
one command, at one CPU budget for every row: Tables 1-4 and Figs. 3-4, plus AutoAttack and PGD-1000.

    python benchmarks/gda_brelu_mnist.py --npz ../shared/data/mnist.npz --out runs/zbr_mnist \\
        --train 10000 --epochs 2 --eval 200
    python benchmarks/gda_brelu_mnist.py --npz ../shared/data/mnist.npz --print      # the main.py commands
    python benchmarks/gda_brelu_mnist.py --out runs/zbr_mnist --paper                # the config's own settings

Every row is ``main.py`` on ``configs/gda_brelu_mnist.py`` (its docstring lists the paper's settings and
what was chosen where the paper is silent) with the same budget overrides; the script prints the
equivalent command of each. A finished row (``results.json`` present) is not run again and an
interrupted one resumes: re-run the same command.

- Architecture rows (Table 1, Fig. 3): the undefended CNN and ResNet, each with ReLU and with BReLU
  (t = 1). ``cnn`` (CNN + ReLU) is also the undefended row of Tables 2-4 and gets the whole evaluation;
  the other three get only what Table 1 and Fig. 3 use (FGSM 0.1 and the FGSM curve).
- Defense rows (Tables 2-4, Fig. 4), all on the paper's CNN: feature squeezing (1 bit, attacked through
  BPDA), label smoothing 0.9, FGSM adversarial training (0.3), VAT (2.1), GDA + ReLU, GDA + BReLU (ten
  copies, sigma 0.3).
- Black-box attacks are crafted on the undefended ResNet row (``resnet_relu``, the paper's protocol), which
  therefore runs first.

Budget options (``--paper`` leaves the config's own values): ``--train`` first N training images,
``--epochs`` (over the augmented set for GDA: each of its steps holds eleven times the rows, so a GDA row
costs about eleven times a plain one), ``--eval`` test images for every attack and metric, ``--cw_search``
x ``--cw_steps`` for C&W (white-box and transferred; the authors' 9 x 10,000, the config's 9 x 1,000),
``--no_jsma`` leaves JSMA out of the rows' own evaluation; ``--jsma_matrix`` then adds it afterwards, as
one transfer matrix over the source and the defense rows (JSMA from the config, crafted on each run; the
source's row is Table 4's JSMA column, the diagonal the white-box JSMA), without re-evaluating the rows.

Written into ``--out``: ``compare/`` (``robustjax.report`` over the rows), ``tables.md`` (Tables 1-4 and
the strong-attack table), ``tables.json``, ``fig3_architectures.png`` and ``fig4_defenses.png`` (white-box
and black-box accuracy against eps, FGSM and the paper's Random + FGSM; PGD-40 beside white-box FGSM).

CIFAR-10 (``--dataset cifar10``): the same rows on ``configs/gda_brelu_cifar10.py`` (GDA sigma 0.05,
3-bit squeezing, FGSM-AT at 0.05; white-box radii 0.05 and 0.1, PGD-20); the black-box table is the
paper's Table 5 and the figure its Fig. 5 (``fig5_defenses.png``). The paper reports only Table 5 and
Fig. 5 on CIFAR-10, so the architecture rows other than the source can be left out with ``--rows``.
``--blackbox`` cuts each defense row's evaluation to what Table 5 needs plus AutoAttack (``blackbox_eval``)
for a CPU on which the whole suite does not fit:

    python benchmarks/gda_brelu_mnist.py --dataset cifar10 --npz ../shared/data/cifar10_subset.npz \
        --out runs/zbr_cifar10 --blackbox --eval 200 --rows resnet_relu cnn feature_squeezing \
        label_smoothing fgsm_at vat gda_relu gda_brelu
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import runs as runs_lib  # noqa: E402
from benchmarks.runs import load_config  # noqa: E402

CONFIG = "gda_brelu_mnist"
# Per dataset (--dataset): the config, the white-box table's columns (label, heading), the radii of the
# cross-run report, the curve of the iterative attack, the paper's black-box table and white-box figure;
# test_size is the tfds test split's (an npz with fewer images only makes --jsma_matrix recompute at --eval 0).
DATASETS = {
    "mnist": dict(
        config=CONFIG, name="MNIST", test_size=10000, report_eps=[0.1, 0.3], pgd_curve="pgd40", strong="aa_0p3",
        blackbox_table="Table 4", fig="Fig. 4",
        cols=[("fgsm_0p3", "FGSM 0.3"), ("rfgsm_gauss_0p3", "R+FGSM 0.3 (paper)"),
              ("rfgsm_sign_0p3", "R+FGSM 0.3 (Tramer)"), ("pgd40_0p3", "PGD-40 0.3"),
              ("pgd1000_0p3", "PGD-1000 0.3"), ("aa_0p3", "AutoAttack 0.3"), ("pgd40_0p1", "PGD-40 0.1")]),
    "cifar10": dict(
        config="gda_brelu_cifar10", name="CIFAR-10", test_size=10000, report_eps=[0.05, 0.1], pgd_curve="pgd20",
        strong="aa_0p05", blackbox_table="Table 5", fig="Fig. 5",
        cols=[("fgsm_0p05", "FGSM 0.05"), ("rfgsm_gauss_0p05", "R+FGSM 0.05 (paper)"),
              ("rfgsm_sign_0p05", "R+FGSM 0.05 (Tramer)"), ("pgd20_0p05", "PGD-20 0.05"),
              ("pgd1000_0p05", "PGD-1000 0.05"), ("aa_0p05", "AutoAttack 0.05"), ("fgsm_0p1", "FGSM 0.1"),
              ("pgd20_0p1", "PGD-20 0.1")]),
}
SOURCE = "resnet_relu"       # the black-box source: the undefended ResNet (Sec. 4.5)
# row -> (config argument, kind): "arch" rows get Table 1's light evaluation, "full" rows the whole one.
ROWS = {
    "resnet_relu": ("defense=none,model=resnet", "arch"),
    "resnet_brelu": ("defense=none,model=resnet,brelu=True", "arch"),
    "cnn_brelu": ("defense=none,brelu=True", "arch"),
    "cnn": ("defense=none", "full"),
    "gda_relu": ("defense=gda", "full"),
    "gda_brelu": ("defense=gda,brelu=True", "full"),
    "vat": ("defense=vat", "full"),
    "feature_squeezing": ("defense=feature_squeezing", "full"),
    "fgsm_at": ("defense=fgsm_at", "full"),
    "label_smoothing": ("defense=label_smoothing", "full"),
}
# (Run in this order: the paper's defense first after the undefended CNN, so a run cut short still has it.)
ARCH_ROWS = ["cnn", "cnn_brelu", "resnet_relu", "resnet_brelu"]   # Table 1's order (the paper's)
DEFENSE_ROWS = ["cnn", "feature_squeezing", "label_smoothing", "fgsm_at", "vat", "gda_relu", "gda_brelu"]  # Tables 2-4
TRANSFER_EPS = 0.1
TABLE4_ORDER = ["fgsm_0p1", "rfgsm_gauss_0p1", "deepfool100", "jsma", "cw_l2_k2p3"]   # the paper's columns
MARKERS = "osv^Dxp"                 # one per defense row, so that overlapping curves stay apart
# Fig. 4's black-box curves: the attacks crafted on the source at each eps.
BLACKBOX_CURVES = {
    "fgsm": {"attack": "fgsm"},
    "rfgsm_gauss": {"attack": "rand_fgsm", "alpha": 0.05, "random_init": "gaussian"},
}


def config_arg(name: str, a) -> str:
    arg, kind = ROWS[name]
    if kind == "full":
        arg += f",source={os.path.join(a.out, SOURCE)}"
    if a.no_jsma and a.dataset == "mnist":   # the CIFAR-10 config leaves JSMA out already
        arg += ",jsma=False"
    return arg


def overrides(a, config) -> dict:
    """The ``--config.<field>`` overrides of one row (applied to ``config`` too)."""
    o = runs_lib.budget_overrides(a)
    if not a.paper:
        for label, spec in config.eval.attacks.items():
            if spec.attack == "cw_l2":
                o[f"eval.attacks.{label}.binary_search_steps"] = a.cw_search
                o[f"eval.attacks.{label}.num_steps"] = a.cw_steps
        for label, spec in config.eval.metrics.items():
            if spec.metric == "transfer" and spec.attack.attack == "cw_l2":
                o[f"eval.metrics.{label}.attack.binary_search_steps"] = a.cw_search
                o[f"eval.metrics.{label}.attack.num_steps"] = a.cw_steps
    return runs_lib.apply(config, o)


def light_eval(config) -> dict:
    """Table 1 / Fig. 3's evaluation for the architecture rows: FGSM at 0.1 and the FGSM curve, no metrics,
    no diagnostics (their strong attacks belong to the defense rows)."""
    spec = {"attack": "fgsm", "eps": TRANSFER_EPS}
    config.eval.attacks = {"fgsm_0p1": spec}
    config.eval.curves = {"fgsm": dict(config.eval.curves["fgsm"])}
    config.eval.metrics = {}
    config.eval.diagnostics.enabled = False
    return {"eval.attacks": {"fgsm_0p1": spec}, "eval.curves": "fgsm only", "eval.metrics": {},
            "eval.diagnostics.enabled": False}


def blackbox_eval(config, strong: str) -> dict:
    """``--blackbox``'s evaluation for the defense rows: the paper's black-box table (the transfers crafted on
    the source) and, white-box, only AutoAttack at the config's strong radius (``strong``: its label) on the
    examples still robust (``chunk_size`` 32); no other attack, curve, metric or diagnostic. For a CPU
    budget on which the whole suite does not fit (CIFAR-10's Table 5)."""
    config.eval.attacks = {strong: dict(config.eval.attacks[strong], chunk_size=32)}
    config.eval.metrics = {k: m for k, m in config.eval.metrics.items() if m.metric == "transfer"}
    config.eval.curves = {}
    config.eval.diagnostics.enabled = False
    return {"eval.attacks": f"{strong} only, chunk_size 32", "eval.metrics": "transfers only", "eval.curves": {},
            "eval.diagnostics.enabled": False}


def _fmt(v, digits=3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def jsma_columns(jsma: dict | None) -> dict:
    """``{row: {"transfer": accuracy on JSMA crafted on the source, "white_box": robust accuracy under its own
    JSMA}}`` from ``--jsma_matrix``'s transfer matrix (its first run is the source)."""
    if jsma is None:
        return {}
    names, acc, robust = jsma["names"], jsma["accuracy_on_adversarial"], jsma["robust_accuracy"]
    return {n: {"transfer": acc[0][j], "white_box": robust[j][j]} for j, n in enumerate(names) if j}


def tables(results: dict, matrix: dict | None, curves: dict | None, jsma: dict | None = None,
           dataset: str = "mnist") -> tuple[str, dict]:
    """Markdown for Tables 1-4 (CIFAR-10: 5) and the strong attacks (paper's measure: accuracy on adversarial
    examples, in %, for Tables 1 and 4-5; robust accuracy for the strong-attack table). ``jsma``:
    ``--jsma_matrix``'s transfer matrix, for rows evaluated without JSMA."""
    ds = DATASETS[dataset]
    full = [n for n in DEFENSE_ROWS if n in results]
    out, data = [], {}
    extra = jsma_columns(jsma)
    if jsma is not None:
        data["jsma_matrix"] = jsma
    if matrix is not None:
        names = matrix["names"]
        out += [f"**Table 1.** Accuracy (%) on FGSM eps {TRANSFER_EPS} examples crafted on the row's model and "
                "tested on the column's (the diagonal is white-box).", "",
                "| crafted on \\ tested on | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for name, row in zip(names, matrix["accuracy_on_adversarial"]):
            out.append(f"| {name} | " + " | ".join(f"{100 * v:.2f}" for v in row) + " |")
        out.append("")
        data["table1"] = matrix

    def metric(res, label, key="value"):
        return res.get("metrics", {}).get(label, {}).get(key)

    out += ["**Table 2** (white-box incremental minimal FGSM) and **Table 3** (local loss sensitivity).", "",
            "| defense | clean acc. | not flipped within eps_max | robustness rho | training-set distance "
            "(clean originals) | loss sensitivity |", "|---|---|---|---|---|---|"]
    for n in full:
        r = results[n]
        flipped = metric(r, "empirical_robustness", "flipped")
        out.append(f"| {n} | {100 * r['clean_accuracy']:.2f} | {_fmt(None if flipped is None else 100 * (1 - flipped), 2)}"
                   f" | {_fmt(metric(r, 'empirical_robustness'))} | {_fmt(metric(r, 'train_distance'), 2)} "
                   f"({_fmt(metric(r, 'train_distance', 'clean_value'), 2)}) | {_fmt(metric(r, 'loss_sensitivity'), 4)} |")
    out.append("")

    present = {k[len("transfer_"):] for n in full for k in results[n].get("metrics", {}) if k.startswith("transfer_")}
    present |= {"jsma"} if extra else set()
    transfers = sorted(present, key=lambda t: (TABLE4_ORDER.index(t) if t in TABLE4_ORDER else len(TABLE4_ORDER), t))
    out += [f"**{ds['blackbox_table']}.** Accuracy (%) on black-box examples crafted on the undefended ResNet "
            f"({SOURCE}).", "",
            "| defense | " + " | ".join(transfers) + " |", "|---" * (len(transfers) + 1) + "|"]
    def transferred(n, t):
        v = metric(results[n], "transfer_" + t)
        if v is None and t == "jsma":
            v = extra.get(n, {}).get("transfer")
        return None if v is None else 100 * v

    for n in full:
        out.append(f"| {n} | " + " | ".join(_fmt(transferred(n, t), 2) for t in transfers) + " |")
    out.append("")

    cols = ds["cols"]
    out += ["**White-box, adaptive** (robust accuracy: correct on the clean and on the adversarial example; "
            "C&W and DeepFool: median L2 of their successful perturbations).", "",
            "| defense | clean | " + " | ".join(c for _, c in cols) + " | JSMA | DeepFool median L2 | C&W median L2 | "
            "C&W success | masking warnings |", "|---" * (len(cols) + 7) + "|"]
    for n in full:
        r = results[n]
        a = r["attacks"]
        cells = [_fmt(a.get(k, {}).get("robust_accuracy")) for k, _ in cols]
        cells.append(_fmt(a.get("jsma", {}).get("robust_accuracy", extra.get(n, {}).get("white_box"))))
        df, cw = a.get("deepfool100", {}), a.get("cw_l2_k2p3", {})
        warnings = len(r.get("diagnostics", {}).get("warnings", []))
        out.append(f"| {n} | {r['clean_accuracy']:.3f} | " + " | ".join(cells)
                   + f" | {_fmt(df.get('median_l2'), 2)} | {_fmt(cw.get('median_l2'), 2)} | "
                   f"{_fmt(cw.get('success_rate'))} | {warnings} |")
    data["rows"] = {n: {"clean_accuracy": results[n]["clean_accuracy"],
                        "attacks": {k: {kk: vv for kk, vv in v.items() if not isinstance(vv, (list, dict))}
                                    for k, v in results[n]["attacks"].items()},
                        "metrics": results[n].get("metrics", {}), "curves": results[n].get("curves", {})}
                    for n in results}
    if curves is not None:
        data["blackbox_curves"] = curves
    return "\n".join(out), data


def plot(results: dict, curves: dict | None, out_dir: str, dataset: str = "mnist") -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for n in ARCH_ROWS:
        if n in results and "fgsm" in results[n].get("curves", {}):
            pts = results[n]["curves"]["fgsm"]["points"]
            ax.plot([p["eps"] for p in pts], [p["accuracy_on_adversarial"] for p in pts], marker="o", label=n)
    ax.set(xlabel="FGSM eps", ylabel="accuracy on adversarial examples", ylim=(0, 1),
           title="Fig. 3: white-box FGSM, architectures")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "fig3_architectures.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    full = [n for n in DEFENSE_ROWS if n in results]
    # The white-box row only where the rows have white-box curves (not after --blackbox).
    white = any(results[n].get("curves", {}).get(a) for n in full for a in ("fgsm", "rfgsm_gauss"))
    nrows = 2 if white else 1
    fig, axes = plt.subplots(nrows, 2, figsize=(10, 3.5 * nrows + 0.5), sharex=True, sharey=True, squeeze=False)
    black = axes[nrows - 1]
    for col, attack in enumerate(("fgsm", "rfgsm_gauss")):
        for n in full:
            c = results[n].get("curves", {}).get(attack)
            if c:
                line, = axes[0, col].plot([p["eps"] for p in c["points"]],
                                          [p["accuracy_on_adversarial"] for p in c["points"]],
                                          marker=MARKERS[DEFENSE_ROWS.index(n)], ms=4, label=n)
                pgd = results[n].get("curves", {}).get(DATASETS[dataset]["pgd_curve"])
                if attack == "fgsm" and pgd:   # the iterative attack beside the one-step one, same colour
                    axes[0, col].plot([p["eps"] for p in pgd["points"]], [p["accuracy_on_adversarial"] for p in pgd["points"]],
                                      ls="--", color=line.get_color(), marker=MARKERS[DEFENSE_ROWS.index(n)], ms=3)
            if curves is not None and n in curves.get(attack, {}):
                pts = curves[attack][n]
                black[col].plot([p["eps"] for p in pts], [p["accuracy_on_adversarial"] for p in pts],
                                marker=MARKERS[DEFENSE_ROWS.index(n)], ms=4, label=n)
        name = "FGSM" if attack == "fgsm" else "R+FGSM (Gaussian, alpha 0.05)"
        pgd_name = DATASETS[dataset]["pgd_curve"].replace("pgd", "PGD-")
        if white:
            axes[0, col].set_title(f"white-box {name}" + (f" (solid) and {pgd_name} (dashed)" if attack == "fgsm"
                                                          else ""), fontsize=10)
        black[col].set_title(f"black-box {name} from {SOURCE}", fontsize=10)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1)
    for ax in black:
        ax.set_xlabel("eps")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy on adversarial examples")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{DATASETS[dataset]['fig']}: defenses on the paper's CNN, {DATASETS[dataset]['name']}")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, DATASETS[dataset]["fig"].replace(". ", "").lower() + "_defenses.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


MNIST_TEST = DATASETS["mnist"]["test_size"]   # test images in MNIST: what num_examples=0 evaluates


def same_matrix(saved: dict, runs: list, spec: dict, n_eval: int, test_size: int = MNIST_TEST) -> bool:
    """Whether a saved transfer matrix was crafted on ``runs`` with ``spec`` over ``n_eval`` test images (0:
    all), so that a re-run with another --eval or JSMA setting computes it again instead of mixing budgets."""
    from robustjax import attacks

    if not saved or saved.get("runs") != runs:
        return False
    if saved.get("attack") != attacks.resolve(dict(spec), where="jsma").spec:
        return False
    n = saved.get("num_examples")
    return n == (min(n_eval, test_size) if n_eval else test_size)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(DATASETS), default="mnist",
                   help="cifar10: configs/gda_brelu_cifar10.py, the paper's Table 5 and Fig. 5")
    p.add_argument("--npz", default="", help="the dataset as an npz (else the config's tfds source)")
    p.add_argument("--out", default=None, help="default runs/zbr_<dataset>")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--paper", action="store_true", help="the config's own settings, no budget overrides")
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--eval", type=int, default=200)
    p.add_argument("--cw_search", type=int, default=5)
    p.add_argument("--cw_steps", type=int, default=200)
    p.add_argument("--no_jsma", action="store_true", help="leave JSMA out of the rows' own evaluation")
    p.add_argument("--jsma_matrix", action="store_true",
                   help="add JSMA afterwards: crafted on the source and on each defense row (transfer matrix)")
    p.add_argument("--blackbox", action="store_true",
                   help="defense rows: only the black-box transfers and AutoAttack (blackbox_eval)")
    p.add_argument("--print", action="store_true", help="print the main.py commands, run nothing")
    a = p.parse_args()
    a.out = a.out or f"runs/zbr_{a.dataset}"
    ds = DATASETS[a.dataset]
    config_name = ds["config"]
    rows = sorted(a.rows, key=list(ROWS).index)
    if any(ROWS[n][1] == "full" for n in rows) and SOURCE not in rows and not os.path.exists(
            os.path.join(a.out, SOURCE, "results.json")):
        rows.insert(0, SOURCE)   # the black-box source must exist before a defense row is evaluated

    plan = []
    for name in rows:
        arg = config_arg(name, a)
        config = load_config(config_name, arg)
        note = (light_eval(config) if ROWS[name][1] == "arch"
                else blackbox_eval(config, ds["strong"]) if a.blackbox else None)
        o = overrides(a, config)
        workdir = os.path.join(a.out, name)
        plan.append((name, config, workdir))
        print(runs_lib.main_command(config_name, arg, o, workdir)
              + (f"  # plus {json.dumps(note)}" if note else ""), flush=True)
    if a.print:
        return

    from robustjax.evaluate import compare, transfer

    runs_lib.run_missing(plan)
    results = {name: compare.load_run(w).results for name, _, w in plan}
    full = [n for n, _, _ in plan if ROWS[n][1] == "full"]
    if full:
        compare.write([compare.load_run(w) for n, _, w in plan if n in full], os.path.join(a.out, "compare"),
                      eps=ds["report_eps"])
    arch = [n for n in ARCH_ROWS if n in results]
    n_eval = 0 if a.paper else a.eval
    matrix = (transfer.transfer_matrix([os.path.join(a.out, n) for n in arch],
                                       {"attack": "fgsm", "eps": TRANSFER_EPS}, num_examples=n_eval)
              if len(arch) > 1 else None)
    curves = None
    if full:
        grid = [e for e in load_config(config_name, ROWS["cnn"][0]).eval.curves["fgsm"]["eps_grid"] if e > 0]
        curves = {k: transfer.transfer_curves(os.path.join(a.out, SOURCE), [os.path.join(a.out, n) for n in full],
                                              spec, grid, num_examples=n_eval)
                  for k, spec in BLACKBOX_CURVES.items()}
        curves = {k: dict(zip(full, v["curves"])) for k, v in curves.items()}
    jsma = None
    if a.jsma_matrix and full:
        spec = dict(load_config(config_name, ROWS["cnn"][0] + ",jsma=True").eval.attacks["jsma"])
        path = os.path.join(a.out, "jsma_matrix.json")
        runs = [os.path.join(a.out, n) for n in [SOURCE] + full]
        saved = json.load(open(path)) if os.path.exists(path) else {}
        if same_matrix(saved, runs, spec, n_eval, ds["test_size"]):
            jsma = saved                          # computed already for these rows, this attack and budget
        else:
            jsma = transfer.transfer_matrix(runs, spec, num_examples=n_eval)
            with open(path, "w") as f:
                json.dump(jsma, f, indent=1)
    md, data = tables(results, matrix, curves, jsma, a.dataset)
    open(os.path.join(a.out, "tables.md"), "w").write(md + "\n")
    with open(os.path.join(a.out, "tables.json"), "w") as f:
        json.dump(data, f, indent=1)
    for path in plot(results, curves, a.out, a.dataset):
        print("wrote", path)
    print(md)


if __name__ == "__main__":
    main()
