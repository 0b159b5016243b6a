"""AutoAttack chunked and unchunked on trained runs: robust accuracy, time and compile cost.

    python benchmarks/autoattack_chunks.py --runs runs/atgan_sweep_mnist/baseline-eps_t0.3 \\
        runs/atgan_sweep_mnist/baseline-eps_t0 --eps 0.3 --n 128 --write

``--runs`` are finished ``main.py`` work directories (any defense: each is rebuilt from its ``config.json``
and newest checkpoint by ``robustjax.evaluate.transfer.load_run`` and attacked through its attack model,
BPDA where it has a surrogate). The two above are the PGD-AT CNN (eps_t 0.3) and the plain CNN of the
ATGAN sweep in ``docs/results.md``; its command rebuilds them.

For each run, standard AutoAttack (APGD-CE, APGD-T 9 targets, FAB-T 9 targets, Square 5000; 100 steps) at
``--eps`` on its first ``--n`` test images, one batch, with every ``--chunks`` value (0: unchunked, the
suites' default; k: ``chunk_size=k``, which re-selects what is still robust before each component and
target and attacks only that, in chunks of k). Each variant is compiled and run once (the "first call"
column, compilation included), then timed ``--repeats`` rounds, interleaved across variants (the machine
is shared: compare within a run). ``compile + first-call overhead`` = first call - median. Robust
accuracy is over the same images for every variant; chunking changes the order of the random draws, not
the attack's strength, so the variants should agree to within a few examples.

The question it answers (issue #11): the chunked ensemble is faster on an undefended model (most examples
fall to APGD-CE and are never attacked again), but on a robust model most examples survive every
component; does chunking then cost more than it saves (more programs to compile, chunks that run
anyway)?
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from robustjax import attacks, xla  # noqa: E402
from robustjax import data as data_lib  # noqa: E402
from robustjax.evaluate import transfer  # noqa: E402


def runners(logits_fn, x, y, key, eps: float, chunks, num_steps: int, num_queries: int) -> dict:
    """``{label: () -> x_adv}``: one AutoAttack per chunk size, each compiled on its first call."""
    out = {}
    for c in chunks:
        fn = xla.jit(lambda x, y, key, c=c: attacks.autoattack(
            logits_fn, x, y, key, eps=eps, norm="linf", version="standard", num_steps=num_steps,
            num_queries=num_queries, chunk_size=c or None))
        out["unchunked" if not c else f"chunk_size={c}"] = lambda fn=fn: fn(x, y, key)
    return out


def measure(run_dir: str, a) -> list[list]:
    defense, state, config, info = transfer.load_run(run_dir)
    _, test_ds, _ = data_lib.load(config.data)
    n = min(a.n, len(test_ds))
    batch = test_ds.get(np.arange(n))   # float pixels in the run's box
    x, y = jnp.asarray(batch["image"]), jnp.asarray(batch["label"])
    logits_fn = defense.attack_model(state)
    predict = xla.jit(lambda x: jnp.argmax(defense.classifier(state)(x), -1))
    clean = np.asarray(predict(x)) == np.asarray(y)
    outputs: dict = {}
    timings = common.interleaved(runners(logits_fn, x, y, jax.random.PRNGKey(a.seed), a.eps, a.chunks,
                                         a.num_steps, a.num_queries), a.repeats, outputs)
    base = timings["unchunked"].median if "unchunked" in timings else None
    rows = []
    for label, t in timings.items():
        adv = np.asarray(predict(outputs[label])) == np.asarray(y)
        rows.append([os.path.basename(os.path.normpath(run_dir)), label, f"{clean.mean():.3f}",
                     f"{(clean & adv).mean():.3f}", f"{t.first:.1f}", f"{t.median:.1f}",
                     f"{max(t.first - t.median, 0.0):.1f}", f"{n / t.median:.2f}",
                     f"{base / t.median:.2f}" if base else "-"])
        print(" | ".join(rows[-1]), flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="finished main.py work directories")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--n", type=int, default=128, help="first test images, one batch")
    p.add_argument("--chunks", type=int, nargs="+", default=[0, 32], help="chunk sizes (0: unchunked)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--num_steps", type=int, default=100, help="APGD/FAB steps (100: standard)")
    p.add_argument("--num_queries", type=int, default=5000, help="Square queries (5000: standard)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    a = p.parse_args(argv)
    load_start = common.loadavg()
    rows = [r for run in a.runs for r in measure(run, a)]
    table = common.md_table(["run", "AutoAttack", "clean", "robust accuracy", "first call (s)", "median (s)",
                             "compile + first-call overhead (s)", "img/s", "speed / unchunked"], rows)
    print(table)
    if a.write:
        cmd = "python benchmarks/autoattack_chunks.py " + " ".join(sys.argv[1:] if argv is None else argv)
        body = "\n".join([
            f"Standard AutoAttack (L-inf eps {a.eps:g}, {a.num_steps} steps, Square {a.num_queries} queries) on "
            f"the first {a.n} MNIST test images of trained runs, one batch, unchunked and chunked. First call = "
            "compilation + one run; median of "
            f"{a.repeats} interleaved timed call(s) after it. See the script's docstring for the runs.",
            "",
            *common.machine_lines(cmd),
            f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {common.loadavg()}",
            "",
            table,
        ])
        path = os.path.join(common.ROOT, "docs", "benchmarks.md")
        common.write_section(path, "AutoAttack chunked and unchunked on trained runs", body)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
