"""Writes an evaluation into a work directory: results.json, report.md, the figures and their arrays.

    paths, markdown = report.write(workdir, results, title="pgd_at on mnist", extra={"defense": "pgd_at"},
                                   pictures=results["_pictures"], figure_data=data, figures=["curves"])
    print(markdown)

``report.md`` is for a person, in this order: the notes (``extra``: smoke run, warnings, what ran), the
headline table (clean accuracy; per attack its norm, eps, robust accuracy, accuracy on adversarial
examples and wall time; the worst case over the attacks of each budget), the minimal-perturbation
attacks, the robustness curves, the figures (``robustjax.evaluate.figures``), then the extra sections
(:data:`SECTIONS`: diagnostics and whatever other modules contribute) and the run's details (seed,
versions). ``results.json`` is the machine-readable record (every key of ``results`` not starting with
``_``); ``figures.npz`` keeps the arrays behind the figures for the cross-run report
(``python -m robustjax.report``).

Adding a section: write ``markdown(results) -> str`` in your module (return "" when there is nothing to
say; start with a ``## `` heading) and add it to :data:`SECTIONS` below, in the order the report should
show it; or pass ``sections=[...]`` to :func:`write` for one report.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

from robustjax.evaluate import figures as figures_lib

ROBUST_NOTE = ("Robust accuracy: correct on the clean input and on the attacked one. Accuracy on adversarial: "
               "correct on the attacked input (what ATGAN, GanDef and PGN report; it also counts inputs the "
               "model got wrong clean if the attack happens to fix them). Worst case: the fraction that "
               "survives every attack of that budget (per example).")


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.{digits}f}"
    return str(v)


def _eps(v: Any) -> str:
    return "-" if v is None else f"{float(v):g}"


def _seconds(r: Mapping) -> str:
    return f"{r['seconds']:.1f}" if isinstance(r.get("seconds"), (int, float)) else "-"


def headline(results: Mapping) -> str:
    """The headline: clean accuracy, then the budget attacks sorted by (norm, eps) with the worst case of
    each budget after its attacks, then the minimal-perturbation attacks."""
    attacks = results.get("attacks") or {}
    detector = "detector" in results
    lines = [f"**Clean accuracy: {results['clean_accuracy']:.4f}** on {results['num_examples']} test examples.", ""]
    budget = {k: r for k, r in attacks.items() if r.get("eps") is not None}
    minimal = {k: r for k, r in attacks.items() if r.get("eps") is None}
    if budget:
        head = ["attack", "norm", "eps", "robust accuracy", "accuracy on adversarial"]
        if detector:
            head += ["flagged", "accuracy with detector"]
        head.append("time (s)")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        clean = ["clean", "-", "0", _fmt(results["clean_accuracy"]), _fmt(results["clean_accuracy"])]
        if detector:
            d = results["detector"]
            clean += [_fmt(d.get("flagged_clean")), _fmt(d.get("clean_accuracy_with_detector"))]
        lines.append("| " + " | ".join(clean + ["-"]) + " |")
        worst = results.get("worst_case") or {}
        groups: dict[tuple[str, float], list[str]] = {}
        for label, r in budget.items():
            groups.setdefault((r.get("norm", "-"), float(r["eps"])), []).append(label)
        for (norm, eps), labels in sorted(groups.items()):
            for label in sorted(labels, key=lambda k: (-budget[k]["robust_accuracy"], k)):
                r = budget[label]
                name = f"{label} ({r['attack']}{', naive' if r.get('adaptive') is False else ''})"
                row = [name, norm, _eps(eps), _fmt(r["robust_accuracy"]), _fmt(r.get("accuracy_on_adversarial"))]
                if detector:
                    row += [_fmt(r.get("flagged_adversarial")), _fmt(r.get("accuracy_with_detector"))]
                lines.append("| " + " | ".join(row + [_seconds(r)]) + " |")
            key = f"{norm}@{eps:g}"
            if key in worst:
                row = [f"**worst case** of {len(labels)} attacks", norm, _eps(eps), f"**{worst[key]:.4f}**", "-"]
                if detector:
                    row += ["-", "-"]
                lines.append("| " + " | ".join(row + ["-"]) + " |")
        lines += ["", ROBUST_NOTE, ""]
    if minimal:
        lines += ["Minimal-perturbation attacks (no eps budget: how large a perturbation fools the model):", "",
                  "| attack | norm | success rate | median L2 | median Linf | accuracy on adversarial | time (s) |",
                  "|---|---|---|---|---|---|---|"]
        for label, r in sorted(minimal.items()):
            lines.append(f"| {label} ({r['attack']}) | {r.get('norm', '-')} | {_fmt(r.get('success_rate'))} | "
                         f"{_fmt(r.get('median_l2'))} | {_fmt(r.get('median_linf'))} | "
                         f"{_fmt(r.get('accuracy_on_adversarial'))} | {_seconds(r)} |")
        lines += ["", "Success rate: of the inputs classified correctly clean, the fraction the attack fooled; "
                  "medians over the successful perturbations.", ""]
    if attacks:
        bad = {k: r["budget_violations"] for k, r in attacks.items() if r.get("budget_violations")}
        if bad:
            lines += ["**Budget violations** (adversarial examples outside their eps ball or the pixel box; "
                      "these numbers are not valid): " + ", ".join(f"{k}: {v}" for k, v in sorted(bad.items())), ""]
        else:
            lines += ["Every adversarial example lies inside its eps ball and the pixel box (checked).", ""]
    return "\n".join(lines)


def curves_section(results: Mapping) -> str:
    curves = results.get("curves") or {}
    if not curves:
        return ""
    lines = ["## Robustness curves", ""]
    for label, curve in curves.items():
        has_adv = all("accuracy_on_adversarial" in p for p in curve["points"])
        lines += [f"**{label}** ({curve['attack']}, {curve['norm']}" +
                  (f", {curve['seconds']:.1f} s" if isinstance(curve.get("seconds"), (int, float)) else "") + ")", "",
                  "| eps | robust accuracy |" + (" accuracy on adversarial |" if has_adv else ""),
                  "|---|---|" + ("---|" if has_adv else "")]
        for p in curve["points"]:
            row = f"| {p['eps']:g} | {p['robust_accuracy']:.4f} |"
            if has_adv:
                row += f" {p['accuracy_on_adversarial']:.4f} |"
            lines.append(row)
        lines.append("")
    return "\n".join(lines)


def metrics_section(results: Mapping) -> str:
    """Minimal-perturbation statistics, the configured metrics and the detector curves
    (robustjax.evaluate.metrics writes them)."""
    from robustjax.evaluate import metrics

    lines = metrics.markdown(dict(results))
    return "\n".join(lines) + "\n" if lines else ""


def diagnostics_section(results: Mapping) -> str:
    """The gradient-masking warnings with their evidence (robustjax.evaluate.diagnostics writes them)."""
    from robustjax.evaluate import diagnostics

    lines = diagnostics.markdown(dict(results))
    return "\n".join(lines) + "\n" if lines else ""


def detector_section(results: Mapping) -> str:
    """A detector's numbers under its scoring rule (a flagged adversarial input counts as handled, a
    flagged clean input as an error, an unflagged input is judged by the classifier)."""
    det = results.get("detector")
    if not det:
        return ""
    lines = ["## Detector", "",
             f"Threshold {det['threshold']:g}. Scoring rule: a flagged adversarial input counts as handled, a "
             "flagged clean input as an error, an unflagged input is judged by the classifier.", "",
             f"- clean inputs flagged: {det['flagged_clean']:.4f}; clean accuracy with the detector: "
             f"{det['clean_accuracy_with_detector']:.4f}", "",
             "| attack | adversarial inputs flagged | accuracy with the detector | accuracy on adversarial |",
             "|---|---|---|---|"]
    for label, r in results.get("attacks", {}).items():
        if "flagged_adversarial" in r:
            lines.append(f"| {label} | {r['flagged_adversarial']:.4f} | {r['accuracy_with_detector']:.4f} | "
                         f"{r['accuracy_on_adversarial']:.4f} |")
    return "\n".join(lines) + "\n"


def details_section(results: Mapping) -> str:
    """What produced these numbers: seed, versions, machine, times."""
    lines = []
    if "seed" in results:
        lines.append(f"- seed: {results['seed']}")
    if results.get("versions"):
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    info = results.get("info") or {}
    for key, name in (("machine", "machine"), ("devices", "devices"), ("train_seconds", "training (s)"),
                      ("total_seconds", "total wall time (s)")):
        if key in info:
            value = ", ".join(info[key]) if isinstance(info[key], list) else info[key]
            lines.append(f"- {name}: {value}")
    if results.get("config_changes"):
        lines.append(f"- config changes on resume: {len(results['config_changes'])} (config_changes.jsonl)")
    if not lines:
        return ""
    return "\n".join(["## Run details", "", *lines]) + "\n"


# The sections after the figures, in order: each gets the results and returns Markdown ("" = nothing to
# say). Other modules contribute theirs here (e.g. robustjax.evaluate.diagnostics.markdown).
SECTIONS: list[Callable[[Mapping], str]] = [detector_section, metrics_section, diagnostics_section,
                                             details_section]


def versions() -> dict[str, str]:
    """The installed versions of the stack that produced a result (jax, jaxlib, flax, optax, robustjax, ...)."""
    out = {}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "robustjax"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    import platform

    out["python"] = platform.python_version()
    return out


def markdown(results: Mapping, title: str, extra: Mapping | None = None, figure_paths: Mapping[str, str] | None = None,
             sections: Sequence[Callable[[Mapping], str]] | None = None) -> str:
    """The report as Markdown (``figure_paths``: ``{figure name: path}``, linked by file name)."""
    lines = [f"# {title}", ""]
    for k, v in (extra or {}).items():
        lines.append(f"- {k}: {v}")
    if extra:
        lines.append("")
    lines += ["## Headline", "", headline(results)]
    figure_paths = dict(figure_paths or {})
    curves = curves_section(results)
    if curves:
        lines.append(curves)
        if "curves" in figure_paths:
            lines += [f"![curves]({os.path.basename(figure_paths.pop('curves'))})", ""]
    shown = [name for name in figures_lib.FIGURES if name in figure_paths]
    if shown:
        lines += ["## Figures", ""]
        for name in shown:
            lines += [f"{figures_lib.CAPTIONS[name]}", "", f"![{name}]({os.path.basename(figure_paths[name])})", ""]
    for section in (SECTIONS if sections is None else sections):
        text = section(results)
        if text:
            lines += [text.rstrip("\n"), ""]
    return "\n".join(lines)


def write(workdir: str, results: dict, title: str, extra: dict | None = None, *,
          pictures: dict | None = None, figure_data: Mapping | None = None, figures: Sequence[str] | None = None,
          sections: Sequence[Callable[[Mapping], str]] | None = None) -> tuple[dict, str]:
    """Writes results.json, report.md, the figures and figures.npz; returns (their paths, the Markdown).

    Args:
      workdir: where to write (created if missing).
      results: the evaluation (``suite.evaluate``'s dict plus what ``experiment.run`` adds); not modified;
        keys starting with ``_`` are not saved.
      title: the report's heading.
      extra: ``{name: text}`` notes shown first (smoke run, warnings, defense, dataset, ...).
      pictures: ``{label: (x, x_adv, y, pred)}`` as the suite returns them under ``"_pictures"``.
      figure_data: the arrays of ``figures.compute`` (saliency, decision plane, generator outputs).
      figures: the figures to draw (``figures.FIGURES`` names; None = all that have something to show).
      sections: the sections after the figures (None = :data:`SECTIONS`).

    Returns:
      ``({"results": path, "report": path, "figures_data": path, <figure name>: path, ...}, markdown)``.
    """
    os.makedirs(workdir, exist_ok=True)
    paths = {"results": os.path.join(workdir, "results.json"), "report": os.path.join(workdir, "report.md")}
    with open(paths["results"], "w") as f:
        json.dump({k: v for k, v in results.items() if not k.startswith("_")}, f, indent=2, sort_keys=True)
    figure_paths = figures_lib.draw(workdir, results, figure_data, pictures=pictures, names=figures)
    paths.update(figure_paths)
    if figure_data:
        paths["figures_data"] = os.path.join(workdir, figures_lib.DATA_FILE)
        figures_lib.save(paths["figures_data"], figure_data)
    md = markdown(results, title, extra, figure_paths, sections)
    with open(paths["report"], "w") as f:
        f.write(md)
    return paths, md
