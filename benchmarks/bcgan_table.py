"""BCGAN's Tables 1 and 2 (Sun, Zhu and Lin) on real MNIST or Fashion-MNIST, every row at one budget, each
row attacked with BCGAN's evaluation plus AutoAttack, PGD-1000 and C&W at L2 radii.

    python benchmarks/bcgan_table.py --npz ../shared/data/mnist.npz --out runs/bcgan_mnist \\
        --train 10000 --epochs 3 --eval 500
    python benchmarks/bcgan_table.py --dataset fashion_mnist --idx /usr/share/datasets/fashion-mnist \\
        --out runs/bcgan_fashion_mnist
    python benchmarks/bcgan_table.py --rows original bcgan --print       # the main.py commands only

Rows (the paper's Table 1): ``original`` (configs/standard_mnist.py), ``fgsm_at_1`` and ``fgsm_at_2`` (FGSM
adversarial training at the dataset's two FGSM radii), ``pgd_at`` (configs/pgd_at_mnist.py; the paper
gives no radius: 0.3 on MNIST, Madry et al.'s, and the larger FGSM radius 0.15 on Fashion-MNIST),
``distillation``, ``defense_gan`` and ``bcgan``. Every row is the LeNet of configs/bcgan_mnist.py. On
Fashion-MNIST the MNIST configs are read with the data switched (``data.name``, the IDX files).

Budget (every row alike; ``--paper`` leaves the configs' own settings): ``--train`` first N training images,
``--epochs`` for every classifier phase (BCGAN's pre-training and fine-tuning, distillation's teacher and
student), ``--gan_epochs`` for BCGAN's AC-GAN and Defense-GAN's WGAN (default: ``--epochs``), BCGAN's
boundary samples one per training image, ``--train_steps`` train-time PGD steps (step ``2.5 eps /
steps``), ``--ramp`` epochs of eps curriculum for the adversarially trained rows, ``--eval`` test images.

Evaluation: configs/bcgan_<dataset>.py's ``eval`` for every row, so that every row meets the same
attacks: FGSM and PGD-40 (step 0.01, random start) at both radii, PGD-1000 and AutoAttack at the larger,
rho_adv (Table 2) on the first 200 images, plus C&W-L2 (``--cw_search`` x ``--cw_steps``) with its
accuracy at L2 radii 1.5 and 2.0 and the median L2 of its successes. Defense-GAN is attacked through BPDA
and also naively and with EOT (its config's); every prediction of it runs the projection, so its row gets
benchmarks/baselines_mnist.py's CPU-sized evaluation (no PGD-1000 or AutoAttack, ``--costly_eval`` images,
C&W at ``--costly_cw``, rho_adv on ``--costly_rho``, fewer diagnostic steps). The table reports what
the paper reports, accuracy on the adversarial examples, beside the paper's numbers; ``<out>/compare`` has
robust accuracy and the curves; ``<out>/fig4_planes.png`` is the paper's Fig. 4, the original's decision
planes above BCGAN's.
A finished row (``results.json`` present) is not run again and an interrupted one resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import runs as runs_lib  # noqa: E402
from benchmarks.baselines_mnist import COSTLY, CW_RADII, add_cw, cw_budget, trim_costly  # noqa: E402
from benchmarks.runs import load_config  # noqa: E402

# row -> (config file, config argument); {e1}, {e2}: the dataset's FGSM radii
ROWS = {
    "original": ("standard_mnist", ""),
    "fgsm_at_1": ("fgsm_at_mnist", "eps={e1}"),
    "fgsm_at_2": ("fgsm_at_mnist", "eps={e2}"),
    "pgd_at": ("pgd_at_mnist", ""),
    "distillation": ("distillation_mnist", ""),
    "defense_gan": ("defense_gan_mnist", ""),
    "bcgan": ("bcgan_mnist", ""),
}
PGD_AT_EPS = {"mnist": 0.3, "fashion_mnist": 0.15}

# The paper's Table 1 (clean, FGSM e1, FGSM e2, PGD, C&W-L2; %) and Table 2 (rho_adv).
PAPER = {
    "mnist": {"original": (99.2, 74.5, 31.3, 11.0, 32.6, 0.40), "fgsm_at_1": (99.3, 96.2, 84.7, 73.3, 85.2, 0.77),
              "fgsm_at_2": (98.8, 96.3, 92.3, 44.5, 96.3, 0.86), "pgd_at": (99.1, 97.1, 92.6, 93.6, 96.4, 0.88),
              "distillation": (96.9, 96.0, 96.0, 96.0, 2.1, 1.67), "defense_gan": (90.1, 83.1, 71.2, 77.0, 34.4, 0.10),
              "bcgan": (97.7, 97.4, 97.3, 97.4, 97.5, 1.94)},
    "fashion_mnist": {"original": (90.9, 60.7, 18.6, 0.0, 0.0, 0.15),
                      "fgsm_at_1": (90.3, 81.1, 58.5, 2.0, 54.4, 0.27),
                      "fgsm_at_2": (89.0, 80.5, 76.0, 14.9, 82.3, 0.47),
                      "pgd_at": (83.5, 81.5, 77.7, 67.3, 84.9, 0.58),
                      "distillation": (88.1, 80.4, 80.2, 80.1, 0.0, 1.65),
                      "defense_gan": (83.5, 78.9, 69.0, 49.8, 37.9, 0.11),
                      "bcgan": (85.4, 83.8, 83.8, 83.6, 85.9, 1.70)},
}


def radii(dataset: str) -> tuple[float, float]:
    """The dataset's two FGSM radii (configs/bcgan_mnist.py's ``PAPER``)."""
    from configs.bcgan_mnist import PAPER as BCGAN

    return BCGAN[dataset][0], BCGAN[dataset][1]


def tag(eps: float) -> str:
    return f"{eps:g}".replace(".", "p")


def row_config(a, row: str):
    """The row's config with the dataset, the budget and BCGAN's evaluation; returns (config, overrides, arg)."""
    from configs.bcgan_mnist import paper_config

    e1, e2 = radii(a.dataset)
    config_name, arg = ROWS[row]
    arg = arg.format(e1=e1, e2=e2)
    c = load_config(config_name, arg)
    o = {}
    if a.dataset != "mnist":
        o["data.name"] = a.dataset
    if a.idx:
        o["data.source"], o["data.path"] = "idx", a.idx
    o.update(runs_lib.budget_overrides(a))
    d = c.defense
    if row == "pgd_at":
        o["defense.attack.eps"] = PGD_AT_EPS[a.dataset]
    if not a.paper:
        attack = d.get("attack")
        if attack is not None and attack.get("attack") == "pgd":
            eps = o.get("defense.attack.eps", float(attack.eps))
            o["defense.attack.num_steps"] = a.train_steps
            o["defense.attack.step_size"] = 2.5 * float(eps) / a.train_steps
        if "eps_ramp_epochs" in d and float(d.eps_ramp_epochs) > 0:
            o["defense.eps_ramp_epochs"] = float(a.ramp)
        gan_epochs = float(a.gan_epochs if a.gan_epochs is not None else a.epochs)
        if "gan_epochs" in d:
            o["defense.gan_epochs"] = gan_epochs
        if "pretrain_epochs" in d:
            o["defense.pretrain_epochs"] = float(a.epochs)
        if "num_boundary_samples" in d:
            o["defense.num_boundary_samples"] = int(a.train)
    runs_lib.apply(c, o)

    num_examples = int(c.eval.num_examples)
    c.eval = paper_config(a.dataset).eval
    c.eval.num_examples = num_examples
    if row == "defense_gan":  # its naive attacker and EOT, as its config has them, at the larger radius
        from configs.defense_gan_mnist import adaptive_naive_and_eot

        adaptive_naive_and_eot(c, e2, pgd_steps=40, step_size=0.01, apgd_steps=25, eot_iter=4)
    if row in COSTLY and not a.paper:  # a projection in every prediction: baselines_mnist.COSTLY's cut
        trim_costly(a, c, o)
        o.update(runs_lib.apply(c, {"eval.metrics.rho_adv.num_examples": int(a.costly_rho)}))
    c.eval.metrics.rho_adv.num_examples = min(int(c.eval.metrics.rho_adv.num_examples), int(c.eval.num_examples))
    return c, o, (config_name, arg)


def columns(dataset: str) -> list[tuple[str, str]]:
    """[(label in results, header)]: the paper's Table 1 columns first, then the strong attacks."""
    e1, e2 = radii(dataset)
    return [(f"fgsm_{tag(e1)}", f"FGSM {e1:g}"), (f"fgsm_{tag(e2)}", f"FGSM {e2:g}"),
            (f"pgd40_{tag(e1)}", f"PGD-40 {e1:g}"), (f"pgd40_{tag(e2)}", f"PGD-40 {e2:g}"),
            ("cw_l2", "C&W-L2"), (f"pgd1000_{tag(e2)}", f"PGD-1000 {e2:g}"), (f"aa_{tag(e2)}", f"AutoAttack {e2:g}")]


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def table(results: dict, dataset: str) -> str:
    """Markdown: accuracy on adversarial examples (%) per row and column, the C&W radii, rho_adv, and the
    paper's Table 1 / Table 2 numbers in the last column group."""
    cols = columns(dataset)
    head = (["defense", "clean"] + [h for _, h in cols] + [f"C&W acc @ L2 {r:g}" for r in CW_RADII]
            + ["C&W median L2", "rho_adv (not flipped)", "paper: clean / FGSM / FGSM / PGD / C&W / rho_adv"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        attacks = res["attacks"]
        naive = any(k.endswith("_naive") for k in attacks)
        for variant in ("", "_naive") if naive else ("",):
            cells = [_pct(attacks.get(k + variant, {}).get("accuracy_on_adversarial")) for k, _ in cols]
            cw = attacks.get("cw_l2" + variant, {})
            at = {round(p["radius"], 6): p.get("accuracy_on_adversarial", p["robust_accuracy"])
                  for p in cw.get("at_radius") or []}
            cells += [_pct(at.get(r)) for r in CW_RADII]
            cells.append("-" if cw.get("median_l2") is None else f"{cw['median_l2']:.2f}")
            rho = (res.get("metrics") or {}).get("rho_adv")
            cells.append("-" if variant or not rho else f"{rho['value']:.2f} ({100 * rho['not_flipped']:.0f}%)")
            paper = PAPER[dataset].get(name)
            if variant or not paper:
                cells.append("-")
            else:  # five percentages, then rho_adv
                cells.append(" / ".join(f"{v:.1f}" for v in paper[:-1]) + f" / {paper[-1]:.2f}")
            label = name + (" (naive attacker)" if variant else (" (BPDA)" if naive else ""))
            lines.append(f"| {label} | {_pct(res['clean_accuracy'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def planes(out: str, rows=("original", "bcgan")) -> str | None:
    """The paper's Fig. 4: each row's decision planes around the same test images (the suite draws one
    ``decision_plane.png`` per run), one above the other, into ``<out>/fig4_planes.png``; None when a
    row's picture is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    paths = [os.path.join(out, r, "decision_plane.png") for r in rows]
    if not all(os.path.exists(p) for p in paths):
        return None
    images = [matplotlib.image.imread(p) for p in paths]
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 6.3 * len(rows)))
    for ax, row, image in zip(axes, rows, images):
        ax.imshow(image)
        ax.set_title(row, fontsize=14, fontweight="bold")
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(out, "fig4_planes.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=list(PAPER))
    p.add_argument("--npz", default="", help="MNIST as an npz (else the configs' tfds source)")
    p.add_argument("--idx", default="", help="a directory of the official IDX files (Fashion-MNIST offline)")
    p.add_argument("--out", default="")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--paper", action="store_true", help="the configs' own settings, no budget overrides")
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--gan_epochs", type=float, default=None)
    p.add_argument("--ramp", type=float, default=1)
    p.add_argument("--train_steps", type=int, default=10)
    p.add_argument("--eval", type=int, default=500)
    p.add_argument("--cw_search", type=int, default=5)
    p.add_argument("--cw_steps", type=int, default=200)
    p.add_argument("--costly_eval", type=int, default=100, help="test images of Defense-GAN's row")
    p.add_argument("--costly_cw", type=int, nargs=2, default=(3, 50), metavar=("SEARCH", "STEPS"),
                   help="C&W of Defense-GAN's row: binary-search steps, Adam steps")
    p.add_argument("--costly_rho", type=int, default=32, help="rho_adv's test images in Defense-GAN's row")
    p.add_argument("--print", action="store_true", help="print the main.py commands, run nothing")
    a = p.parse_args(argv)
    if a.paper:
        a.cw_search, a.cw_steps = 9, 1000
    if a.npz and a.idx:
        p.error("--npz and --idx name two data sources: give one")
    a.out = a.out or f"runs/bcgan_{a.dataset}"
    return a


def main():
    from configs.bcgan_mnist import paper_config

    a = parse()
    plan = []
    for name in a.rows:
        config, o, (config_name, arg) = row_config(a, name)
        labels = add_cw(config, *cw_budget(a, name))
        workdir = os.path.join(a.out, name)
        plan.append((name, config, workdir))
        without = sorted(set(paper_config(a.dataset).eval.attacks) - set(config.eval.attacks))
        print(runs_lib.main_command(config_name, arg, o, workdir)
              + f"  # with config.eval from configs/bcgan_{a.dataset}.py"
              + (f" without {', '.join(without)}" if without else "")
              + f", eval.num_examples {config.eval.num_examples}"
              + ", plus " + json.dumps({k: config.eval.attacks[k].to_dict() for k in labels}), flush=True)
    if a.print:
        return

    from robustjax.evaluate import compare

    runs_lib.run_missing(plan)
    runs = [compare.load_run(w) for _, _, w in plan]
    compare.write(runs, os.path.join(a.out, "compare"), eps=list(radii(a.dataset)))
    results = {name: r.results for (name, _, _), r in zip(plan, runs)}
    md = table(results, a.dataset)
    open(os.path.join(a.out, "table.md"), "w").write(md + "\n")
    print(md)
    fig = planes(a.out)
    if fig:
        print(f"Fig. 4 (decision planes, original above BCGAN): {fig}")
    for name, res in results.items():
        warnings = res.get("diagnostics", {}).get("warnings", [])
        print(f"{name}: {len(warnings)} gradient-masking warning(s)" + "".join(f"\n  - {w}" for w in warnings))


if __name__ == "__main__":
    main()
