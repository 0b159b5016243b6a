"""Several runs side by side: the paper-style comparison table, the family of robustness curves,
point-wise tables at chosen test eps, and saliency maps across runs.

    python -m robustjax.report runs/pgd_at-eps0.1 runs/pgd_at-eps0.3 runs/atgan-eps0.3 --out runs/compare \\
        --eps 0.1,0.2,0.3

    from robustjax.evaluate import compare
    runs = [compare.load_run(d) for d in dirs]
    paths, markdown = compare.write(runs, out_dir, eps=[0.1, 0.3])

Each run directory is what ``main.py`` wrote: ``results.json`` (required; it holds the config since this
version, else ``config.json`` beside it is read) and ``figures.npz`` (optional: the saliency figure).
A run is named by its defense and its key hyperparameters (the train-time eps ``eps_t``, FracAT's
``frac``); runs that would share a name get the config fields in which they differ, else their directory.

What is written into ``out`` (and the Markdown printed):

- ``comparison.md`` / ``comparison.csv``: rows = runs, columns = clean accuracy and each attack's accuracy
  (``--metric``: robust accuracy, the default, or accuracy on adversarial examples), aligned by attack
  label. An attack that only some runs have is blank in the others, and the report says which; a label
  whose attack, norm or eps differs between runs is named too (its column compares different things).
- ``curves.png``: one robustness curve per run (ATGAN's Figs. 2-4): the colour is the run's key
  hyperparameters (e.g. ``eps_t``), the line style its defense (solid, dashed, dash-dot, dotted in order
  of appearance), vertical dashed lines at the ``--eps`` test radii.
- ``pointwise.csv`` and a table in the Markdown (ATGAN's Tables 2-4): the curves read at each ``--eps``
  (default: the grid points every run's curve has); rows = test eps, columns = runs. A run whose grid
  lacks a radius is blank there (values are read, never interpolated).
- ``saliency.png`` (when the runs saved saliency maps of the same test images): rows = runs, columns =
  the clean image and each shared test eps (images left, saliency maps right), as ATGAN's Figs. 5-7.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from robustjax.evaluate import figures as figures_lib

METRICS = ("robust_accuracy", "accuracy_on_adversarial")
LINESTYLES = ("-", "--", "-.", ":")
STYLE_NAMES = {"-": "solid", "--": "dashed", "-.": "dash-dot", ":": "dotted"}
# Config fields that never distinguish two trainings (used when naming runs apart).
_NOT_NAMES = ("eval.", "train.progress", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
              "data.data_dir", "data.download", "data.path")


class RunError(ValueError):
    """A run directory that cannot be compared (no results.json, unreadable JSON)."""


@dataclasses.dataclass
class Run:
    """One run directory's results, config and saved figure arrays."""

    path: str
    results: dict
    config: dict
    figure_data: dict
    name: str = ""

    @property
    def defense(self) -> str:
        return str((self.config.get("defense") or {}).get("name", "?"))

    @property
    def smoke(self) -> bool:
        return bool(self.config.get("smoke", False))

    @property
    def eval_preset(self) -> str:
        """``"quick"`` when the run's evaluation had capped loop counts (``config.eval.preset``), else ``"full"``."""
        return str((self.results.get("eval_preset") or {}).get("preset", "full"))

    @property
    def dataset(self) -> str:
        return str((self.results.get("info") or {}).get("dataset", (self.config.get("data") or {}).get("name", "?")))


def load_run(path: str) -> Run:
    """Reads ``path/results.json`` (and ``config.json`` when the results do not hold the config)."""
    results_path = os.path.join(path, "results.json")
    if not os.path.isfile(results_path):
        raise RunError(f"{path}: no results.json (is it a run directory written by main.py, and did its "
                       "evaluation finish?)")
    try:
        with open(results_path) as f:
            results = json.load(f)
    except ValueError as e:
        raise RunError(f"{results_path}: not valid JSON ({e})") from e
    config = results.get("config")
    if not isinstance(config, dict):
        config = {}
        config_path = os.path.join(path, "config.json")
        if os.path.isfile(config_path):
            with open(config_path) as f:
                config = json.load(f)
    data = figures_lib.load(os.path.join(path, figures_lib.DATA_FILE))
    return Run(path=os.path.normpath(path), results=results, config=config, figure_data=data)


