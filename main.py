"""Train a defense and evaluate it against an attack suite; the report goes into a work directory.

    python main.py --config=configs/quickstart.py
    python main.py --config=configs/pgd_at_mnist.py:smoke --workdir=runs/smoke
    python main.py --config=configs/pgd_at_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz --config.train.epochs=2

Every config field can be overridden with --config.<section>.<field>=value. Re-running with the same
--workdir resumes training from its newest checkpoint (a config that changes training is refused unless
--allow_config_change is given).

Exit status: 0 done; 2 a user error robustjax recognised (bad config, missing or malformed data, a
workdir that holds another run), printed as one line (--verbosity=1 or ROBUSTJAX_TRACEBACK=1 adds the
traceback); 3 training diverged (NaN/inf); 130 SIGINT (Ctrl-C) and 143 SIGTERM, after the checkpoint of
the last finished step was written. See docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import signal
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
                                 "GPU/TPU; on TPU pods, SLURM and Open MPI the processes find each other from the "
                                 "environment, elsewhere give --coordinator_address, --num_processes, --process_id).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "With --distributed: host:port of process 0, the "
                                   "same on every process (default: from the environment).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed: how many processes (hosts) run "
                                      "this command (default: from the environment).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed: this process's index, 0 .. "
                                   "num_processes - 1 (default: from the environment).")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool("allow_config_change", False, "Resume a --workdir even though the config "
                                         "changes training (the change is recorded and stated in the report).")

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
TRACEBACK_ENV = "ROBUSTJAX_TRACEBACK"


def _show_tracebacks() -> bool:
    return flags.FLAGS.verbosity >= 1 or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def _sigterm(signum, frame):
    """Outside the training loop (which checkpoints first), SIGTERM stops like Ctrl-C, with status 143."""
    from robustjax.train.loop import Interrupted

    raise Interrupted("SIGTERM", signum)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO; -v 0 brings it back
    signal.signal(signal.SIGTERM, _sigterm)
    if _DISTRIBUTED.value:
        import jax

        # Processes whose devices are CPUs need a collectives library between them (GPU/TPU ignore this).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                                   process_id=_PROCESS_ID.value)
    from robustjax import errors, experiment  # after flag parsing: keeps --help fast
    from robustjax.train.loop import NonFiniteLossError

    workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS["config"]))
    print(f"[robustjax] workdir: {workdir}", flush=True)
    try:
        results = experiment.run(_CONFIG.value, workdir, allow_config_change=_ALLOW_CONFIG_CHANGE.value)
    except KeyboardInterrupt as e:
        print(f"[robustjax] interrupted; re-run the same command with --workdir={workdir} to resume",
              file=sys.stderr, flush=True)
        return getattr(e, "exit_status", 128 + signal.SIGINT)
    except (errors.UserError, NonFiniteLossError) as e:
        if _show_tracebacks():
            raise
        print(f"[robustjax] error: {e}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR if isinstance(e, errors.UserError) else EXIT_DIVERGED
    if "report" in results["_paths"]:  # process 0 (the only one with several processes) wrote it
        print(results["_report"])
        print(f"[robustjax] report: {results['_paths']['report']}")
    return 0


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    try:
        app.run(main)
    except KeyboardInterrupt as e:  # before main's own handling (flag parsing, imports)
        print("[robustjax] interrupted", file=sys.stderr)
        sys.exit(getattr(e, "exit_status", 128 + signal.SIGINT))
