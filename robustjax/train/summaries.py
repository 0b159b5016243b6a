"""TensorBoard summaries of a run, beside ``metrics.jsonl``: ``workdir/tensorboard/{train,eval}/``.

    writer = summaries.open_writer(os.path.join(workdir, "tensorboard", "train"))
    summaries.write_training(writer, {"phase": "train", "global_step": 50, "loss": 0.3, ...})
    writer.close()
    # tensorboard --logdir runs/          (every run's train/ and eval/ side by side)

The training loop writes every metric line it logs (``train/<phase>/<metric>`` at the global step);
``experiment.run`` writes the evaluation (``eval/clean_accuracy``, ``eval/<attack>/robust_accuracy``,
``eval/<attack>/accuracy_on_adversarial``, ``eval/<attack>/seconds``, ``eval/worst_case/<norm>_eps<eps>``),
the report's Markdown as text and its figures as images (the robustness curves among them: a scalar
series in TensorBoard runs over integer steps, not over eps), at the run's last global step. A resumed run purges what it replays
(``purge_step``): TensorBoard hides the events of the steps after the checkpoint, as ``metrics.jsonl``
drops their lines; a re-evaluation replaces the previous one the same way.

The library: tensorboardX. It writes TensorBoard event files in pure Python (numpy, protobuf, packaging:
an 88 KB wheel; importing it costs ~0.2 s and brings no TensorFlow and no torch). The flax examples' choice,
``clu.metric_writers``, writes summaries through ``tf.summary`` (its ``SummaryWriter`` imports TensorFlow,
which robustjax does not otherwise need; its only other file writer goes through torch), so it would add a
~500 MB dependency for one file format. Reading the files back (TensorBoard itself, or the tests) uses the
``tensorboard`` package, which installs without TensorFlow (the ``test`` extra has it). If tensorboardX is
missing (an environment installed before it became a dependency), the run says so once and writes
``metrics.jsonl`` and the report as before.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Mapping

TENSORBOARD_DIR = "tensorboard"
_BOOKKEEPING = ("phase", "phase_index", "step", "global_step")
_warned = False


def available() -> bool:
    """True when tensorboardX can be imported."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


def open_writer(logdir: str, purge_step: int | None = None):
    """A ``tensorboardX.SummaryWriter`` on ``logdir``, or None (tensorboardX missing, or not process 0).

    ``purge_step``: events at this global step and later, written before, are hidden (a resumed run's
    replayed steps).
    """
    global _warned
    try:
        import jax

        if jax.process_index() != 0:
            return None
    except Exception:  # noqa: BLE001 - no backend yet: a single process
        pass
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        if not _warned:
            print("[robustjax] note: tensorboardX is not installed, so no TensorBoard summaries are written "
                  "(pip install tensorboardX); metrics.jsonl and the report are complete without them",
                  file=sys.stderr, flush=True)
            _warned = True
        return None
    os.makedirs(logdir, exist_ok=True)
    # A unique file name: two writers opened within one second (a quick resume) would otherwise share
    # tensorboardX's events.out.tfevents.<seconds>.<host> and the second would overwrite the first.
    return SummaryWriter(logdir=logdir, purge_step=purge_step, flush_secs=30,
                         filename_suffix=f".{os.getpid()}.{time.time_ns()}")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def write_training(writer, record: Mapping[str, Any]) -> None:
    """One ``metrics.jsonl`` record as scalars ``train/<phase>/<metric>`` at its global step."""
    if writer is None:
        return
    step, phase = int(record.get("global_step", 0)), str(record.get("phase", "train"))
    for k, v in record.items():
        value = _number(v)
        if k not in _BOOKKEEPING and value is not None:
            writer.add_scalar(f"train/{phase}/{k}", value, step)


def evaluation_scalars(results: Mapping[str, Any]) -> dict[str, float]:
    """The evaluation's numbers as ``{tag: value}``."""
    out: dict[str, float] = {}
    if _number(results.get("clean_accuracy")) is not None:
        out["eval/clean_accuracy"] = float(results["clean_accuracy"])
    for label, r in (results.get("attacks") or {}).items():
        for k in ("robust_accuracy", "accuracy_on_adversarial", "success_rate", "accuracy_with_detector",
                  "seconds"):
            if _number(r.get(k)) is not None:
                out[f"eval/{label}/{k}"] = float(r[k])
    for k, v in (results.get("worst_case") or {}).items():
        if _number(v) is not None:
            out[f"eval/worst_case/{k.replace('@', '_eps')}"] = float(v)  # TensorBoard tags hold no '@'
    return out


def write_evaluation(workdir: str, results: Mapping[str, Any], step: int, *, markdown: str | None = None,
                     images: Mapping[str, str] | None = None) -> str | None:
    """Writes the evaluation into ``workdir/tensorboard/eval`` at ``step``; returns the directory (None
    when nothing was written). A previous evaluation's events at ``step`` or later are purged.

    ``images``: ``{name: PNG path}`` (the report's figures) added as images ``figures/<name>``.
    """
    logdir = os.path.join(workdir, TENSORBOARD_DIR, "eval")
    writer = open_writer(logdir, purge_step=step)
    if writer is None:
        return None
    try:
        for tag, value in evaluation_scalars(results).items():
            writer.add_scalar(tag, value, step)
        if markdown:
            writer.add_text("report", markdown, step)
        for name, path in (images or {}).items():
            if path and os.path.exists(path):
                import matplotlib.image

                img = matplotlib.image.imread(path)
                if img.ndim == 3 and img.shape[-1] == 4:
                    img = img[..., :3]
                writer.add_image(f"figures/{name}", img, step, dataformats="HWC")
    finally:
        writer.close()
    return logdir
