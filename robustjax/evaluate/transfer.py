"""Black-box transfer: adversarial examples crafted on one model, scored on another.

    from robustjax.evaluate import transfer
    defense, state, config, info = transfer.load_run("runs/standard_mnist-...")     # a finished run
    table = transfer.transfer_matrix(["runs/a", "runs/b"], {"attack": "fgsm", "eps": 0.1}, num_examples=1000)
    print(transfer.markdown_table(table))
    curves = transfer.transfer_curves("runs/resnet", ["runs/a", "runs/b"], {"attack": "fgsm"}, [0.1, 0.3])

A run directory is what ``main.py`` writes: ``config.json`` (the resolved config) and ``checkpoints/``.
:func:`load_run` rebuilds the run's defense from its config (``robustjax.defenses.make``) and restores its
newest usable checkpoint (``robustjax.train.loop.restore_latest``), so any defense can be a source or a
target. This module wires configs, defenses and checkpoints together, as ``experiment`` does, which is why
the evaluation imports it only where a transfer is asked for.

:func:`transfer_matrix` is Zantedeschi et al.'s Table 1 ("Efficient Defenses Against Adversarial Attacks",
Sec. 4.2):
row i, column j is the accuracy of run j on the adversarial examples crafted (white-box, against run i's
attack model: BPDA where it has a surrogate) on run i; the diagonal is the white-box accuracy. Both
measures are given: ``accuracy_on_adversarial`` (the paper's) and ``robust_accuracy`` (correct clean and
on the transferred example). The ``transfer`` metric (``robustjax.evaluate.metrics``) is one column of it
for the evaluated model, from one source. :func:`transfer_curves` is the black-box half of their Figs. 4-5:
one source's examples at each eps of a grid, scored on every target.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from robustjax import attacks as attacks_lib
from robustjax import data as data_lib
from robustjax import xla


def read_config(run_dir: str) -> ml_collections.ConfigDict:
    """The resolved config a run saved (``run_dir/config.json``)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir}: not a run directory: it has no config.json (main.py writes one beside "
                         "checkpoints/)")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_run(run_dir: str, *, info: data_lib.DataInfo | None = None):
    """Rebuilds a finished run: ``(defense, state, config, info)``.

    Args:
      run_dir: the run's ``--workdir``.
      info: the data's ``DataInfo`` (shape, classes, bounds). Default: loaded from the run's
        ``config.data`` (which reads the dataset).

    Raises:
      ValueError: no config.json, or no usable checkpoint.
      CheckpointMismatchError: the checkpoint does not fit the model its config describes.
    """
    from robustjax import defenses
    from robustjax.train import loop

    config = read_config(run_dir)
    if info is None:
        _, _, info = data_lib.load(config.data)
    batch = int(config.data.get("batch_size", 1) or 1)
    spe = max(1, int(info.num_train) // batch) if info.num_train else 1
    defense = defenses.make(config, info, spe)
    sample = {"image": np.zeros((batch,) + tuple(info.image_shape), np.float32),
              "label": np.zeros((batch,), np.int32)}
    state = xla.jit(defense.init)(jax.random.PRNGKey(int(config.get("seed", 0))), sample)
    state, meta = loop.restore_latest(run_dir, state)
    if meta is None:
        raise ValueError(f"{run_dir}: no usable checkpoint in {os.path.join(run_dir, 'checkpoints')}; train the "
                         "run first (main.py --workdir=...)")
    return defense, state, config, info


def train_standard(train_ds: data_lib.ArrayDataset, num_classes: int, *, model: Mapping[str, Any], steps: int,
                   batch_size: int, learning_rate: float, seed: int):
    """A standard (undefended) classifier trained here with Adam: ``(Target, state)`` for the suite."""
    from robustjax import models
    from robustjax.defenses.base import create_train_state, cross_entropy, eval_logits_fn, train_apply
    from robustjax.evaluate.suite import Target

    module = models.make(dict(model), num_classes)
    batch_size = min(int(batch_size), len(train_ds))
    stream = data_lib.train_batches(train_ds, batch_size, seed=seed)
    first = next(stream)
    key = jax.random.PRNGKey(seed)
    state = create_train_state(module, key, jnp.asarray(first["image"]), optax.adam(learning_rate))

    @xla.jit
    def step(state, x, y, k):
        def loss_fn(params):
            logits, stats = train_apply(state, params, x, k)
            return cross_entropy(logits, y), stats

        (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads, batch_stats=stats)

    batch = first
    for i in range(int(steps)):
        state = step(state, batch["image"], batch["label"], jax.random.fold_in(key, i))
        batch = next(stream)
    return Target(lambda s: eval_logits_fn(s)), state


def _predict_correct(session, xs: np.ndarray, key) -> np.ndarray:
    """``[n]`` bool: the session's model classifies ``xs[i]`` as ``session.ds``'s label ``i``."""
    out, bs = [], session.batch_size
    labels = session.ds.labels[:len(xs)]
    for b, start in enumerate(range(0, len(xs), bs)):
        x = xs[start:start + bs]
        real = len(x)
        if real < bs:
            x = np.concatenate([x, np.zeros((bs - real,) + x.shape[1:], x.dtype)])
        pred = np.asarray(session.predict(session.state, x, jax.random.fold_in(key, b)))[:real]
        out.append(pred == labels[start:start + real])
    return np.concatenate(out) if out else np.zeros(0, bool)


def _craft(source_session, atk: attacks_lib.Attack, key, n: int):
    """White-box adversarial examples on the source: ``(x_adv [n, ...], source's adv_correct [n])``."""
    run = source_session.attack(source_session.compile(atk), float(atk.eps) if atk.budget else 0.0, key,
                                n=n, keep_adv=True)
    return run.x_adv, run.adv_correct


def transfer_metric(session, params: Mapping[str, Any], key) -> dict:
    """The ``transfer`` metric on an evaluation session (see ``robustjax.evaluate.metrics``)."""
    from robustjax.evaluate.suite import Session, Target

    m = session.n if not params["num_examples"] else min(int(params["num_examples"]), session.n)
    atk = attacks_lib.resolve(params["attack"], where="config.eval.metrics.transfer.attack")
    k_src, k_attack, k_pred = jax.random.split(key, 3)
    num_classes = int(session.target.logits(session.state, jnp.asarray(session.ds.get(np.arange(1))["image"]),
                                            k_pred).shape[-1])
    if params["source"] == "standard":
        source, source_state = train_standard(
            session.train_ds, num_classes, model=params["model"], steps=params["steps"],
            batch_size=params["batch_size"], learning_rate=params["learning_rate"], seed=params["seed"])
    else:
        info = data_lib.DataInfo(name="", image_shape=session.ds.element_shape, num_classes=num_classes,
                                 num_train=len(session.train_ds) if session.train_ds is not None else 0,
                                 num_test=session.n, bounds=session.bounds)
        defense, source_state, _, _ = load_run(params["source"], info=info)
        source = Target.of(defense)
    src = Session(source, source_state, session.ds, session.batch_size, k_src, session.bounds)
    src.run_clean(jax.random.fold_in(k_src, 1))

    def score(a, k):
        x_adv, source_correct = _craft(src, a, k, m)
        correct = _predict_correct(session, x_adv, k_pred)
        return {"accuracy_on_adversarial": float(correct.mean()),
                "robust_accuracy": float((session.clean_correct[:m] & correct).mean()),
                "source_accuracy_on_adversarial": float(source_correct.mean())}

    point = score(atk, k_attack)
    out = {"value": point["accuracy_on_adversarial"], **point,
           "source_clean_accuracy": float(src.clean_correct[:m].mean()), "attack": atk.name, "norm": atk.norm,
           "eps": None if atk.eps is None else float(atk.eps), "source": params["source"], "num_examples": m}
    if params.get("eps_grid"):
        # The headline's key at every radius, as the suite's curves use one key per curve: a grid point at
        # the attack's own eps repeats the headline value.
        out["curve"] = [{"eps": float(e), **score(attacks_lib.resolve({**atk.spec, "eps": float(e)},
                                                                      where="config.eval.metrics.transfer.attack"),
                                                  k_attack)}
                        for e in params["eps_grid"]]
    return out


def _sessions(run_dirs: Sequence[str], test_ds, info, bounds, num_examples: int, batch_size: int, key, caller: str):
    """An evaluation session per run, on one test set (the first run's unless given); ``(sessions, n)``."""
    from robustjax.evaluate.suite import Session, Target

    configs = [read_config(d) for d in run_dirs]
    names = {str(c.data.name) for c in configs}
    if len(names) > 1:
        raise ValueError(f"{caller}: the runs are on different datasets {sorted(names)} "
                         f"({', '.join(f'{d}: {c.data.name}' for d, c in zip(run_dirs, configs))}); transfer "
                         "needs one test set")
    if test_ds is None or info is None:
        _, loaded_test, loaded_info = data_lib.load(configs[0].data)
        test_ds = loaded_test if test_ds is None else test_ds
        info = loaded_info if info is None else info
    bounds = tuple(bounds) if bounds is not None else tuple(info.bounds)
    n = len(test_ds) if not num_examples else min(int(num_examples), len(test_ds))
    ds = data_lib.ArrayDataset(test_ds.images[:n], test_ds.labels[:n])
    batch_size = min(int(batch_size), n)
    sessions = []
    for i, d in enumerate(run_dirs):
        defense, state, _, _ = load_run(d, info=info)
        s = Session(Target.of(defense), state, ds, batch_size, jax.random.fold_in(key, i), bounds)
        s.run_clean(jax.random.fold_in(key, 1000 + i))
        sessions.append(s)
    return sessions, n


def transfer_matrix(run_dirs: Sequence[str], attack_spec: Mapping[str, Any], *,
                    test_ds: data_lib.ArrayDataset | None = None, info: data_lib.DataInfo | None = None,
                    bounds=None, num_examples: int = 1000, batch_size: int = 256, seed: int = 0) -> dict:
    """Accuracy of every run on the adversarial examples crafted on every run (Zantedeschi et al. Table 1).

    Args:
      run_dirs: finished runs (``--workdir`` of main.py) on the same dataset.
      attack_spec: the attack crafted on each source, e.g. ``{"attack": "fgsm", "eps": 0.1}`` (checked by
        ``robustjax.attacks.resolve``).
      test_ds: the examples to attack; default: the test split of the first run's ``config.data``.
      info: the dataset's ``DataInfo`` (classes, shape, bounds); default: from the first run's ``config.data``
        (loading it when either ``test_ds`` or ``info`` is not given).
      bounds: the pixel range; default: ``info.bounds``.
      num_examples: the first ``num_examples`` test examples (0: all).
      batch_size: evaluation batch size.
      seed: the attacks' key (same seed, same table).

    Returns:
      ``{"runs": run_dirs, "names": basenames, "attack": spec, "rows": "crafted on", "columns": "tested on",
      "accuracy_on_adversarial": [[row i = crafted on run i, column j = tested on run j]], "robust_accuracy":
      [[...]], "clean_accuracy": [per run], "num_examples": n}``: plain values, JSON-ready.

    Raises:
      ValueError: fewer than one run, runs on different datasets, or a bad attack spec.
    """
    run_dirs = [str(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("transfer_matrix: give at least one run directory")
    atk = attacks_lib.resolve(dict(attack_spec), where="transfer_matrix.attack_spec")
    key = jax.random.PRNGKey(seed)
    sessions, n = _sessions(run_dirs, test_ds, info, bounds, num_examples, batch_size, key, "transfer_matrix")
    acc = np.zeros((len(run_dirs), len(run_dirs)))
    robust = np.zeros_like(acc)
    for i, src in enumerate(sessions):
        x_adv, _ = _craft(src, atk, jax.random.fold_in(key, 2000 + i), n)
        for j, tgt in enumerate(sessions):
            correct = _predict_correct(tgt, x_adv, jax.random.fold_in(key, 3000 + len(run_dirs) * i + j))
            acc[i, j] = correct.mean()
            robust[i, j] = (tgt.clean_correct & correct).mean()
    return {"runs": run_dirs, "names": [os.path.basename(os.path.normpath(d)) for d in run_dirs],
            "attack": atk.spec, "rows": "crafted on", "columns": "tested on",
            "accuracy_on_adversarial": acc.tolist(), "robust_accuracy": robust.tolist(),
            "clean_accuracy": [float(s.clean_correct.mean()) for s in sessions], "num_examples": n}


def transfer_curves(source_dir: str, target_dirs: Sequence[str], attack_spec: Mapping[str, Any],
                    eps_grid: Sequence[float], *, test_ds: data_lib.ArrayDataset | None = None,
                    info: data_lib.DataInfo | None = None, bounds=None, num_examples: int = 1000,
                    batch_size: int = 256, seed: int = 0) -> dict:
    """Black-box robustness curves: every target's accuracy on one source's adversarial examples at each eps
    (Zantedeschi et al. Figs. 4-5, "crafted using the ResNet model, without any defense").

    Args:
      source_dir: the finished run the attack is crafted on (white-box on its attack model).
      target_dirs: the finished runs scored on those examples.
      attack_spec: the attack without its radius, e.g. ``{"attack": "fgsm"}``; each point sets ``eps``.
      eps_grid: the radii (each > 0).
      test_ds, info, bounds, num_examples, batch_size, seed: as in :func:`transfer_matrix`.

    Returns:
      ``{"source", "targets", "names", "attack", "eps_grid", "num_examples", "clean_accuracy": [per target],
      "source_accuracy_on_adversarial": [per eps], "curves": [per target: [{"eps", "accuracy_on_adversarial",
      "robust_accuracy"} per eps]]}``: plain values, JSON-ready.

    Raises:
      ValueError: no target, an empty grid or a radius <= 0, runs on different datasets, or a bad attack spec.
    """
    target_dirs = [str(d) for d in target_dirs]
    if not target_dirs:
        raise ValueError("transfer_curves: give at least one target run directory")
    grid = [float(e) for e in eps_grid]
    if not grid or min(grid) <= 0:
        raise ValueError(f"transfer_curves: eps_grid must be a non-empty list of radii > 0, got {list(eps_grid)}")
    atks = [attacks_lib.resolve({**dict(attack_spec), "eps": e}, where="transfer_curves.attack_spec") for e in grid]
    key = jax.random.PRNGKey(seed)
    sessions, n = _sessions([str(source_dir)] + target_dirs, test_ds, info, bounds, num_examples, batch_size,
                            key, "transfer_curves")
    src, targets = sessions[0], sessions[1:]
    curves = [[] for _ in targets]
    source_acc = []
    for i, (eps, atk) in enumerate(zip(grid, atks)):
        x_adv, src_correct = _craft(src, atk, jax.random.fold_in(key, 2000 + i), n)
        source_acc.append(float(src_correct.mean()))
        for j, tgt in enumerate(targets):
            correct = _predict_correct(tgt, x_adv, jax.random.fold_in(key, 3000 + len(targets) * i + j))
            curves[j].append({"eps": eps, "accuracy_on_adversarial": float(correct.mean()),
                              "robust_accuracy": float((tgt.clean_correct & correct).mean())})
    return {"source": str(source_dir), "targets": target_dirs,
            "names": [os.path.basename(os.path.normpath(d)) for d in target_dirs], "attack": atks[0].spec,
            "eps_grid": grid, "num_examples": n, "clean_accuracy": [float(s.clean_correct.mean()) for s in targets],
            "source_accuracy_on_adversarial": source_acc, "curves": curves}


def markdown_table(table: Mapping[str, Any], key: str = "accuracy_on_adversarial") -> str:
    """``table[key]`` as a Markdown table: rows crafted on, columns tested on."""
    names = table["names"]
    lines = [f"Transfer ({key.replace('_', ' ')}; {table['attack']}; {table['num_examples']} examples): row = "
             "crafted on, column = tested on; the diagonal is white-box.", "",
             "| crafted on \\ tested on | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, table[key]):
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    return "\n".join(lines)