def _fmt_num(v: float) -> str:
    return figures_lib._fmt_eps(float(v))


def key_hyperparameters(config: Mapping) -> dict[str, Any]:
    """The hyperparameters a run is named by: ``eps_t`` (the train-time attack's eps, when the defense
    has one) and ``frac`` (FracAT's ``adv_fraction``, when below 1)."""
    d = config.get("defense") or {}
    out: dict[str, Any] = {}
    attack = d.get("attack")
    if isinstance(attack, Mapping) and attack.get("eps") is not None:
        out["eps_t"] = attack["eps"]
    if isinstance(d.get("adv_fraction"), (int, float)) and d["adv_fraction"] < 1:
        out["frac"] = d["adv_fraction"]
    return out


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v
    return out


def name_runs(runs: Sequence[Run]) -> None:
    """Sets each run's ``name``: defense + key hyperparameters, made unique (see the module docstring)."""
    for run in runs:
        hp = key_hyperparameters(run.config)
        run.name = " ".join([run.defense] + [f"{k}={_fmt_num(v) if isinstance(v, float) else v}" for k, v in hp.items()])
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.name, []).append(run)
    for name, same in groups.items():
        if len(same) < 2:
            continue
        flat = [_flatten(r.config) for r in same]
        keys = sorted(set().union(*flat))
        differ = [k for k in keys if not k.startswith(_NOT_NAMES) and len({repr(f.get(k)) for f in flat}) > 1]
        for run, f in zip(same, flat):
            if differ:
                run.name = name + " " + " ".join(f"{k.split('.')[-1]}={f.get(k)}" for k in differ[:2])
            else:
                run.name = f"{name} ({os.path.basename(run.path)})"
    seen: dict[str, int] = {}
    for run in runs:  # still equal (same config twice): number them
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name} #{seen[run.name]}"


def _attack_sort_key(attacks: Mapping[str, Mapping], label: str):
    r = attacks[label]
    eps = r.get("eps")
    return (0 if eps is not None else 1, str(r.get("norm", "")), float(eps) if eps is not None else 0.0, label)


@dataclasses.dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]  # numbers or None (blank)
    notes: list[str]


def comparison_table(runs: Sequence[Run], metric: str = "robust_accuracy") -> Table:
    """Rows = runs; columns = clean accuracy and each attack label (the union, sorted by norm and eps)."""
    union: dict[str, Mapping] = {}
    for run in runs:
        for label, r in (run.results.get("attacks") or {}).items():
            union.setdefault(label, r)
    labels = sorted(union, key=lambda k: _attack_sort_key(union, k))
    notes = []
    for label in labels:
        have = [run for run in runs if label in (run.results.get("attacks") or {})]
        if len(have) < len(runs):
            missing = [run.name for run in runs if run not in have]
            notes.append(f"`{label}` is not in every run: blank for {', '.join(missing)}.")
        specs = {(r.results["attacks"][label].get("attack"), r.results["attacks"][label].get("norm"),
                  r.results["attacks"][label].get("eps")) for r in have}
        if len(specs) > 1:
            shown = "; ".join(f"{a} {n} eps {e}" for a, n, e in sorted(specs, key=repr))
            notes.append(f"`{label}` means different attacks in different runs ({shown}): that column compares "
                         "unlike things.")
    header = ["run", "clean"]
    for label in labels:
        r = union[label]
        eps = f" {r.get('norm')} {_fmt_num(r['eps'])}" if r.get("eps") is not None else ""
        header.append(f"{label} ({r.get('attack')}{eps})")
    rows = []
    for run in runs:
        attacks = run.results.get("attacks") or {}
        row: list[Any] = [run.name, run.results.get("clean_accuracy")]
        for label in labels:
            r = attacks.get(label)
            value = None if r is None else r.get(metric)
            if value is None and r is not None and metric == "accuracy_on_adversarial":
                notes.append(f"{run.name}: `{label}` has no {metric} (an older results.json).")
            row.append(value)
        rows.append(row)
    return Table(header, rows, notes)


