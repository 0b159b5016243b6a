"""The Defense contract, the per-network train state, and optimizers built from config.

A defense is data: how to initialise every network, the phases of training (each a pure train step the
loop jits), and what an attacker sees end to end::

    defense = defenses.make(config, info, steps_per_epoch)
    state = defense.init(key, sample_batch)        # {"classifier": TrainState, ...}: one per network
    logits_fn = defense.classifier(state)          # the deployed classifier: x in [0, 1] -> logits
    attack_fn = defense.attack_model(state)        # what gradient attacks differentiate (BPDA if needed)

The parts, and who uses them:

- ``networks``: the names of the state's entries, one :class:`TrainState` each (``classifier``;
  ``generator``, ``discriminator``, ...). ``config.train.optimizers.<name>`` may override the optimizer
  of each; any other name there is a typo and is refused before training.
- ``classifier(state)``: the model as deployed, whose predictions are scored: ``x -> logits``, or
  ``(x, key) -> logits`` when ``stochastic`` (a randomised defense: the evaluation draws a fresh key per
  batch, and attacks that support it average gradients over draws: expectation over transformation).
- ``surrogate(state)``: for a deployed classifier that is not usefully differentiable (a quantizer, an
  inner optimisation), a differentiable stand-in of the same signature. The attacker then uses
  :func:`bpda`: the deployed classifier's outputs with the surrogate's gradients (Athalye et al.'s
  Backward Pass Differentiable Approximation). Without a surrogate the attacker differentiates the
  deployed classifier itself.
- ``detector``: a :class:`Detector`, for defenses that flag inputs as adversarial (GanDef-Comb).
- ``samples`` / ``reconstruct`` (optional, only read by the report's ``samples`` figure,
  ``robustjax/evaluate/figures.py``): a defense with a generator shows what it makes.
  ``samples(state, key, n)`` returns ``n`` generated images ``[n, H, W, C]`` inside the pixel box (a GAN
  that generates from noise, e.g. BCGAN's boundary samples); ``reconstruct(state)`` returns the
  image-to-image network ``x -> G(x)`` in eval mode (ATGAN's generator), drawn for clean and adversarial
  ``x``. Neither is ever trained on or attacked.

Two choices of this contract, and why:
- ``make`` takes the dataset's ``DataInfo`` and ``steps_per_epoch`` besides the config: a phase's length
  and an epoch-based learning-rate schedule (ATGAN's SVHN discriminator decays at epochs 20 and 30) can
  only be turned into steps once the data is known.
- ``Phase.train_step`` takes the step's key already folded with the global step by the loop, so a defense
  never has to know where it is in the run; it splits that key into named keys itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from robustjax.types import Array, Batch, LogitsFn, Metrics, PRNGKey, PyTree, ScoreFn

State = PyTree  # a dict of TrainState, one per network: {"classifier": ..., "generator": ...}


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stage of training: ``num_steps`` calls of a pure ``train_step``.

    ``train_step(state, batch, key) -> (state, metrics)`` must be jit-able; the loop jits it once with
    the state donated. ``metrics`` is a flat dict of scalars.
    """

    name: str
    num_steps: int
    train_step: Callable[[State, Batch, PRNGKey], tuple[State, Metrics]]


@dataclasses.dataclass(frozen=True)
class Detector:
    """A detector head and its decision rule.

    ``score(state)`` is ``x -> score [B]`` (higher = more likely adversarial); an input is *flagged* when
    ``score > threshold``. Score in log-odds (a logit), not a sigmoid probability: in float32 a sigmoid is
    exactly 1 beyond a logit of ~17, which hands an adaptive attacker a zero gradient. Scoring rule of a defense with a detector (GanDef's "Comb" setting): a flagged
    adversarial input counts as handled correctly, a flagged clean input as an error, and an input that
    is not flagged is judged by the classifier's prediction. An adaptive attacker must fool both at once
    (Carlini and Wagner's combined logits, :meth:`combined_logits`).
    """

    score: Callable[[State], ScoreFn]
    threshold: float = 0.5

    def flags(self, state: State, x: Array) -> Array:
        """``[B]`` bool: the inputs the detector flags."""
        return self.score(state)(x) > self.threshold

    def combined_logits(self, state: State, logits_fn: LogitsFn, y: Array) -> LogitsFn:
        """``x -> logits [B, K]`` for an adaptive attack on classifier and detector together.

        The true class's logit becomes ``max(z_y, d)`` with ``d = (score - threshold) * (1 + max_k |z_k|)
        + max_k z_k``: once the input is flagged, ``d`` exceeds every logit and the true class wins, so an
        untargeted attack on these logits must change the prediction *and* stay below the threshold (the
        detector-bypass construction of Carlini and Wagner, folded into the true class because detection
        counts as a correct answer here).
        """

        def combined(x):
            z = logits_fn(x)
            d = (self.score(state)(x) - self.threshold) * (1.0 + jnp.max(jnp.abs(z), axis=-1)) + jnp.max(z, axis=-1)
            true = jax.nn.one_hot(y, z.shape[-1], dtype=bool)
            return jnp.where(true, jnp.maximum(z, d[:, None]), z)

        return combined


