"""Config -> data, defense, training, evaluation, report: the only place that wires every part.

    from robustjax import experiment
    results = experiment.run(config, workdir="runs/quickstart")
    print(results["clean_accuracy"], results["attacks"]["pgd"]["robust_accuracy"])

A workdir holds everything about a run: ``config.json`` (the resolved config), ``checkpoints/``,
``metrics.jsonl`` (training log), ``results.json``, ``report.md``, the figures (``figures.npz`` keeps their
arrays) and ``tensorboard/`` (training and evaluation summaries). Running again on
the same workdir resumes training from the newest checkpoint (and re-evaluates). A resume compares the
config with the workdir's ``config.json`` first and refuses a change that alters training, naming the
fields (``allow_config_change=True`` continues anyway); every change is appended to
``config_changes.jsonl`` and a training change is stated in the report (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import jax
import numpy as np

from robustjax import config as config_lib
from robustjax import data as data_lib
from robustjax import defenses, errors, evaluate, xla
from robustjax.train import loop, sharding, summaries

CONFIG_FILE = "config.json"
CONFIG_CHANGES_FILE = "config_changes.jsonl"
# Fields a resumed run may change without allow_config_change: they decide what is evaluated, logged,
# shown or kept, or where the same data is found; never the trained state. Any other change is refused.
RESUME_SAFE_FIELDS = (
    "smoke", "eval", "data.test_size", "data.data_dir", "data.download", "train.log_every",
    "train.checkpoint_every", "train.keep_checkpoints", "train.progress", "train.data_parallel",
)


def _validate(config) -> None:
    """``config.validate`` with its errors as ``errors.ConfigError`` (one line from main.py)."""
    try:
        config_lib.validate(config)
    except errors.UserError:
        raise
    except ValueError as e:  # validate raises ValueError only for a bad field, and names it
        raise errors.ConfigError(str(e)) from e


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _resume_safe(field: str) -> bool:
    return any(field == f or field.startswith(f + ".") for f in RESUME_SAFE_FIELDS)


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_changes(workdir: str) -> list[dict]:
    """The records of ``workdir/config_changes.jsonl``: one per resume that ran with a changed config."""
    path = os.path.join(workdir, CONFIG_CHANGES_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _same_file(old, new) -> bool:
    """Two spellings of one existing file or directory (an absolute path, and the relative one that names it
    from the directory a run is resumed in): recorded as a change, but not one that alters training.

    Only when the old value is absolute: a relative one was relative to the directory the run was started
    from, which is not recorded, and read from today's directory it may name another file of that name.
    """
    if not (isinstance(old, str) and isinstance(new, str) and old and new and os.path.isabs(old)):
        return False
    try:
        return os.path.samefile(old, new)
    except OSError:   # either is missing: nothing says they are the same
        return False


def _check_config(config, workdir: str, allow_change: bool = False) -> tuple[dict, dict | None]:
    """The config as JSON, and the change record to append once training starts (None: no change).

    When the workdir already holds checkpoints, compares the config with its ``config.json``: a change
    outside ``RESUME_SAFE_FIELDS`` raises ``errors.ConfigChangedError`` naming the fields, unless
    ``allow_change`` (or both values name the same existing file: a path spelled another way). Writes nothing (``_write_config`` does, once the checkpoint is restored).
    """
    path = os.path.join(workdir, CONFIG_FILE)
    new = json.loads(config.to_json_best_effort(sort_keys=True))
    if not loop.checkpoint_steps(workdir):
        return new, None
    old = None
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except ValueError:
            pass
    if not isinstance(old, dict):
        print(f"[robustjax] warning: {workdir} holds checkpoints but no readable {CONFIG_FILE} to compare "
              "this config with; only the model's shapes are checked on resume", file=sys.stderr, flush=True)
        return new, None
    a, b = _flatten(old), _flatten(new)
    changed = {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    training = [k for k in changed if not _resume_safe(k) and not _same_file(*changed[k])]
    if training and not allow_change:
        shown = ", ".join(f"config.{k} ({_short(a.get(k))} -> {_short(b.get(k))})" for k in training[:5])
        more = f" and {len(training) - 5} more" if len(training) > 5 else ""
        raise errors.ConfigChangedError(
            f"{workdir} holds a run trained with another config: {shown}{more} change training, so "
            "resuming would mix two runs; train this config in a fresh --workdir, or pass "
            "--allow_config_change (experiment.run(..., allow_config_change=True)) to continue this "
            f"run's checkpoint with the new values (recorded in {CONFIG_CHANGES_FILE} and the report)")
    if not changed:
        return new, None
    return new, {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changed": changed, "alters_training": training}


def _write_config(workdir: str, new: dict, change: dict | None) -> None:
    """Writes ``config.json`` and appends ``change`` (if any) to ``config_changes.jsonl``."""
    if change is not None:
        with open(os.path.join(workdir, CONFIG_CHANGES_FILE), "a") as f:
            f.write(json.dumps(change, sort_keys=True) + "\n")
        kind = "changing training, as allowed" if change["alters_training"] else "evaluation/logging only"
        print(f"[robustjax] note: resuming with a changed config ({kind}): "
              f"{', '.join('config.' + k for k in change['changed'])}; recorded in {CONFIG_CHANGES_FILE}",
              file=sys.stderr, flush=True)
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
        json.dump(new, f, indent=2, sort_keys=True)


def build(config):
    """Validates the config (every section, every attack spec: a mistake raises ``errors.ConfigError``
    naming the field) and loads data + defense. Returns (defense, train_ds, test_ds, info, spe)."""
    _validate(config)
    train_ds, test_ds, info = data_lib.load(config.data)
    data_lib.validate(train_ds, info, "train")
    data_lib.validate(test_ds, info, "test")
    spe = data_lib.steps_per_epoch(train_ds, config.data.batch_size)
    if spe < 1:
        raise errors.ConfigError(
            f"config.data.batch_size={config.data.batch_size} is larger than the training set "
            f"({len(train_ds)} examples): lower the batch size or raise data.train_size"
        )
    defense = defenses.make(config, info, spe)
    return defense, train_ds, test_ds, info, spe


def run(config, workdir: str, *, on_step=None, allow_config_change: bool = False) -> dict:
    """Trains ``config.defense`` on ``config.data``, evaluates it, writes the report; returns results.

    Args:
      config: the run's config (validated here; a bad field raises ``errors.ConfigError``).
      workdir: where everything goes; a workdir with checkpoints is resumed.
      on_step: called with the global step after each training step (tests).
      allow_config_change: resume even if the config changes training (see ``_check_config``).

    Returns:
      The results written to ``results.json`` (the suite's numbers plus ``info``, ``seed``, ``config`` and
      ``versions``), plus ``_pictures`` (the suite's example arrays), ``_figures`` (the arrays behind the
      figures), ``_paths`` (the files written) and ``_report`` (the report's Markdown). TensorBoard
      summaries of training and evaluation go to ``workdir/tensorboard/`` (robustjax.train.summaries).
    """
    t_start = time.time()
    defense, train_ds, test_ds, info, spe = build(config)
    if jax.process_count() > 1 and not config.train.data_parallel:
        raise errors.ConfigError(f"config.train.data_parallel=False, but this run has {jax.process_count()} "
                                 "processes (--distributed): several hosts train one model only in data "
                                 "parallel; set it to True or run one process")
    if config.smoke:
        print(f"[robustjax] SMOKE RUN: {len(train_ds)} training examples of {info.name} "
              f"({'synthetic stand-in data, not the real dataset' if info.source == 'synthetic' else info.source})"
              ", a few steps: it checks that everything runs; its numbers mean nothing", flush=True)
    os.makedirs(workdir, exist_ok=True)
    config_json, change = _check_config(config, workdir, allow_config_change)  # refuses before anything runs

    key = jax.random.PRNGKey(config.seed)
    init_key, train_key, eval_key = jax.random.split(key, 3)
    sample = train_ds.get(np.arange(config.data.batch_size))
    state = xla.jit(defense.init)(init_key, sample)  # one compile instead of hundreds of eager ops
    t = config.train
    shard, (process_index, process_count) = None, (0, 1)
    if jax.device_count() > 1 and t.data_parallel:
        mesh = sharding.make_mesh()
        sharding.check_batch_size(config.data.batch_size, mesh)
        state = sharding.replicate(state, mesh)
        shard = lambda batch: sharding.shard_batch(batch, mesh)  # noqa: E731
        process_index, process_count = sharding.input_shard(mesh)
    options = loop.LoopOptions(
        workdir=workdir, batch_size=config.data.batch_size, seed=config.seed, log_every=t.log_every,
        checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
        progress=None if t.progress else False, on_step=on_step, shard_batch=shard,
        process_index=process_index, process_count=process_count,
        on_start=lambda meta: _write_config(workdir, config_json, change),  # once the checkpoint is checked
    )
    state = loop.fit(defense, state, train_ds, key=train_key, options=options)
    t_train = time.time() - t_start
    warnings = loop.loss_warnings(loop.read_metrics(workdir))
    for w in warnings:
        print(f"[robustjax] warning: {w}", file=sys.stderr, flush=True)
    results = evaluate.evaluate(defense, state, test_ds, config.eval, eval_key, bounds=info.bounds,
                                keep_examples=config.eval.num_pictures, train_ds=train_ds)
    preset = results.get("eval_preset")   # the suite applied config.eval.preset; the figures follow it too
    eval_cfg, _ = config_lib.apply_eval_preset(config.eval)
    t_figures = time.time()
    figure_data = evaluate.figures.compute(defense, state, test_ds, eval_cfg, jax.random.fold_in(eval_key, 7),
                                           bounds=info.bounds, pictures=results["_pictures"], results=results)
    t_total = time.time() - t_start
    results["info"] = {
        "dataset": info.name, "num_train": len(train_ds), "num_test": len(test_ds),
        "num_classes": int(info.num_classes),
        "steps": sum(p.num_steps for p in defense.phases), "steps_per_epoch": spe,
        "train_seconds": round(t_train, 1), "figure_seconds": round(time.time() - t_figures, 1),
        "total_seconds": round(t_total, 1),
        "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
    }
    results["seed"], results["config"] = config.seed, config_json
    results["versions"] = evaluate.report.versions()
    changes = config_changes(workdir)
    altered = sorted({k for c in changes for k in c.get("alters_training", [])})
    if warnings:
        results["warnings"] = warnings
    if changes:
        results["config_changes"] = changes
    extra = {}
    if config.smoke:
        extra["SMOKE RUN"] = ("a few steps on a tiny subset" + (" of synthetic stand-in data" if info.source == "synthetic"
                              else "") + ", to check that everything runs: these numbers mean nothing")
    if preset:
        shown = ", ".join(f"{k} {a}->{b}" for k, (a, b) in list(preset["changed"].items())[:8])
        more = f" and {len(preset['changed']) - 8} more" if len(preset["changed"]) > 8 else ""
        extra[f"EVALUATION PRESET {preset['preset'].upper()}"] = (
            "loop counts capped: weaker attacks than the config's full evaluation, whose robust accuracies "
            f"may be lower ({shown or 'nothing to cap'}{more}; results.json eval_preset)")
    for i, w in enumerate(warnings):
        extra["WARNING" + (f" {i + 1}" if len(warnings) > 1 else "")] = w
    if altered:
        extra["CONFIG CHANGED DURING TRAINING"] = (
            f"{', '.join('config.' + k for k in altered)} changed on a resume (allow_config_change): these "
            f"numbers come from a model trained partly under the old values ({CONFIG_CHANGES_FILE})")
    extra.update({"defense": defense.name, "dataset": info.name, "model": config.model.name,
             "train examples": len(train_ds), "training steps": results["info"]["steps"],
             "wall time (s)": results["info"]["total_seconds"]})
    title = f"{defense.name} on {info.name}" + (" (smoke run)" if config.smoke else "")
    if jax.process_index() == 0:  # every process has the same results; one writes the report
        paths, markdown = evaluate.report.write(workdir, results, title=title, extra=extra,
                                                pictures=results.get("_pictures"), figure_data=figure_data,
                                                figures=list(config.eval.figures))
    else:
        paths, markdown = {}, evaluate.report.markdown({k: v for k, v in results.items() if not k.startswith("_")},
                                                       title, extra)
    summaries.write_evaluation(workdir, results, results["info"]["steps"], markdown=markdown,
                               images={k: v for k, v in paths.items() if k in evaluate.figures.FIGURES})
    results["_figures"] = figure_data
    results["_paths"] = paths
    results["_report"] = markdown
    return results