def _curve_label(runs: Sequence[Run], wanted: str | None) -> str | None:
    counts: dict[str, int] = {}
    for run in runs:
        for label in (run.results.get("curves") or {}):
            counts[label] = counts.get(label, 0) + 1
    if wanted:
        return wanted if wanted in counts else None
    if not counts:
        return None
    return sorted(counts, key=lambda k: (-counts[k], k))[0]


def _point(curve: Mapping, eps: float, metric: str) -> float | None:
    for p in curve.get("points", []):
        if math.isclose(p["eps"], eps, rel_tol=1e-5, abs_tol=1e-9):
            return p.get(metric)
    return None


def pointwise_table(runs: Sequence[Run], curve_label: str, eps: Sequence[float] | None,
                    metric: str = "robust_accuracy") -> Table:
    """Rows = test eps, columns = runs: each run's ``curve_label`` curve read at each eps (no interpolation)."""
    curves = {run.name: (run.results.get("curves") or {}).get(curve_label) for run in runs}
    notes = []
    lacking = [name for name, c in curves.items() if c is None]
    if lacking:
        notes.append(f"No curve `{curve_label}` in: {', '.join(lacking)}.")
    present = [c for c in curves.values() if c is not None]
    if eps is None:
        grids = [{round(p["eps"], 9) for p in c["points"]} for c in present]
        eps = sorted(set.intersection(*grids)) if grids else []
    rows = []
    for e in eps:
        row: list[Any] = [f"{_fmt_num(e)}"]
        for name, c in curves.items():
            row.append(None if c is None else _point(c, e, metric))
        missing = [name for name, c in curves.items() if c is not None and _point(c, e, metric) is None]
        if missing:
            notes.append(f"eps {_fmt_num(e)} is not on the curve's grid of {', '.join(missing)}: blank (not interpolated).")
        rows.append(row)
    return Table(["test eps"] + [run.name for run in runs], rows, notes)


def _md_table(table: Table) -> str:
    def cell(v):
        if v is None:
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _write_csv(path: str, table: Table, extra: Sequence[Sequence[Any]] | None = None,
               extra_header: Sequence[str] = ()) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(table.header) + list(extra_header))
        for i, row in enumerate(table.rows):
            w.writerow(["" if v is None else v for v in row] + (list(extra[i]) if extra else []))


