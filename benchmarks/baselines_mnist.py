"""Every baseline defense on real MNIST at one budget, in one command: the comparison table of the baselines
issue (clean, FGSM 0.3, PGD-40 0.3, PGD-1000 0.3, AutoAttack 0.3, C&W-L2 accuracy at L2 radii 1.5 and 2.0
with the median L2 of its successes; feature squeezing and Defense-GAN attacked adaptively and naively).

    python benchmarks/baselines_mnist.py --npz ../shared/data/mnist.npz --out runs/baselines_mnist \\
        --train 10000 --epochs 6 --train_steps 10 --eval 500
    python benchmarks/baselines_mnist.py --npz ../shared/data/mnist.npz --rows standard pgd_at trades --print
    python benchmarks/baselines_mnist.py --out runs/baselines_mnist --paper      # the configs' own settings

Each row is ``main.py`` on ``configs/<row's config>.py`` with the same budget overrides for every row (the
script prints the equivalent command of each; ``--print`` only prints them). A finished row
(``results.json`` present) is not run again and an interrupted one resumes: re-run the same command.

Budget options (they override the configs' settings; ``--paper`` leaves them alone): ``--train`` first N
training images, ``--epochs`` (every phase: distillation's teacher follows its student; Defense-GAN's
WGAN gets ``--gan_epochs``, by default ``--epochs`` too), ``--train_steps`` train-time PGD steps (step
``2.5 eps / steps``; the configs' PGD-40 of 0.01 otherwise), ``--ramp`` epochs of eps curriculum,
``--eval`` test images.

Evaluation: each config's own suite (``linf_suite``: FGSM and PGD-40 at 0.1 and 0.3, PGD-1000 and
AutoAttack at 0.3, a PGD-40 curve; the naive and EOT attacks of feature squeezing and Defense-GAN) plus
C&W-L2 (``--cw_search`` binary-search steps x ``--cw_steps`` Adam steps; the paper's 9 x 1000 with
``--paper``) with accuracy at L2 radii 1.5 and 2.0 and the median L2 of its successes (compare minimal-norm
attacks at a radius, not by success rate), naive as well where the row has naive attacks. Defense-GAN,
whose every prediction runs its projection, gets a CPU-sized evaluation (``COSTLY`` below: no PGD-1000 or
AutoAttack, ``--costly_eval`` images, C&W at ``--costly_cw``); its printed command says what.
``--preset quick`` evaluates with ``config.eval.preset="quick"`` (capped loop counts: upper bounds, less
time). The table is written by ``robustjax.report`` into ``<out>/compare`` (robust accuracy), plus
``<out>/table.md`` with the C&W columns and the gradient-masking checks that fired on each row.
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

# row -> (config file, config argument)
ROWS = {
    "standard": ("standard_mnist", ""),
    "pgd_at": ("pgd_at_mnist", ""),
    "fgsm_at": ("fgsm_at_mnist", ""),
    "mix_pgd": ("mix_pgd_mnist", ""),
    "logit_pairing": ("logit_pairing_mnist", ""),
    "trades": ("trades_mnist", ""),
    "distillation": ("distillation_mnist", ""),
    "label_smoothing": ("label_smoothing_mnist", ""),
    "gda_relu": ("gda_mnist", ""),
    "gda_brelu": ("gda_mnist", "brelu=True"),
    "vat": ("vat_mnist", ""),
    "feature_squeezing": ("feature_squeezing_mnist", ""),
    "defense_gan": ("defense_gan_mnist", ""),
}
CW_RADII = [1.5, 2.0]

# Rows whose every prediction runs an inner optimisation: Defense-GAN projects each input with L x R
# generator passes (200 at its config's defaults: 33-46 ms per image per prediction on a 2-core CPU),
# so PGD-1000 and AutoAttack through it would take hours there. Unless --paper, such a row is evaluated on
# the first --costly_eval test images with its attacks of at most 100 steps (FGSM, PGD-40 adaptive and
# naive, APGD with EOT), C&W at --costly_cw, and the masking diagnostics on fewer images, steps and
# queries (COSTLY_DIAGNOSTICS) at the largest PGD radius; the table prints "-" where an attack was not run.
COSTLY = ("defense_gan",)
COSTLY_DROPPED = ("pgd1000_", "aa_")
COSTLY_DIAGNOSTICS = {"num_examples": 64, "many_steps": 100, "unbounded_steps": 50, "square_queries": 200}


def overrides(a, config) -> dict:
    """The ``--config.<field>`` overrides of one row (applied to ``config`` too)."""
    o = runs_lib.budget_overrides(a)
    if a.preset != "full":  # config.eval.preset: "quick" caps every attack's loop counts (weaker, said in the report)
        o["eval.preset"] = a.preset
    if not a.paper:
        d = config.defense
        attack = d.get("attack")
        if attack is not None and attack.get("attack") == "pgd" and float(attack.get("eps", 0.0)) > 0:
            o["defense.attack.num_steps"] = a.train_steps
            o["defense.attack.step_size"] = 2.5 * float(attack.eps) / a.train_steps
        if "eps_ramp_epochs" in d and float(d.eps_ramp_epochs) > 0:
            o["defense.eps_ramp_epochs"] = float(a.ramp)
        if "gan_epochs" in d:
            o["defense.gan_epochs"] = float(a.gan_epochs if a.gan_epochs is not None else a.epochs)
    return runs_lib.apply(config, o)


def trim_costly(a, config, o: dict) -> list[str]:
    """For a ``COSTLY`` row (unless ``--paper``): the evaluation cut to what a CPU can run (see COSTLY).
    Adds the field overrides to ``o``; returns the labels of the suite attacks it dropped."""
    if a.paper:
        return []
    attacks = dict(config.eval.attacks)
    dropped = sorted(k for k in attacks if k.startswith(COSTLY_DROPPED))
    config.eval.attacks = {k: v for k, v in attacks.items() if k not in dropped}
    diag = config.eval.diagnostics
    cut = {"eval.num_examples": min(int(config.eval.num_examples), int(a.costly_eval))}
    cut.update({f"eval.diagnostics.{k}": min(int(diag[k]), v) for k, v in COSTLY_DIAGNOSTICS.items()})
    if not float(diag.eps):  # without PGD-1000 the diagnostics would compare at the suite's first PGD radius
        cut["eval.diagnostics.eps"] = max(float(v.eps) for v in config.eval.attacks.values() if v.attack == "pgd")
    o.update(runs_lib.apply(config, cut))
    return dropped


def add_cw(config, search: int, steps: int) -> list[str]:
    """C&W-L2 with accuracy at ``CW_RADII``, adaptive, and naive too where the row has naive attacks."""
    attacks = dict(config.eval.attacks)
    spec = {"attack": "cw_l2", "binary_search_steps": search, "num_steps": steps, "radii": CW_RADII}
    attacks["cw_l2"] = spec
    labels = ["cw_l2"]
    if any(v.get("adaptive") is False for v in attacks.values()):
        attacks["cw_l2_naive"] = {**spec, "adaptive": False}
        labels.append("cw_l2_naive")
    config.eval.attacks = attacks
    return labels


def cw_budget(a, name: str) -> tuple[int, int]:
    """C&W's (binary-search steps, Adam steps) for row ``name``: ``--costly_cw`` for a COSTLY row unless
    ``--paper``, else ``--cw_search`` x ``--cw_steps``."""
    return tuple(a.costly_cw) if name in COSTLY and not a.paper else (a.cw_search, a.cw_steps)


def row_config(a, name: str):
    """One row: its config with the budget, the COSTLY cut and C&W; returns ``(config, overrides, C&W
    labels, dropped suite attacks)``. ``a``: the parsed arguments."""
    config_name, arg = ROWS[name]
    config = load_config(config_name, arg)
    o = overrides(a, config)
    dropped = trim_costly(a, config, o) if name in COSTLY else []
    labels = add_cw(config, *cw_budget(a, name))
    return config, o, labels, dropped


def command(config_name: str, arg: str, o: dict, extra: dict, workdir: str) -> str:
    return (runs_lib.main_command(config_name, arg, o, workdir)
            + "  # plus config.eval.attacks: " + json.dumps(extra))


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def fired(res: dict) -> str:
    """The gradient-masking checks that flagged a run (their ``results.json`` names), ``none``, or ``-``
    where the run has no diagnostics."""
    checks = (res.get("diagnostics") or {}).get("checks")
    if not checks:
        return "-"
    names = [k for k, v in checks.items()
             if any(c.get("flagged") for c in (v if isinstance(v, list) else [v]) if isinstance(c, dict))]
    return ", ".join(sorted(names)) or "none"


def table(rows: dict) -> str:
    """Markdown: clean, the L-inf attacks at 0.3 (APGD with EOT where a randomised row has it), C&W-L2 at
    its radii (robust accuracy), and the masking checks that fired, one line per row. The diagnostics
    attack the adaptive pipeline, so a naive line shows ``-`` there."""
    cols = ["fgsm_0p3", "pgd40_0p3", "pgd1000_0p3", "aa_0p3", "apgd_eot_0p3"]
    head = ("| defense | clean | FGSM 0.3 | PGD-40 0.3 | PGD-1000 0.3 | AutoAttack 0.3 | APGD-EOT 0.3 | "
            + " | ".join(f"C&W-L2 acc @ {r:g}" for r in CW_RADII) + " | C&W median L2 | masking checks fired |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, res in rows.items():
        attacks = res["attacks"]
        for variant in ("", "_naive"):
            if variant and not any(k.endswith("_naive") for k in attacks):
                continue
            cells = [_fmt(attacks.get(c + variant, {}).get("robust_accuracy")) for c in cols]
            cw = attacks.get("cw_l2" + variant, {})
            at = {round(p["radius"], 6): p["robust_accuracy"] for p in cw.get("at_radius") or []}
            cells += [_fmt(at.get(r)) for r in CW_RADII] + [_fmt(cw.get("median_l2"))]
            cells.append("-" if variant else fired(res))
            label = name + (" (naive attacker)" if variant else (" (adaptive)" if any(
                k.endswith("_naive") for k in attacks) else ""))
            lines.append(f"| {label} | {res['clean_accuracy']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--npz", default="", help="MNIST as an npz (else the configs' tfds source)")
    p.add_argument("--out", default="runs/baselines_mnist")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--paper", action="store_true", help="the configs' own settings, no budget overrides")
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--epochs", type=float, default=6)
    p.add_argument("--gan_epochs", type=float, default=None, help="Defense-GAN's WGAN epochs (default: --epochs)")
    p.add_argument("--ramp", type=float, default=2)
    p.add_argument("--train_steps", type=int, default=10)
    p.add_argument("--eval", type=int, default=500)
    p.add_argument("--cw_search", type=int, default=5)
    p.add_argument("--cw_steps", type=int, default=200)
    p.add_argument("--costly_eval", type=int, default=100, help="test images of a COSTLY row (Defense-GAN)")
    p.add_argument("--costly_cw", type=int, nargs=2, default=(3, 50), metavar=("SEARCH", "STEPS"),
                   help="C&W of a COSTLY row: binary-search steps, Adam steps")
    p.add_argument("--preset", choices=("full", "quick"), default="full",
                   help="config.eval.preset; quick caps the attacks' loop counts (upper bounds, faster)")
    p.add_argument("--print", action="store_true", help="print the main.py commands, run nothing")
    a = p.parse_args()
    if a.paper:
        a.cw_search, a.cw_steps = 9, 1000

    plan = []
    for name in a.rows:
        config_name, arg = ROWS[name]
        config, o, labels, dropped = row_config(a, name)
        workdir = os.path.join(a.out, name)
        extra = {k: config.eval.attacks[k].to_dict() for k in labels}
        if dropped:
            extra = {**extra, "dropped": dropped}
        plan.append((name, config, workdir))
        print(command(config_name, arg, o, extra, workdir), flush=True)
    if a.print:
        return

    from robustjax.evaluate import compare

    runs_lib.run_missing(plan)

    runs = [compare.load_run(w) for _, _, w in plan]
    compare.write(runs, os.path.join(a.out, "compare"), eps=[0.1, 0.3])
    results = {name: r.results for (name, _, _), r in zip(plan, runs)}
    md = table(results)
    open(os.path.join(a.out, "table.md"), "w").write(md + "\n")
    print(md)
    for name, res in results.items():
        warnings = res.get("diagnostics", {}).get("warnings", [])
        print(f"{name}: {len(warnings)} gradient-masking warning(s)" + "".join(f"\n  - {w}" for w in warnings))


if __name__ == "__main__":
    main()