def bpda(forward: Callable, backward: Callable) -> Callable:
    """A function with ``forward``'s values and ``backward``'s gradients (straight-through / BPDA).

    ``bpda(f, g)(*args) = g(*args) + stop_gradient(f(*args) - g(*args))``: equal to ``f`` in value, and
    every derivative is ``g``'s. Used for defenses whose deployed classifier is not usefully
    differentiable: the attacker steps along the surrogate's gradient but is judged by the real model.
    """

    def fn(*args):
        approx = backward(*args)
        return approx + jax.lax.stop_gradient(forward(*args) - approx)

    return fn


@dataclasses.dataclass(frozen=True)
class Defense:
    """Everything a training method is, as data (see the module docstring)."""

    name: str
    init: Callable[[PRNGKey, Batch], State]
    phases: tuple[Phase, ...]
    classifier: Callable[[State], LogitsFn]
    networks: tuple[str, ...] = ("classifier",)
    surrogate: Callable[[State], LogitsFn] | None = None
    stochastic: bool = False
    detector: Detector | None = None
    samples: Callable[[State, PRNGKey, int], Array] | None = None
    reconstruct: Callable[[State], Callable[[Array], Array]] | None = None

    def attack_model(self, state: State, adaptive: bool = True) -> LogitsFn:
        """What a gradient attack differentiates: the deployed classifier, or (``adaptive`` and a
        ``surrogate`` exists) the BPDA combination of both. ``adaptive=False`` gives the naive attacker,
        who differentiates the deployed classifier as it is (through a quantizer: zero gradients)."""
        if adaptive and self.surrogate is not None:
            return bpda(self.classifier(state), self.surrogate(state))
        return self.classifier(state)


class TrainState(train_state.TrainState):
    """flax's TrainState plus BatchNorm statistics and an optional EMA of the parameters.

    ``batch_stats`` is ``{}`` for networks without BatchNorm. ``ema_params`` is ``None`` unless
    ``ema_decay > 0``; when present, :func:`eval_variables` uses it for evaluation.

    The EMA starts at the initial parameters and warms up: update ``t`` (1, 2, ...) uses the decay
    ``min(ema_decay, (1 + t) / (10 + t))``, the ``num_updates`` rule of TensorFlow's
    ``ExponentialMovingAverage``, so the average covers roughly the last tenth of training until
    ``ema_decay`` takes over (at 0.998, after about 4,500 updates). Without it a short run deploys a
    mixture with its random initial weights: ``ema_decay ** t`` of them, 21% after 780 updates at 0.998.
    """

    batch_stats: Any = dataclasses.field(default_factory=dict)
    ema_params: Any = None
    ema_decay: float = flax.struct.field(pytree_node=False, default=0.0)

    def apply_gradients(self, *, grads, **kwargs):
        new = super().apply_gradients(grads=grads, **kwargs)
        if self.ema_decay > 0 and self.ema_params is not None:
            t = jnp.asarray(new.step, jnp.float32)
            d = jnp.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))
            ema = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), self.ema_params, new.params)
            new = new.replace(ema_params=ema)
        return new


def create_train_state(
    module: nn.Module,
    key: PRNGKey,
    sample_x: Array,
    tx: optax.GradientTransformation,
    ema_decay: float = 0.0,
) -> TrainState:
    """Initialises ``module`` on ``sample_x`` (eval mode) and wraps it with its optimizer."""
    variables = module.init({"params": key, "dropout": key}, sample_x, train=False)
    params = variables["params"]
    return TrainState.create(
        apply_fn=module.apply,
        params=params,
        tx=tx,
        batch_stats=variables.get("batch_stats", {}),
        ema_params=params if ema_decay > 0 else None,
        ema_decay=float(ema_decay),
    )


