"""The run report (report.md's order and tables, results.json's record), the TensorBoard summaries read
back with TensorBoard's own reader, and the cross-run report (`python -m robustjax.report`) on two tiny
runs and on hand-written results."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator  # the test extra's event reader

from robustjax import experiment
from robustjax.evaluate import compare, figures, report
from robustjax.train import loop, summaries
from tests.test_config import ROOT, load_config



@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two quickstart smoke runs that differ in the train-time eps (0.1 and 0.2)."""
    out = []
    for eps in (0.1, 0.2):
        c = load_config("quickstart.py", "smoke")
        c.defense.attack.eps = eps
        workdir = str(tmp_path_factory.mktemp(f"run_eps{eps}"))
        out.append((workdir, experiment.run(c, workdir)))
    return out


def _scalars(logdir):
    acc = event_accumulator.EventAccumulator(logdir)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, acc


# ------------------------------------------------------------------------------------------------------
# One run: report.md, results.json, figures


def test_report_puts_the_headline_first_then_curves_figures_and_sections(two_runs):
    workdir, results = two_runs[0]
    md = open(os.path.join(workdir, "report.md")).read()
    order = [md.index(s) for s in ("## Headline", "**Clean accuracy:", "| clean |", "## Robustness curves",
                                   "![curves](curves.png)", "## Figures", "## Run details")]
    assert order == sorted(order)
    # The headline rows carry both accuracies, eps, norm and the attack's time; the worst case follows.
    r = results["attacks"]["pgd20"]
    row = next(line for line in md.splitlines() if line.startswith("| pgd20 (pgd)"))
    assert row.split(" | ")[1:5] == ["linf", "0.1", f"{r['robust_accuracy']:.4f}", f"{r['accuracy_on_adversarial']:.4f}"]
    assert f"| **worst case** of 2 attacks | linf | 0.1 | **{results['worst_case']['linf@0.1']:.4f}** |" in md
    for name in ("examples", "training", "saliency", "decision_plane"):
        assert f"![{name}]({name}.png)" in md and os.path.getsize(os.path.join(workdir, f"{name}.png")) > 5000


def test_results_json_keeps_config_seed_versions_and_attack_times(two_runs):
    workdir, results = two_runs[0]
    saved = json.load(open(os.path.join(workdir, "results.json")))
    assert saved["seed"] == 0
    assert saved["config"] == json.load(open(os.path.join(workdir, "config.json")))
    assert saved["config"]["defense"]["attack"]["eps"] == 0.1
    for package in ("jax", "jaxlib", "flax", "optax", "robustjax"):
        assert saved["versions"][package] not in ("", "not installed"), package
    for label, r in saved["attacks"].items():
        assert r["seconds"] > 0, label
    assert saved["curves"]["pgd"]["seconds"] > 0
    assert all("accuracy_on_adversarial" in p for p in saved["curves"]["pgd"]["points"])
    assert saved["info"]["num_classes"] == 10
    data = figures.load(os.path.join(workdir, "figures.npz"))
    assert {"saliency", "decision_plane", "examples"} <= set(data)
    plane = data["decision_plane"]
    c = plane["classes"].shape[-1] // 2
    np.testing.assert_array_equal(plane["classes"][:, c, c], plane["pred"])


def test_figures_can_be_switched_off(tmp_path):
    c = load_config("quickstart.py", "smoke")
    c.eval.figures = ["curves"]
    c.train.steps = 2
    results = experiment.run(c, str(tmp_path))
    assert os.path.exists(tmp_path / "curves.png")
    for name in ("examples", "training", "saliency", "decision_plane", "samples"):
        assert not os.path.exists(tmp_path / f"{name}.png"), name
    assert "## Figures" not in results["_report"] and results["_figures"] == {}


def _results(**attacks):
    return {"num_examples": 10, "clean_accuracy": 0.9, "attacks": attacks, "curves": {}, "worst_case": {}}


