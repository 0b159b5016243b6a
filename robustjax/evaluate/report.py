"""Writes an evaluation into a work directory: results.json, report.md, curves.png, examples.png.

    paths, markdown = report.write(workdir, results, title="pgd_at on mnist", pictures=results["_pictures"])
    print(markdown)

Pictures are drawn with matplotlib's Agg backend (no display needed) and only when there is something
to draw; the JSON file is the machine-readable record, the Markdown file the human one.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _markdown(results: dict, title: str, extra: dict | None) -> str:
    lines = [f"# {title}", ""]
    if extra:
        for k, v in extra.items():
            lines.append(f"- {k}: {v}")
        lines.append("")
    lines += [f"Examples evaluated: {results['num_examples']}", "",
              f"**Clean accuracy: {results['clean_accuracy']:.4f}**", ""]
    if results["attacks"]:
        lines += ["| attack | norm | eps | robust accuracy | success rate | median L2 | median Linf | budget violations |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, r in results["attacks"].items():
            lines.append(
                f"| {label} ({r['attack']}) | {r.get('norm', '-')} | {_fmt(r.get('eps'))} | "
                f"{_fmt(r['robust_accuracy'])} | {_fmt(r.get('success_rate'))} | {_fmt(r.get('median_l2'))} | "
                f"{_fmt(r.get('median_linf'))} | {r.get('budget_violations', 0)} |"
            )
        lines.append("")
        lines.append("Robust accuracy = correct on the clean input and on the attacked one.")
        lines.append("")
    if results.get("worst_case"):
        lines += ["Worst case over all attacks at the same budget (per example):", ""]
        for k, v in results["worst_case"].items():
            lines.append(f"- {k}: {v:.4f}")
        lines.append("")
    for label, curve in results.get("curves", {}).items():
        lines += [f"## Robustness curve: {label} ({curve['attack']}, {curve['norm']})", "",
                  "| eps | robust accuracy |", "|---|---|"]
        for p in curve["points"]:
            lines.append(f"| {p['eps']:g} | {p['robust_accuracy']:.4f} |")
        lines.append("")
    # The evaluation's own sections (both accuracies, minimal perturbations, metrics, detector curves,
    # gradient-masking diagnostics) are written by the modules that compute them.
    from robustjax.evaluate import diagnostics, metrics

    lines += metrics.markdown(results)
    lines += diagnostics.markdown(results)
    return "\n".join(lines)


def _plot_curves(results: dict, path: str) -> bool:
    if not results.get("curves"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, curve in results["curves"].items():
        eps = [p["eps"] for p in curve["points"]]
        acc = [p["robust_accuracy"] for p in curve["points"]]
        ax.plot(eps, acc, marker="o", label=f"{label} ({curve['attack']}, {curve['norm']})")
    ax.set_xlabel("eps")
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _plot_examples(pictures: dict, path: str) -> bool:
    pictures = {k: v for k, v in pictures.items() if v[0].ndim == 4}
    if not pictures:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for label, (x, x_adv, y, pred) in pictures.items():
        rows.append((label, x, x_adv, y, pred))
    n = min(len(rows[0][1]), 8)
    fig, axes = plt.subplots(2 * len(rows), n, figsize=(1.2 * n, 2.6 * len(rows)), squeeze=False)
    for r, (label, x, x_adv, y, pred) in enumerate(rows):
        for i in range(n):
            for j, img in enumerate((x[i], x_adv[i])):
                ax = axes[2 * r + j, i]
                img = np.clip(img, 0, 1)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_title(f"y={y[i]}", fontsize=7)
                else:
                    ax.set_title(f"{label[:10]}: {pred[i]}", fontsize=7,
                                 color="red" if pred[i] != y[i] else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(workdir: str, results: dict, title: str, extra: dict | None = None, *,
          pictures: dict | None = None) -> tuple[dict, str]:
    """Writes results.json, report.md and the pictures; returns (their paths, the report's Markdown).

    ``results`` is not modified; its keys starting with ``_`` (``_pictures``) are not saved. ``pictures``:
    ``{label: (x, x_adv, y, pred)}`` as the suite returns them under ``"_pictures"``.
    """
    os.makedirs(workdir, exist_ok=True)
    paths = {"results": os.path.join(workdir, "results.json"), "report": os.path.join(workdir, "report.md")}
    with open(paths["results"], "w") as f:
        json.dump({k: v for k, v in results.items() if not k.startswith("_")}, f, indent=2, sort_keys=True)
    if _plot_curves(results, os.path.join(workdir, "curves.png")):
        paths["curves"] = os.path.join(workdir, "curves.png")
    if _plot_examples(pictures or {}, os.path.join(workdir, "examples.png")):
        paths["examples"] = os.path.join(workdir, "examples.png")
    md = _markdown(results, title, extra)
    for key in ("curves", "examples"):
        if key in paths:
            md += f"\n![{key}]({os.path.basename(paths[key])})\n"
    with open(paths["report"], "w") as f:
        f.write(md)
    return paths, md