def draw_curves(runs: Sequence[Run], curve_label: str, path: str, eps_lines: Sequence[float] = (),
                metric: str = "robust_accuracy") -> str | None:
    """The family of robustness curves: colour = key hyperparameters, line style = defense."""
    have = [(run, run.results["curves"][curve_label]) for run in runs if curve_label in (run.results.get("curves") or {})]
    if not have:
        return None
    plt = figures_lib._plt()
    defenses = list(dict.fromkeys(run.defense for run, _ in have))
    colour_of = [json.dumps(key_hyperparameters(run.config), sort_keys=True) for run, _ in have]
    if len(set(zip(colour_of, (run.defense for run, _ in have)))) < len(have):
        colour_of = [run.name for run, _ in have]  # runs alike in defense and key: one colour each
    keys = list(dict.fromkeys(colour_of))
    cmap = plt.get_cmap("viridis" if len(keys) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for (run, curve), colour in zip(have, colour_of):
        pts = [(p["eps"], p.get(metric)) for p in curve["points"] if p.get(metric) is not None]
        if not pts:
            continue
        k = keys.index(colour)
        color = cmap(k / max(1, len(keys) - 1)) if len(keys) > 10 else cmap(k % 10)
        style = LINESTYLES[defenses.index(run.defense) % len(LINESTYLES)]
        e, a = zip(*pts)
        ax.plot(e, a, ls=style, color=color, marker="o", ms=3.5, lw=1.6, label=run.name)
    for e in eps_lines:
        ax.axvline(e, color="0.35", ls="--", lw=0.9)
    ax.set_xlabel(f"test eps ({have[0][1].get('attack', '')}, {have[0][1].get('norm', '')})")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    style_note = ", ".join(f"{STYLE_NAMES[LINESTYLES[i % len(LINESTYLES)]]} {d}" for i, d in enumerate(defenses))
    ax.set_title(f"Robustness curves `{curve_label}` over {len(have)} runs (line style: {style_note})", fontsize=9)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_saliency(runs: Sequence[Run], path: str, example: int = 0) -> tuple[str | None, list[str]]:
    """Rows = runs, columns = clean + the test eps all runs share; images left, saliency maps right."""
    have = [run for run in runs if "saliency" in run.figure_data]
    notes = []
    if not have:
        return None, notes
    if len(have) < len(runs):
        notes.append("Saliency maps across runs leave out " + ", ".join(r.name for r in runs if r not in have)
                     + " (no figures.npz with saliency maps).")
    ref = have[0].figure_data["saliency"]
    if example >= ref["images"].shape[1]:
        return None, notes + [f"Saliency: example {example} is beyond the {ref['images'].shape[1]} saved images."]
    same = [r for r in have if r.figure_data["saliency"]["images"].shape[1] > example and
            np.allclose(r.figure_data["saliency"]["images"][0, example], ref["images"][0, example], atol=1e-6)]
    if len(same) < len(have):
        notes.append("Saliency maps across runs leave out " + ", ".join(r.name for r in have if r not in same)
                     + " (their saved test images differ from the first run's: another dataset or order).")
    eps_sets = [{round(float(e), 7) for e in r.figure_data["saliency"]["eps"]} for r in same]
    eps = sorted(set.intersection(*eps_sets))
    plt = figures_lib._plt()
    cols = 1 + len(eps)
    fig, axes = plt.subplots(len(same), 2 * cols, figsize=(1.15 * 2 * cols + 1.8, 1.25 * len(same) + 0.8),
                             squeeze=False, gridspec_kw={"wspace": 0.08, "hspace": 0.35})
    for r, run in enumerate(same):
        d = run.figure_data["saliency"]
        index = [0] + [1 + [round(float(e), 7) for e in d["eps"]].index(e) for e in eps]
        for c, i in enumerate(index):
            img_ax, sal_ax = axes[r, c], axes[r, cols + c]
            figures_lib._show(img_ax, d["images"][i, example])
            pred, y = int(d["pred"][i, example]), int(d["labels"][example])
            img_ax.set_xlabel(f"pred {pred}", fontsize=7, color="red" if pred != y else "black", labelpad=1)
            figures_lib._show(sal_ax, figures_lib._norm_map(d["saliency"][i, example]), cmap="hot")
            if r == 0:
                head = "clean" if i == 0 else f"eps {_fmt_num(eps[c - 1])}"
                img_ax.set_title(head, fontsize=8, pad=3)
                sal_ax.set_title(f"saliency, {head}", fontsize=7, pad=3)
        axes[r, 0].set_ylabel(run.name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"Test image {example} (label {int(ref['labels'][example])}) across runs (rows): images left, "
                 "saliency |grad_x loss| right\n(each map scaled to its own maximum; red: wrong prediction)",
                 fontsize=9, y=fig.subplotpars.top + 0.5 / fig.get_size_inches()[1])
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path, notes


def write(runs: Sequence[Run], out: str, *, eps: Sequence[float] | None = None, metric: str = "robust_accuracy",
          curve: str | None = None, example: int = 0) -> tuple[dict[str, str], str]:
    """Writes the comparison of ``runs`` into ``out``; returns (paths, Markdown). See the module docstring."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {METRICS}")
    if not runs:
        raise ValueError("no runs to compare")
    os.makedirs(out, exist_ok=True)
    name_runs(runs)
    paths = {"report": os.path.join(out, "comparison.md"), "csv": os.path.join(out, "comparison.csv")}
    table = comparison_table(runs, metric)
    lines = [f"# Comparison of {len(runs)} runs", "",
             f"Metric: **{metric.replace('_', ' ')}** (" + ("correct on the clean input and on the attacked one"
                                                            if metric == "robust_accuracy" else
                                                            "correct on the attacked input") + ").", ""]
    lines += ["| run | directory | dataset | examples |", "|---|---|---|---|"]
    for run in runs:
        smoke = " (SMOKE RUN: numbers mean nothing)" if run.smoke else ""
        if run.eval_preset != "full":
            smoke += f" (EVALUATION PRESET {run.eval_preset.upper()}: capped attacks, weaker)"
        lines.append(f"| {run.name}{smoke} | {run.path} | {run.dataset} | {run.results.get('num_examples', '?')} |")
    lines.append("")
    datasets = {run.dataset for run in runs}
    counts = {run.results.get("num_examples") for run in runs}
    if len(datasets) > 1:
        lines += [f"Note: the runs use different datasets ({', '.join(sorted(datasets))}).", ""]
    if len(counts) > 1:
        lines += [f"Note: the runs were evaluated on different numbers of test examples ({sorted(counts, key=str)}).", ""]
    presets = {run.eval_preset for run in runs}
    if len(presets) > 1:
        quick = [run.name for run in runs if run.eval_preset != "full"]
        lines += [f"Note: the runs were evaluated with different presets: {', '.join(quick)} with capped loop counts "
                  "(`eval.preset` quick), the others in full. Their robust accuracies are upper bounds from weaker "
                  "attacks: compare them with care, or re-evaluate with `--config.eval.preset=full`.", ""]
    lines += ["## Accuracy per attack", "", _md_table(table), ""]
    lines += [f"Note: {n}" for n in table.notes]
    if table.notes:
        lines.append("")
    _write_csv(paths["csv"], table, [[run.defense, run.path] for run in runs], ["defense", "directory"])

    label = _curve_label(runs, curve)
    if label is not None:
        curve_metric = metric if all(
            metric in p for run in runs for p in (run.results.get("curves") or {}).get(label, {}).get("points", [])
        ) else "robust_accuracy"
        eps_lines = list(eps or [])
        drawn = draw_curves(runs, label, os.path.join(out, "curves.png"), eps_lines, curve_metric)
        point = pointwise_table(runs, label, eps, curve_metric)
        paths["pointwise"] = os.path.join(out, "pointwise.csv")
        _write_csv(paths["pointwise"], point)
        lines += [f"## Robustness curves `{label}`", ""]
        if drawn:
            paths["curves"] = drawn
            lines += [f"![curves]({os.path.basename(drawn)})", ""]
        lines += [f"Point-wise {curve_metric.replace('_', ' ')} at chosen test eps (rows) for each run (columns):",
                  "", _md_table(point), ""]
        lines += [f"Note: {n}" for n in point.notes]
        if point.notes:
            lines.append("")
    elif curve:
        lines += [f"Note: no run has a curve `{curve}`.", ""]
    saliency_path, notes = draw_saliency(runs, os.path.join(out, "saliency.png"), example)
    if saliency_path:
        paths["saliency"] = saliency_path
        lines += ["## Saliency maps across runs", "", f"![saliency]({os.path.basename(saliency_path)})", ""]
    lines += [f"Note: {n}" for n in notes]
    markdown = "\n".join(lines).rstrip("\n") + "\n"
    with open(paths["report"], "w") as f:
        f.write(markdown)
    return paths, markdown
