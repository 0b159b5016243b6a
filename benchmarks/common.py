"""Shared pieces of the benchmarks: trained models on real data, their PyTorch twins, timing and machine info.

    import common                                    # run from benchmarks/ (scripts put it on sys.path)
    lenet = common.load_lenet()                      # trains once (cached in benchmarks/.cache/), then loads
    torch_model = common.torch_twin(lenet)           # same weights in PyTorch (NCHW); logits checked to 1e-4

``Bundle`` holds a flax model, its params, a jitted ``x -> logits`` and a PyTorch module with the same weights.
Two models are available:

* ``lenet``: GanDef's LeNet (``models.make({"name": "lenet"})``) trained with robustjax's own pipeline
  (``experiment.build`` + ``train.loop.fit``, ``configs/standard_mnist.py``: Adam 1e-3, batch 128) for
  ``LENET_EPOCHS`` epoch(s) on the full real MNIST training set (``$ROBUSTJAX_TEST_DATA/mnist.npz``).
* ``cifar_cnn``: ConvPool-CNN-C (``convpool_cnn``) at width 0.25 with 2x2 max pools (24/48 channels; the
  paper's 3x3 pools replaced by the reshape form), trained briefly (``CIFAR_EPOCHS`` epochs of standard
  training) on the 10,000-image CIFAR-10 subset (``$ROBUSTJAX_TEST_DATA/cifar10_subset.npz``). Used for the
  speed table only; it is small so that batch-128 PGD-40 fits the 2-core CPU.

Weights are cached as ``.npz`` files under ``benchmarks/.cache/`` (gitignored); delete them to retrain.
Inputs everywhere are float32 images in [0, 1]: NHWC for JAX, NCHW for PyTorch.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import traverse_util  # noqa: E402

CACHE = os.path.join(ROOT, "benchmarks", ".cache")
# The real datasets (npz: x_train, y_train, x_test, y_test): the same one setting as the tests use.
DATA_DIR = os.environ.get("ROBUSTJAX_TEST_DATA") or os.path.join(ROOT, "..", "shared", "data")
MNIST = os.path.join(DATA_DIR, "mnist.npz")
CIFAR = os.path.join(DATA_DIR, "cifar10_subset.npz")
LENET_EPOCHS = 2
CIFAR_EPOCHS = 3
TORCH_THREADS = 2

# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


def load_test(path: str, n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images (from ``offset``) of an npz dataset: float32 NHWC in [0, 1], int32 labels."""
    with np.load(path) as f:
        x = f["x_test"][offset:offset + n].astype(np.float32) / 255.0
        y = f["y_test"][offset:offset + n].astype(np.int32)
    if x.ndim == 3:
        x = x[..., None]
    return x, y


def nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


# ----------------------------------------------------------------------------------------------------------
# Training (robustjax's own pipeline) and the weight cache
# ----------------------------------------------------------------------------------------------------------

SPECS = {
    "lenet": dict(
        data=dict(name="mnist", source="npz", path=MNIST), model=dict(name="lenet"),
        epochs=LENET_EPOCHS, shape=(28, 28, 1),
    ),
    "cifar_cnn": dict(
        data=dict(name="cifar10", source="npz", path=CIFAR),
        model=dict(name="convpool_cnn", width=0.25, pool_size=2, dropout=0.0, input_dropout=0.0),
        epochs=CIFAR_EPOCHS, shape=(32, 32, 3),
    ),
}


def _config(name: str):
    from configs import standard_mnist

    spec = SPECS[name]
    c = standard_mnist.get_config()
    for k, v in spec["data"].items():
        c.data[k] = v
    c.model = type(c.model)(spec["model"])
    c.train.epochs = float(spec["epochs"])
    c.train.progress = False
    c.train.log_every = 100
    c.train.checkpoint_every = 100000
    return c


def _cache_file(name: str) -> str:
    return os.path.join(CACHE, f"{name}_e{SPECS[name]['epochs']}.npz")


def train_and_cache(name: str) -> str:
    """Trains model ``name`` with robustjax's loop (standard training) and saves its params as npz."""
    from robustjax import experiment
    from robustjax.train import loop

    config = _config(name)
    defense, train_ds, _, _, _ = experiment.build(config)
    workdir = os.path.join(CACHE, f"{name}_run")
    shutil.rmtree(workdir, ignore_errors=True)
    key = jax.random.PRNGKey(config.seed)
    init_key, train_key, _ = jax.random.split(key, 3)
    state = defense.init(init_key, train_ds.get(np.arange(config.data.batch_size)))
    t0 = time.time()
    state = loop.fit(defense, state, train_ds, key=train_key, options=loop.LoopOptions(
        workdir=workdir, batch_size=config.data.batch_size, seed=config.seed, log_every=100,
        checkpoint_every=100000, progress=False))
    print(f"[common] trained {name} for {config.train.epochs} epoch(s) in {time.time() - t0:.0f}s", flush=True)
    flat = traverse_util.flatten_dict(jax.device_get(state["classifier"].params), sep="/")
    os.makedirs(CACHE, exist_ok=True)
    path = _cache_file(name)
    np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})
    shutil.rmtree(workdir, ignore_errors=True)
    return path


