"""What the results scripts (atgan_sweep.py, baselines_mnist.py) share: a paper config with budget
overrides, the ``main.py`` command that reproduces it, and running the runs that have not finished.

    config = runs.load_config("atgan_mnist", "eps_t=0.2")
    o = runs.apply(config, {"data.train_size": 4096, "train.epochs": 6.0})
    print(runs.main_command("atgan_mnist", "eps_t=0.2", o, "runs/x"))
    runs.run_missing([("x", config, "runs/x")])      # skips a run whose results.json exists; resumes the rest
"""

from __future__ import annotations

import os
import shlex
import time
from typing import Any, Iterable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str | None = None):
    """``configs/<name>.py``'s ``get_config(arg)``."""
    from robustjax.config import load_config_file

    return load_config_file(os.path.join(ROOT, "configs", name + ".py"), arg or None)


def apply(config, overrides: dict[str, Any]) -> dict[str, Any]:
    """Sets each dotted field of ``overrides`` (``"defense.attack.step_size"``) in ``config``; returns them."""
    for key, value in overrides.items():
        *path, field = key.split(".")
        node = config
        for part in path:
            node = getattr(node, part)
        setattr(node, field, value)
    return overrides


def budget_overrides(a) -> dict[str, Any]:
    """The overrides every results script shares: ``--npz`` as the data source and, unless ``--paper``, the
    ``--train`` / ``--epochs`` / ``--eval`` budget (epochs decide the steps). ``a``: the parsed arguments."""
    o: dict[str, Any] = {}
    if a.npz:
        o["data.source"], o["data.path"] = "npz", a.npz
    if not a.paper:
        o["data.train_size"] = a.train
        o["train.epochs"] = float(a.epochs)
        o["train.steps"] = 0
        o["eval.num_examples"] = a.eval
    return o


def main_command(name: str, arg: str | None, overrides: dict[str, Any], workdir: str) -> str:
    """The ``main.py`` command line that trains and evaluates the same config in ``workdir``."""
    parts = ["python", "main.py", f"--config=configs/{name}.py" + (f":{arg}" if arg else "")]
    parts += [f"--config.{k}={v}" for k, v in overrides.items()] + [f"--workdir={workdir}"]
    return " ".join(shlex.quote(p) for p in parts)


def run_missing(plan: Iterable[tuple[str, Any, str]]) -> None:
    """Runs each ``(name, config, workdir)`` whose ``results.json`` is missing (an interrupted one resumes)."""
    from robustjax import experiment

    for name, config, workdir in plan:
        if os.path.exists(os.path.join(workdir, "results.json")):
            continue
        t0 = time.time()
        print(f"=== {name}", flush=True)
        experiment.run(config, workdir)
        print(f"=== {name} done in {time.time() - t0:.0f} s", flush=True)