def test_sections_hook_and_minimal_attacks_and_violations(tmp_path):
    res = _results(fgsm={"attack": "fgsm", "robust_accuracy": 0.5, "accuracy_on_adversarial": 0.55, "eps": 0.1,
                         "norm": "linf", "budget_violations": 2, "seconds": 1.25},
                   cw={"attack": "cw_l2", "robust_accuracy": 0.1, "accuracy_on_adversarial": 0.1, "success_rate": 0.9,
                       "median_l2": 1.5, "median_linf": 0.4, "budget_violations": 0, "norm": "l2"},
                   fgsm_naive={"attack": "fgsm", "robust_accuracy": 0.8, "accuracy_on_adversarial": 0.8, "eps": 0.1,
                               "norm": "linf", "budget_violations": 0, "adaptive": False})
    res["diagnostics"] = {"warnings": ["PGD-200 found 0.1 less than PGD-20"], "checks": {}, "num_examples": 4,
                          "norm": "linf", "eps": 0.1, "eps_from": "test", "thresholds": {}}
    extra = lambda r: "## From another module\n\nclean was " + str(r["clean_accuracy"])  # noqa: E731
    paths, md = report.write(str(tmp_path), res, "t", sections=[*report.SECTIONS, extra], figures=[])
    assert md.index("## Gradient-masking diagnostics") < md.index("## From another module")
    assert "clean was 0.9" in md
    assert "| fgsm (fgsm) | linf | 0.1 | 0.5000 | 0.5500 | 1.2 |" in md or "| 1.3 |" in md
    assert "| fgsm_naive (fgsm, naive) |" in md
    assert "| cw (cw_l2) | l2 | 0.9000 | 1.5000 | 0.4000 | 0.1000 | - |" in md
    assert "**Budget violations**" in md and "fgsm: 2" in md
    assert set(paths) == {"results", "report"}
    # The default SECTIONS are used when none are given.
    _, md2 = report.write(str(tmp_path / "b"), res, "t", figures=[])
    assert "## Gradient-masking diagnostics" in md2 and "From another module" not in md2


# ------------------------------------------------------------------------------------------------------
# TensorBoard


def test_tensorboard_holds_the_training_metrics_and_the_evaluation(two_runs):
    workdir, results = two_runs[0]
    train, _ = _scalars(os.path.join(workdir, "tensorboard", "train"))
    records = loop.read_metrics(workdir)
    assert records
    for name in ("loss", "accuracy", "eps"):
        got = train[f"train/train/{name}"]
        assert [s for s, _ in got] == [r["global_step"] for r in records]
        np.testing.assert_allclose([v for _, v in got], [r[name] for r in records], rtol=1e-6)
    ev, acc = _scalars(os.path.join(workdir, "tensorboard", "eval"))
    steps = results["info"]["steps"]
    assert ev["eval/clean_accuracy"] == [(steps, pytest.approx(results["clean_accuracy"]))]
    for label, r in results["attacks"].items():
        assert ev[f"eval/{label}/robust_accuracy"] == [(steps, pytest.approx(r["robust_accuracy"]))]
        assert ev[f"eval/{label}/accuracy_on_adversarial"] == [(steps, pytest.approx(r["accuracy_on_adversarial"]))]
    assert ev["eval/worst_case/linf_eps0.1"][0][1] == pytest.approx(results["worst_case"]["linf@0.1"])
    assert "figures/curves" in acc.Tags()["images"] and "figures/decision_plane" in acc.Tags()["images"]


def test_a_resume_purges_the_replayed_steps_from_tensorboard(tmp_path):
    w = loop._MetricWriter(str(tmp_path), 0)
    for step in (1, 2, 3, 4):
        w.write({"phase": "train", "phase_index": 0, "step": step, "global_step": step, "loss": float(step)})
    w.close()
    w = loop._MetricWriter(str(tmp_path), 2)  # resumed from the checkpoint at step 2: steps 3, 4 again
    for step in (3, 4):
        w.write({"phase": "train", "phase_index": 0, "step": step, "global_step": step, "loss": 10.0 * step})
    w.close()
    got, _ = _scalars(str(tmp_path / "tensorboard" / "train"))
    assert got["train/train/loss"] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert [r["loss"] for r in loop.read_metrics(str(tmp_path))] == [1.0, 2.0, 30.0, 40.0]


def test_a_re_evaluation_replaces_the_previous_one(tmp_path):
    res = _results(fgsm={"attack": "fgsm", "robust_accuracy": 0.5, "accuracy_on_adversarial": 0.5, "eps": 0.1})
    summaries.write_evaluation(str(tmp_path), res, 7)
    res["attacks"]["fgsm"]["robust_accuracy"] = 0.25
    summaries.write_evaluation(str(tmp_path), res, 7, markdown="# hello")
    got, acc = _scalars(str(tmp_path / "tensorboard" / "eval"))
    assert got["eval/fgsm/robust_accuracy"] == [(7, 0.25)]
    assert acc.Tags()["tensors"] == ["report/text_summary"]  # the Markdown as a text summary


