"""Small parts that defenses compose: step counts, optimizers per network, a supervised update.

    tx = optimizer_for(config, "classifier", steps_per_epoch, total_steps)
    state, metrics = supervised_update(state, x, y, key)             # one SGD step on (x, y)
    x_mixed = mix_adversarial(x, x_adv, fraction=0.5)                 # FracAT / Goodfellow-style mix
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from robustjax.defenses.base import TrainState, accuracy, cross_entropy, make_optimizer, train_apply
from robustjax.types import Array, Metrics, PRNGKey


def _plain(d: Any) -> dict:
    return d.to_dict() if hasattr(d, "to_dict") else dict(d)


def train_num_steps(config, steps_per_epoch: int) -> int:
    """Training steps of the main phase: ``config.train.steps`` if > 0, else epochs x steps_per_epoch."""
    steps = int(config.train.get("steps", 0) or 0)
    if steps > 0:
        return steps
    return max(1, int(round(float(config.train.epochs) * steps_per_epoch)))


def optimizer_spec(config, network: str) -> dict:
    """``config.train.optimizer`` updated with ``config.train.optimizers[network]`` (if given)."""
    spec = _plain(config.train.optimizer)
    per_network = config.train.get("optimizers", None)
    if per_network is not None and network in per_network:
        spec.update(_plain(per_network[network]))
    return spec


def optimizer_for(config, network: str, steps_per_epoch: int, total_steps: int) -> optax.GradientTransformation:
    return make_optimizer(optimizer_spec(config, network), steps_per_epoch, total_steps)


def supervised_update(
    state: TrainState,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    label_smoothing: float = 0.0,
    extra_loss: Callable[[Array, Array], Array] | None = None,
) -> tuple[TrainState, Metrics]:
    """One optimizer step of a classifier on (x, y) with cross-entropy (train mode: BN stats update).

    ``extra_loss(logits, params)`` may add a regulariser (logit pairing, VAT, ...).
    """

    def loss_fn(params):
        logits, new_stats = train_apply(state, params, x, key)
        loss = cross_entropy(logits, y, label_smoothing)
        total = loss + (extra_loss(logits, params) if extra_loss is not None else 0.0)
        return total, (logits, new_stats, loss)

    (total, (logits, new_stats, ce)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=new_stats)
    return state, {"loss": total, "ce": ce, "accuracy": accuracy(logits, y)}


def mix_adversarial(x: Array, x_adv: Array, fraction: float) -> Array:
    """The first ``round(fraction * B)`` examples adversarial, the rest clean (static fraction)."""
    if fraction >= 1.0:
        return x_adv
    if fraction <= 0.0:
        return x
    n_adv = int(round(fraction * x.shape[0]))
    mask = (jnp.arange(x.shape[0]) < n_adv).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x_adv, x)


def ramp(value: float, step: Array, ramp_steps: int) -> Array:
    """``value`` scaled linearly from 0 to 1 over ``ramp_steps`` (an eps curriculum); constant if 0."""
    if ramp_steps <= 0:
        return jnp.asarray(value, jnp.float32)
    return value * jnp.minimum(1.0, (step.astype(jnp.float32) + 1.0) / float(ramp_steps))


def as_dict(cfg: Any) -> Mapping[str, Any]:
    return _plain(cfg)