def eval_variables(state: TrainState, params: PyTree | None = None) -> dict:
    """The variables for inference: EMA weights when kept, else ``params`` (default: the state's)."""
    if params is None:
        params = state.ema_params if state.ema_params is not None else state.params
    variables = {"params": params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    return variables


def eval_logits_fn(state: TrainState, params: PyTree | None = None) -> LogitsFn:
    """``x -> logits`` in eval mode (BatchNorm uses running statistics, no dropout).

    This is what attacks see during training and evaluation: the model in the mode it is deployed in.
    """
    variables = eval_variables(state, params)
    return lambda x: state.apply_fn(variables, x, train=False)


def train_apply(
    state: TrainState, params: PyTree, x: Array, key: PRNGKey, **kwargs
) -> tuple[Array, PyTree]:
    """Runs the network in train mode; returns (output, new batch_stats)."""
    variables = {"params": params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
        out, updates = state.apply_fn(
            variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"], **kwargs
        )
        return out, updates["batch_stats"]
    out = state.apply_fn(variables, x, train=True, rngs={"dropout": key}, **kwargs)
    return out, state.batch_stats


def cross_entropy(logits: Array, labels: Array, label_smoothing: float = 0.0) -> Array:
    """Mean softmax cross-entropy with optional label smoothing; the number of classes comes from logits."""
    num_classes = logits.shape[-1]
    onehot = jax.nn.one_hot(labels, num_classes)
    if label_smoothing:
        onehot = optax.smooth_labels(onehot, label_smoothing)
    return optax.softmax_cross_entropy(logits, onehot).mean()


def accuracy(logits: Array, labels: Array) -> Array:
    return jnp.mean(jnp.argmax(logits, -1) == labels)


# ----------------------------------------------------------------------------------------------
# Optimizers and schedules from config.

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "cosine")


def make_schedule(spec: Mapping[str, Any], steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """Learning-rate schedule from ``spec`` (``learning_rate``, ``schedule``, ``decay_epochs``,
    ``decay_factor``, ``warmup_epochs``); epochs are turned into steps with ``steps_per_epoch``."""
    lr = float(spec["learning_rate"])
    kind = spec.get("schedule", "constant")
    warmup = int(round(float(spec.get("warmup_epochs", 0.0)) * steps_per_epoch))
    if kind == "constant":
        sched = optax.constant_schedule(lr)
    elif kind == "step":
        factor = float(spec.get("decay_factor", 0.1))
        boundaries = {
            int(round(float(e) * steps_per_epoch)) - warmup: factor for e in spec.get("decay_epochs", ())
        }
        sched = optax.piecewise_constant_schedule(lr, boundaries)
    elif kind == "cosine":
        sched = optax.cosine_decay_schedule(lr, max(1, total_steps - warmup))
    else:
        raise ValueError(f"optimizer schedule {kind!r} is not one of {SCHEDULES}")
    if warmup > 0:
        sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
    return sched


def make_optimizer(
    spec: Mapping[str, Any], steps_per_epoch: int, total_steps: int
) -> optax.GradientTransformation:
    """An optax optimizer from a plain-values spec.

    Fields: ``name`` (adam | adamw | sgd), ``learning_rate``, ``b1``, ``b2`` (Adam), ``momentum``,
    ``nesterov`` (SGD), ``weight_decay`` (decoupled for adamw, L2-added-to-gradient otherwise),
    ``grad_clip`` (global norm, 0 = off) and the schedule fields of :func:`make_schedule`.
    """
    name = spec.get("name", "adam")
    sched = make_schedule(spec, steps_per_epoch, total_steps)
    wd = float(spec.get("weight_decay", 0.0))
    parts = []
    if float(spec.get("grad_clip", 0.0)) > 0:
        parts.append(optax.clip_by_global_norm(float(spec["grad_clip"])))
    if name == "adam":
        if wd:
            parts.append(optax.add_decayed_weights(wd))
        parts.append(optax.adam(sched, b1=float(spec.get("b1", 0.9)), b2=float(spec.get("b2", 0.999))))
    elif name == "adamw":
        parts.append(
            optax.adamw(sched, b1=float(spec.get("b1", 0.9)), b2=float(spec.get("b2", 0.999)), weight_decay=wd)
        )
    elif name == "sgd":
        if wd:
            parts.append(optax.add_decayed_weights(wd))
        momentum = float(spec.get("momentum", 0.0))
        parts.append(optax.sgd(sched, momentum=momentum or None, nesterov=bool(spec.get("nesterov", False))))
    else:
        raise ValueError(f"optimizer name {name!r} is not one of {OPTIMIZERS}")
    return optax.chain(*parts) if len(parts) > 1 else parts[0]