# ----------------------------------------------------------------------------------------------------------
# PyTorch twins
# ----------------------------------------------------------------------------------------------------------


def _torch():
    import torch

    if torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)
    return torch


def set_torch_threads(n: int) -> None:
    """Sets the torch intra-op thread count every later ``_torch()`` call applies (default 2)."""
    global TORCH_THREADS
    TORCH_THREADS = int(n)
    _torch()


def torch_lenet():
    """GanDef's LeNet in PyTorch (NCHW): conv5x5-32 p2, relu, pool, conv5x5-64 p2, relu, pool, fc1024, fc10."""
    torch = _torch()
    nn = torch.nn

    class TorchLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
            self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
            self.fc1 = nn.Linear(7 * 7 * 64, 1024)
            self.head = nn.Linear(1024, 10)

        def forward(self, x):
            h = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
            h = torch.relu(self.fc1(h.flatten(1)))
            return self.head(h)

    return TorchLeNet()


def user_lenet_logits(params):
    """``x -> logits`` of the LeNet written as a user would write it in plain flax (``nn.Conv``,
    ``nn.max_pool``, ``nn.relu``), on robustjax's LeNet params (same names, same function).

    robustjax's own LeNet pools by reshaping (``layers.max_pool_2x2``); this one uses ``nn.max_pool``
    (``lax.reduce_window``), whose gradient XLA computes with ``select_and_scatter``. The benchmark's
    ``robustjax-user`` column attacks it under plain ``jax.jit``, as the README's example does.
    """
    import flax.linen as nn

    class UserLeNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.max_pool(nn.relu(nn.Conv(32, (5, 5), padding="SAME", name="conv1")(x)), (2, 2), strides=(2, 2))
            h = nn.max_pool(nn.relu(nn.Conv(64, (5, 5), padding="SAME", name="conv2")(h)), (2, 2), strides=(2, 2))
            h = nn.relu(nn.Dense(1024, name="fc1")(h.reshape(h.shape[0], -1)))
            return nn.Dense(10, name="head")(h)

    module = UserLeNet()
    return lambda x: module.apply({"params": params}, x)


def torch_convpool(c1: int = 24, c2: int = 48, num_classes: int = 10):
    """ConvPool-CNN-C (width 0.25, 2x2 pools, no dropout) in PyTorch (NCHW)."""
    torch = _torch()
    nn = torch.nn

    class TorchConvPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, c1, 3, padding=1)
            self.conv2 = nn.Conv2d(c1, c1, 3, padding=1)
            self.conv3 = nn.Conv2d(c1, c1, 3, padding=1)
            self.conv4 = nn.Conv2d(c1, c2, 3, padding=1)
            self.conv5 = nn.Conv2d(c2, c2, 3, padding=1)
            self.conv6 = nn.Conv2d(c2, c2, 3, padding=1)
            self.conv7 = nn.Conv2d(c2, c2, 3, padding=0)
            self.conv8 = nn.Conv2d(c2, c2, 1)
            self.head = nn.Conv2d(c2, num_classes, 1)

        def forward(self, x):
            r = torch.relu
            h = r(self.conv3(r(self.conv2(r(self.conv1(x))))))
            h = torch.max_pool2d(h, 2)
            h = r(self.conv6(r(self.conv5(r(self.conv4(h))))))
            h = torch.max_pool2d(h, 2)
            h = r(self.conv8(r(self.conv7(h))))
            return self.head(h).mean(dim=(2, 3))

    return TorchConvPool()


