"""Small parts that defenses compose: step counts, optimizers per network, FracAT mixing, curricula.

    tx = optimizer_for(config, "classifier", steps_per_epoch, total_steps)
    x_mixed = mix_adversarial(x, x_adv, fraction=0.5)                 # FracAT / Goodfellow-style mix
    eps_now = ramp(0.3, state.step, ramp_steps)                       # a linear eps curriculum
    kl = kl_divergence(clean_logits, adv_logits)                      # [B]: KL(p_clean || p_adv)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from robustjax.defenses import fields
from robustjax.defenses.base import make_optimizer
from robustjax.types import Array


def _plain(d: Any) -> dict:
    return dict(fields.plain(d))


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


def kl_divergence(p_logits: Array, q_logits: Array) -> Array:
    """Per-example ``KL(softmax(p_logits) || softmax(q_logits))`` ``[B]`` (TRADES, VAT)."""
    log_p = jax.nn.log_softmax(p_logits)
    return jnp.sum(jnp.exp(log_p) * (log_p - jax.nn.log_softmax(q_logits)), axis=-1)