def test_without_tensorboardx_a_run_notes_it_once_and_writes_nothing(monkeypatch, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tbx(name, *args, **kw):
        if name.startswith("tensorboardX"):
            raise ImportError("no tensorboardX")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tbx)
    monkeypatch.setattr(summaries, "_warned", False)
    assert summaries.open_writer(str(tmp_path / "a")) is None
    assert summaries.open_writer(str(tmp_path / "b")) is None
    assert summaries.write_evaluation(str(tmp_path), _results(), 3) is None
    assert capsys.readouterr().err.count("tensorboardX is not installed") == 1
    assert not os.path.exists(tmp_path / "a")


# ------------------------------------------------------------------------------------------------------
# The cross-run report


def _fake_run(path, defense, eps_t, attacks, curve=None, frac=1.0, clean=0.9, smoke=False):
    os.makedirs(path, exist_ok=True)
    config = {"seed": 0, "smoke": smoke, "data": {"name": "mnist"},
              "defense": {"name": defense, **({"attack": {"attack": "pgd", "eps": eps_t}} if eps_t else {}),
                          "adv_fraction": frac}}
    res = {"num_examples": 100, "clean_accuracy": clean, "config": config, "attacks": attacks,
           "curves": {"pgd": {"attack": "pgd", "norm": "linf", "points": curve}} if curve else {},
           "info": {"dataset": "mnist"}}
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump(res, f)
    return path


def _atk(name, eps, robust, adv=None):
    return {"attack": name, "eps": eps, "norm": "linf", "robust_accuracy": robust,
            "accuracy_on_adversarial": robust if adv is None else adv, "budget_violations": 0}


def _pts(*pairs):
    return [{"eps": e, "robust_accuracy": a, "accuracy_on_adversarial": a + 0.01} for e, a in pairs]


def test_cross_run_tables_align_attacks_blank_the_missing_and_say_so(tmp_path):
    a = _fake_run(tmp_path / "a", "pgd_at", 0.1, {"fgsm": _atk("fgsm", 0.1, 0.7), "pgd": _atk("pgd", 0.1, 0.6)},
                  _pts((0.0, 0.9), (0.1, 0.6), (0.2, 0.3)))
    b = _fake_run(tmp_path / "b", "pgd_at", 0.3, {"pgd": _atk("pgd", 0.1, 0.8, 0.81),
                                                  "pgd_big": _atk("pgd", 0.3, 0.5)},
                  _pts((0.0, 0.95), (0.1, 0.8), (0.3, 0.5)), clean=0.95)
    c = _fake_run(tmp_path / "c", "atgan", 0.1, {"fgsm": _atk("fgsm", 0.1, 0.75), "pgd": _atk("pgd", 0.2, 0.7)},
                  _pts((0.0, 0.85), (0.1, 0.7), (0.2, 0.6)), frac=0.5)
    runs = [compare.load_run(str(p)) for p in (a, b, c)]
    paths, md = compare.write(runs, str(tmp_path / "out"), eps=[0.1, 0.2])
    assert [r.name for r in runs] == ["pgd_at eps_t=0.1", "pgd_at eps_t=0.3", "atgan eps_t=0.1 frac=0.5"]
    rows = list(csv.reader(open(paths["csv"])))
    assert rows[0][:5] == ["run", "clean", "fgsm (fgsm linf 0.1)", "pgd (pgd linf 0.1)", "pgd_big (pgd linf 0.3)"]
    assert rows[1][:5] == ["pgd_at eps_t=0.1", "0.9", "0.7", "0.6", ""]
    assert rows[2][:5] == ["pgd_at eps_t=0.3", "0.95", "", "0.8", "0.5"]
    assert rows[3][:5] == ["atgan eps_t=0.1 frac=0.5", "0.9", "0.75", "0.7", ""]
    assert "| pgd_at eps_t=0.3 | 0.9500 |  | 0.8000 | 0.5000 |" in md
    assert "`fgsm` is not in every run: blank for pgd_at eps_t=0.3." in md
    assert "`pgd_big` is not in every run" in md
    assert "`pgd` means different attacks in different runs" in md  # eps 0.1 in two runs, 0.2 in one
    point = list(csv.reader(open(paths["pointwise"])))
    assert point == [["test eps", "pgd_at eps_t=0.1", "pgd_at eps_t=0.3", "atgan eps_t=0.1 frac=0.5"],
                     ["0.1", "0.6", "0.8", "0.7"], ["0.2", "0.3", "", "0.6"]]
    assert "eps 0.2 is not on the curve's grid of pgd_at eps_t=0.3: blank (not interpolated)." in md
    assert os.path.getsize(paths["curves"]) > 10000
    # The other metric, as ATGAN reports it.
    paths, md = compare.write(runs, str(tmp_path / "adv"), eps=[0.1], metric="accuracy_on_adversarial")
    rows = list(csv.reader(open(paths["csv"])))
    assert rows[2][3] == "0.81"
    assert list(csv.reader(open(paths["pointwise"])))[1] == ["0.1", "0.61", "0.81", "0.71"]