def copy_to_torch(params: dict, module, flatten_hwc: dict[str, tuple[int, int, int]] | None = None) -> None:
    """Copies flax params into a PyTorch module with the same layer names.

    Conv kernels HWIO -> OIHW; dense kernels [in, out] -> [out, in]. A dense layer that follows a flatten
    of an NHWC map (named in ``flatten_hwc`` with its (H, W, C)) has its input rows reordered from
    (h, w, c) to PyTorch's (c, h, w) flatten order.
    """
    torch = _torch()
    flatten_hwc = flatten_hwc or {}
    state = {}
    for layer, p in params.items():
        k = np.asarray(p["kernel"])
        if k.ndim == 4:
            w = k.transpose(3, 2, 0, 1)
        else:
            if layer in flatten_hwc:
                h, w_, c = flatten_hwc[layer]
                k = k.reshape(h, w_, c, -1).transpose(2, 0, 1, 3).reshape(h * w_ * c, -1)
            w = k.T
        state[f"{layer}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        state[f"{layer}.bias"] = torch.from_numpy(np.asarray(p["bias"]).copy())
    module.load_state_dict(state, strict=True)
    module.eval()


# ----------------------------------------------------------------------------------------------------------
# Bundles
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Bundle:
    """A trained model in both frameworks.

    Attributes:
      name: "lenet" or "cifar_cnn".
      model: the flax module.
      params: its params (a pytree of jax arrays).
      logits: jitted ``(params, x_nhwc) -> logits``.
      torch_model: the PyTorch twin (eval mode, NCHW input).
      data: path of the npz dataset.
      max_logit_diff: max |logits_jax - logits_torch| on the check batch.
    """

    name: str
    model: Any
    params: Any
    logits: Callable
    torch_model: Any
    data: str
    max_logit_diff: float = float("nan")

    def logits_fn(self, params=None):
        """``x -> logits`` closing over ``params`` (defaults to the trained ones)."""
        p = self.params if params is None else params
        return lambda x: self.model.apply({"params": p}, x)


def load(name: str, check_n: int = 256, tol: float = 1e-4) -> Bundle:
    """Loads (training and caching first if needed) model ``name`` and its PyTorch twin; checks the logits."""
    from robustjax import models

    if name not in SPECS:
        raise ValueError(f"unknown benchmark model {name!r}; choose from {sorted(SPECS)}")
    path = _cache_file(name)
    if not os.path.exists(path):
        train_and_cache(name)
    with np.load(path) as f:
        flat = {k: jnp.asarray(f[k]) for k in f.files}
    params = traverse_util.unflatten_dict(flat, sep="/")
    spec = SPECS[name]
    model = models.make(spec["model"], 10)
    if name == "lenet":
        tm = torch_lenet()
        copy_to_torch(params, tm, {"fc1": (7, 7, 64)})
        data = MNIST
    else:
        tm = torch_convpool()
        copy_to_torch(params, tm)
        data = CIFAR
    logits = jax.jit(lambda p, x: model.apply({"params": p}, x))
    b = Bundle(name, model, params, logits, tm, data)
    b.max_logit_diff = check_equivalence(b, check_n, tol)
    return b


def load_lenet() -> Bundle:
    return load("lenet")


def torch_logits(model, x_nhwc: np.ndarray) -> np.ndarray:
    torch = _torch()
    with torch.no_grad():
        return model(torch.from_numpy(nchw(x_nhwc))).numpy()


def check_equivalence(b: Bundle, n: int = 256, tol: float = 1e-4) -> float:
    """Max |logit difference| between the flax model and its PyTorch twin on ``n`` test images (relative
    to max(1, |logit|)); raises if it exceeds ``tol``."""
    x, _ = load_test(b.data, n)
    lj = np.asarray(b.logits(b.params, jnp.asarray(x)))
    lt = torch_logits(b.torch_model, x)
    diff = float(np.max(np.abs(lj - lt) / np.maximum(1.0, np.abs(lj))))
    if not diff <= tol:
        raise AssertionError(f"{b.name}: flax and PyTorch logits differ by {diff:.2e} (> {tol}); weight copy is wrong")
    return diff


def accuracy(b: Bundle, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    hits = 0
    for i in range(0, len(x), batch):
        hits += int(np.sum(np.argmax(np.asarray(b.logits(b.params, jnp.asarray(x[i:i + batch]))), -1) == y[i:i + batch]))
    return hits / len(x)


# ----------------------------------------------------------------------------------------------------------
# Timing and the machine
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
    """One runner's times from :func:`interleaved`, in seconds."""

    first: float          # the warm-up call (compilation included)
    times: list[float]    # the timed calls

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleaved(runners: dict[Any, Callable[[], Any]], repeats: int, outputs: dict | None = None) -> dict[Any, Timing]:
    """One warm-up call of each runner, then ``repeats`` rounds that call and time every runner once.

    Round-robin rather than one runner after another, so that load from other processes on a shared
    machine spreads evenly over the runners being compared. Every call is waited for
    (``jax.block_until_ready`` on its result; torch and numpy results are ready on return). ``outputs``,
    when given, receives each runner's warm-up result (e.g. the adversarial batch, to score it).
    """
    first, times = {}, {k: [] for k in runners}
    for k, fn in runners.items():
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        first[k] = time.perf_counter() - t0
        if outputs is not None:
            outputs[k] = out
    for _ in range(repeats):
        for k, fn in runners.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t0)
    return {k: Timing(first[k], times[k]) for k in runners}


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "torch", "torchattacks", "foolbox", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def git_rev() -> str:
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_lines(command: str) -> list[str]:
    """Markdown lines: command, date, machine, versions, load average."""
    v = versions()
    return [
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} (git {git_rev()}, uncommitted changes possible)",
        f"- Machine: {os.cpu_count()} CPU cores ({cpu_model()}), {platform.system()} {platform.machine()}; no GPU",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Threads: torch.set_num_threads({TORCH_THREADS}); JAX/XLA uses both cores by default",
    ]


def write_section(path: str, title: str, body: str) -> None:
    """Replaces (or appends) the ``## title`` section of a markdown file, leaving other sections alone."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    lines = text.split("\n")
    header = f"## {title}"
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    new = [header, ""] + body.rstrip("\n").split("\n") + [""]
    if start is None:
        if lines and lines[-1] != "":
            lines.append("")
        lines += new
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + new + lines[end:]
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    for n in sys.argv[1:] or ["lenet"]:
        b = load(n)
        x, y = load_test(b.data, 1000)
        print(f"{n}: clean accuracy on first 1000 test images {accuracy(b, x, y):.4f}; "
              f"max relative logit diff flax vs torch {b.max_logit_diff:.2e}")
