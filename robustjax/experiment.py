"""Config -> data, defense, training, evaluation, report: the only place that wires every part.

    from robustjax import experiment
    results = experiment.run(config, workdir="runs/quickstart")
    print(results["clean_accuracy"], results["attacks"]["pgd"]["robust_accuracy"])

A workdir holds everything about a run: ``config.json`` (the resolved config), ``checkpoints/``,
``metrics.jsonl`` (training log), ``results.json``, ``report.md`` and the pictures. Running again on
the same workdir resumes training from the newest checkpoint (and re-evaluates).
"""

from __future__ import annotations

import json
import os
import platform
import time

import jax
import numpy as np

from robustjax import config as config_lib
from robustjax import data as data_lib
from robustjax import defenses, evaluate, xla
from robustjax.train import loop, sharding


def _save_config(config, workdir: str) -> None:
    path = os.path.join(workdir, "config.json")
    new = json.loads(config.to_json_best_effort(sort_keys=True))
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            print(f"[robustjax] note: config sections {changed} differ from the run already in {workdir}; "
                  "a resumed run continues from its checkpoint", flush=True)
    with open(path, "w") as f:
        json.dump(new, f, indent=2, sort_keys=True)


def build(config):
    """Validates the config and loads data + defense. Returns (defense, train_ds, test_ds, info, spe)."""
    config_lib.validate(config)
    train_ds, test_ds, info = data_lib.load(config.data)
    data_lib.validate(train_ds, info, "train")
    data_lib.validate(test_ds, info, "test")
    spe = data_lib.steps_per_epoch(train_ds, config.data.batch_size)
    if spe < 1:
        raise ValueError(
            f"config.data.batch_size={config.data.batch_size} is larger than the training set "
            f"({len(train_ds)} examples): lower the batch size or raise data.train_size"
        )
    defense = defenses.make(config, info, spe)
    return defense, train_ds, test_ds, info, spe


def run(config, workdir: str, *, on_step=None) -> dict:
    """Trains ``config.defense`` on ``config.data``, evaluates it, writes the report; returns results."""
    t_start = time.time()
    defense, train_ds, test_ds, info, spe = build(config)
    if config.smoke:
        print(f"[robustjax] SMOKE RUN: {len(train_ds)} training examples of {info.name} "
              f"({'synthetic stand-in data, not the real dataset' if info.source == 'synthetic' else info.source})"
              ", a few steps: it checks that everything runs; its numbers mean nothing", flush=True)
    os.makedirs(workdir, exist_ok=True)
    _save_config(config, workdir)

    key = jax.random.PRNGKey(config.seed)
    init_key, train_key, eval_key = jax.random.split(key, 3)
    sample = train_ds.get(np.arange(config.data.batch_size))
    state = xla.jit(defense.init)(init_key, sample)  # one compile instead of hundreds of eager ops
    t = config.train
    shard = None
    if jax.device_count() > 1 and t.data_parallel:
        mesh = sharding.make_mesh()
        sharding.check_batch_size(config.data.batch_size, mesh)
        state = sharding.replicate(state, mesh)
        shard = lambda batch: sharding.shard_batch(batch, mesh)  # noqa: E731
    options = loop.LoopOptions(
        workdir=workdir, batch_size=config.data.batch_size, seed=config.seed, log_every=t.log_every,
        checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
        progress=None if t.progress else False, on_step=on_step, shard_batch=shard,
    )
    state = loop.fit(defense, state, train_ds, key=train_key, options=options)
    t_train = time.time() - t_start
    results = evaluate.evaluate(defense.classifier, state, test_ds, config.eval, eval_key, bounds=info.bounds)
    t_total = time.time() - t_start
    results["info"] = {
        "dataset": info.name, "num_train": len(train_ds), "num_test": len(test_ds),
        "steps": sum(p.num_steps for p in defense.phases), "steps_per_epoch": spe,
        "train_seconds": round(t_train, 1), "total_seconds": round(t_total, 1),
        "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
    }
    extra = {}
    if config.smoke:
        extra["SMOKE RUN"] = ("a few steps on a tiny subset" + (" of synthetic stand-in data" if info.source == "synthetic"
                              else "") + ", to check that everything runs: these numbers mean nothing")
    extra.update({"defense": defense.name, "dataset": info.name, "model": config.model.name,
             "train examples": len(train_ds), "training steps": results["info"]["steps"],
             "wall time (s)": results["info"]["total_seconds"]})
    pictures = results.get("_pictures")
    paths = evaluate.report.write(workdir, results, title=f"{defense.name} on {info.name}" + (" (smoke run)" if config.smoke else ""), extra=extra)
    results["_paths"] = paths
    if pictures is not None:
        results["_pictures"] = pictures
    return results