def test_a_quick_preset_run_is_marked_and_a_mix_of_presets_is_noted(tmp_path):
    a = _fake_run(tmp_path / "a", "pgd_at", 0.1, {"pgd": _atk("pgd", 0.1, 0.6)})
    b = _fake_run(tmp_path / "b", "pgd_at", 0.3, {"pgd": _atk("pgd", 0.1, 0.8)})
    res = json.load(open(b / "results.json"))
    res["eval_preset"] = {"preset": "quick", "changed": {"attacks.pgd.num_steps": [1000, 200]}}
    json.dump(res, open(b / "results.json", "w"))
    runs = [compare.load_run(str(p)) for p in (a, b)]
    assert [r.eval_preset for r in runs] == ["full", "quick"]
    _, md = compare.write(runs, str(tmp_path / "out"))
    assert "| pgd_at eps_t=0.3 (EVALUATION PRESET QUICK: capped attacks, weaker) |" in md
    assert "Note: the runs were evaluated with different presets: pgd_at eps_t=0.3 with capped" in md
    _, md = compare.write(runs[:1], str(tmp_path / "one"))
    assert "PRESET" not in md and "different presets" not in md


def test_runs_with_the_same_name_are_told_apart(tmp_path):
    a = _fake_run(tmp_path / "a", "standard", None, {}, smoke=True)
    b = _fake_run(tmp_path / "b", "standard", None, {})
    c = _fake_run(tmp_path / "c", "standard", None, {})
    runs = [compare.load_run(str(p)) for p in (a, b, c)]
    compare.name_runs(runs)
    assert runs[0].name == "standard smoke=True" and runs[1].name == "standard smoke=False"
    assert runs[2].name == "standard smoke=False #2"
    # Default eps: the grid points every curve shares.
    d = _fake_run(tmp_path / "d", "pgd_at", 0.1, {}, _pts((0.0, 1.0), (0.1, 0.5), (0.2, 0.1)))
    e = _fake_run(tmp_path / "e", "pgd_at", 0.2, {}, _pts((0.0, 1.0), (0.2, 0.4)))
    table = compare.pointwise_table([compare.load_run(str(d)), compare.load_run(str(e))], "pgd", None)
    assert [row[0] for row in table.rows] == ["0", "0.2"]


def test_cli_compares_two_real_runs_with_their_own_numbers(two_runs, tmp_path):
    dirs = [w for w, _ in two_runs]
    proc = subprocess.run([sys.executable, "-m", "robustjax.report", *dirs, "--out", str(tmp_path / "cmp"),
                           "--eps", "0,0.05"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "# Comparison of 2 runs" in proc.stdout and "SMOKE RUN" in proc.stdout
    rows = list(csv.reader(open(tmp_path / "cmp" / "comparison.csv")))
    assert [r[0] for r in rows[1:]] == ["pgd_at eps_t=0.1", "pgd_at eps_t=0.2"]
    labels = sorted(two_runs[0][1]["attacks"])  # fgsm, pgd20 (both at linf 0.1)
    for row, (_, results) in zip(rows[1:], two_runs):
        assert float(row[1]) == results["clean_accuracy"]
        for i, label in enumerate(labels):
            assert float(row[2 + i]) == results["attacks"][label]["robust_accuracy"]
    point = list(csv.reader(open(tmp_path / "cmp" / "pointwise.csv")))
    for j, (_, results) in enumerate(two_runs):
        pts = {p["eps"]: p["robust_accuracy"] for p in results["curves"]["pgd"]["points"]}
        assert float(point[1][1 + j]) == pts[0.0] and float(point[2][1 + j]) == pts[0.05]
    assert (tmp_path / "cmp" / "comparison.md").read_text() in proc.stdout
    for name in ("curves.png", "saliency.png"):
        assert os.path.getsize(tmp_path / "cmp" / name) > 10000, name


def test_cli_refuses_a_directory_that_is_not_a_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "robustjax.report", str(tmp_path), "--out", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no results.json" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "robustjax.report", str(tmp_path), "--eps", "-1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert bad.returncode == 2 and "eps must be >= 0" in bad.stderr
