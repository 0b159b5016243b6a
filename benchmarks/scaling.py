"""Data-parallel training speed on 1, 2, 4 and 8 devices: the table in docs/scaling.md.

    python benchmarks/scaling.py                          # simulated CPU devices (see below), prints the table
    python benchmarks/scaling.py --write                  # and writes it into docs/scaling.md
    python benchmarks/scaling.py --devices 1,2,4,8 --steps 10 --repeats 5 --config configs/quickstart.py

Each device count runs in its own process (the count is fixed when JAX starts). On a machine without
accelerators the devices are simulated with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``: N
devices that share the same CPU cores, so the table shows the overhead of splitting a batch N ways (the
per-device programs, the all-reduce of the gradient), not a speedup. On a GPU/TPU host, ``--real`` uses
the first N real devices instead.

What is timed is what ``robustjax.train.loop`` does per step: read the global batch from the data stream,
place it on the mesh (``sharding.shard_batch``), and run the defense's ``train_step`` compiled as the loop
compiles it (``loop._compile_step``: ``xla.jit``, state donated, step key folded in), with the state
replicated over the mesh. Median over ``--repeats`` blocks of ``--steps`` steps, after a warm-up block
that includes the compilation (reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "scaling.md")
SECTION = "Measured: 1 to 8 simulated devices on a 2-core CPU"


def child(args) -> dict:
    """Runs in a process with the devices set up; returns the measurements for ``args.n`` devices."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, ROOT)
    from robustjax import data, experiment, xla
    from robustjax.train import loop, sharding

    from robustjax.config import load_config_file

    config = load_config_file(os.path.join(ROOT, args.config), args.config_arg or None)
    if args.batch:
        config.data.batch_size = args.batch
    defense, train_ds, _, _, _ = experiment.build(config)
    batch_size = config.data.batch_size
    devices = jax.devices()[:args.n]
    assert len(devices) == args.n, f"asked for {args.n} devices, found {len(jax.devices())}"
    mesh = sharding.make_mesh(devices)
    sharding.check_batch_size(batch_size, mesh)
    state = xla.jit(defense.init)(jax.random.PRNGKey(0), train_ds.get(np.arange(batch_size)))
    state = sharding.replicate(state, mesh)
    phase = defense.phases[-1]  # PGD-AT / standard: the only phase
    step_fn = loop._compile_step(phase.train_step, jax.random.PRNGKey(1))
    stream = data.train_batches(train_ds, batch_size, seed=0)
    holder = {"state": state, "step": 0}

    def block():
        s, metrics = holder["state"], None
        for _ in range(args.steps):
            batch = sharding.shard_batch(next(stream), mesh)
            s, metrics = step_fn(s, batch, jnp.asarray(holder["step"], jnp.int32))
            holder["step"] += 1
        jax.block_until_ready((s, metrics))
        holder["state"] = s

    t0 = time.perf_counter()
    block()  # compile + warm-up
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        block()
        times.append(time.perf_counter() - t0)
    per_step = float(np.median(times)) / args.steps
    return {"n": args.n, "platform": devices[0].platform, "device_kind": devices[0].device_kind,
            "batch": batch_size, "defense": defense.name, "model": config.model.name,
            "warmup_s": warmup, "step_s": per_step, "images_per_s": batch_size / per_step,
            "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.py", help="a config file (relative to the repository)")
    p.add_argument("--config-arg", default="", help="its argument (what follows ':' on the command line)")
    p.add_argument("--batch", type=int, default=0, help="global batch size (0: the config's)")
    p.add_argument("--devices", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=10, help="train steps per timed block")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--real", action="store_true", help="use the host's real devices instead of simulated CPU ones")
    p.add_argument("--write", action="store_true", help="write the table into docs/scaling.md")
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.n = args.child
        print(json.dumps(child(args)), flush=True)
        return

    import common

    load_start = common.loadavg()
    t_start = time.perf_counter()
    results = []
    for n in [int(v) for v in args.devices.split(",") if v]:
        env = dict(os.environ)
        if not args.real:
            env["JAX_PLATFORMS"] = "cpu"
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}").strip()
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), "--config", args.config,
               "--config-arg", args.config_arg, "--batch", str(args.batch), "--steps", str(args.steps),
               "--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{n} devices failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{n} device(s): {r['step_s'] * 1e3:.1f} ms/step, {r['images_per_s']:.1f} img/s, "
              f"warm-up (compile) {r['warmup_s']:.1f} s  [load {r['loadavg']}]", flush=True)
    base = results[0]["step_s"]
    rows = [[r["n"], r["batch"] // r["n"], f"{r['warmup_s']:.1f}", f"{r['step_s'] * 1e3:.0f}",
             f"{r['images_per_s']:.0f}", f"{r['step_s'] / base:.2f}"] for r in results]
    table = common.md_table(["devices", "rows per device", "compile + first block (s)", "ms / step",
                             "images / s", "step time vs 1 device"], rows)
    print()
    print(table)
    if args.write:
        r0 = results[0]
        cmd = "python benchmarks/scaling.py " + " ".join(sys.argv[1:] if argv is None else argv)
        kind = "real" if args.real else "simulated CPU"
        lines = common.machine_lines(cmd)
        lines = [line for line in lines if not line.startswith("- Threads")]
        body = "\n".join([
            f"Training config `{args.config}{':' + args.config_arg if args.config_arg else ''}`: {r0['defense']} "
            f"on `{r0['model']}`, global batch {r0['batch']} (the config's), {kind} devices "
            f"({r0['platform']}). Median of {args.repeats} blocks of {args.steps} steps as the loop runs them "
            "(batch read, placed on the mesh, train step with the state replicated), after a warm-up block "
            "that includes compilation.",
            "",
            *([] if args.real else [
                "**Simulated devices share the same 2 CPU cores**: 8 simulated devices have no more compute than "
                "1, so this table shows the overhead of splitting each batch N ways (N smaller per-device "
                "programs, the gradient all-reduce, placing the batch on N devices) and no speed-up at all. "
                "It says nothing about GPU or TPU scaling; see \"What speed-up to expect\" above.",
                ""]),
            *lines,
            f"- Load average (1, 5, 15 min) at the start: {load_start}; at the end: {common.loadavg()} (2 cores "
            f"shared with other processes); total wall time {(time.perf_counter() - t_start) / 60:.1f} min",
            "",
            table,
        ])
        common.write_section(DOC, SECTION, body)
        print(f"wrote the section '{SECTION}' of {DOC}")


if __name__ == "__main__":
    main()
