"""Train a defense and evaluate it against an attack suite; the report goes into a work directory.

    python main.py --config=configs/quickstart.py
    python main.py --config=configs/pgd_at_mnist.py:smoke --workdir=runs/smoke
    python main.py --config=configs/pgd_at_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz --config.train.epochs=2

Every config field can be overridden with --config.<section>.<field>=value. Re-running with the same
--workdir resumes training from its newest checkpoint.
"""

from __future__ import annotations

import os
import re
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/ (':arg' picks a variant).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the report go "
                               "(default: runs/<config>-<timestamp>).")


def default_workdir(config_arg: str, now: float | None = None) -> str:
    """``runs/<config>[-<args>]-<timestamp>`` from the --config argument (``configs/atgan_svhn.py:eps_t=8``
    gives ``runs/atgan_svhn-eps_t8-20261123-101500``)."""
    path, _, arg = str(config_arg).partition(":")
    name = os.path.splitext(os.path.basename(path))[0] or "run"
    arg = re.sub(r"[^A-Za-z0-9_.-]+", "", arg.replace(",", "-"))
    tag = f"{name}-{arg}" if arg else name
    return os.path.join("runs", f"{tag}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}")


_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (multi-host "
                                 "GPU/TPU; the coordinator is found from the environment).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO; -v 0 brings it back
    if _DISTRIBUTED.value:
        import jax

        jax.distributed.initialize()
    from robustjax import experiment  # after flag parsing: keeps --help fast

    workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))
    print(f"[robustjax] workdir: {workdir}", flush=True)
    results = experiment.run(_CONFIG.value, workdir)
    print(open(results["_paths"]["report"]).read())
    print(f"[robustjax] report: {results['_paths']['report']}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    try:
        app.run(main)
    except KeyboardInterrupt:
        print("[robustjax] interrupted; re-run the same command with --workdir to resume", file=sys.stderr)
        sys.exit(130)
