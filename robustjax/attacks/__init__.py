"""Adversarial attacks as pure functions of a logits function (jax, jax.numpy, optax and chex only).

    from robustjax import attacks
    x_adv = attacks.pgd(logits_fn, x, y, key, eps=0.3, step_size=0.01, num_steps=40)
    acc = jnp.mean(jnp.argmax(logits_fn(x_adv), -1) == y)

Every attack is ``attack(logits_fn, x, y, key, **hyperparameters) -> x_adv`` (images in ``bounds``,
default [0, 1]; ``stop_gradient`` of the adversarial batch). See ``core`` for losses and projections.
"""

from robustjax.attacks.core import (
    LOSSES,
    NORMS,
    ce_loss,
    clip_box,
    dlr_loss,
    dlr_targeted_loss,
    get_loss,
    input_gradient,
    is_success,
    loss_and_grad,
    lp_norm,
    margin_loss,
    normalize,
    project,
    project_l2,
    project_linf,
    validate_inputs,
)
from robustjax.attacks.apgd import apgd
from robustjax.attacks.autoattack import autoattack
from robustjax.attacks.fab import fab
from robustjax.attacks.gradient import bim, fgm, fgsm, mim, pgd, rand_fgsm
from robustjax.attacks.jsma import jsma
from robustjax.attacks.minimal import cw_l2, deepfool
from robustjax.attacks.search import minimal_eps, minimal_fgsm
from robustjax.attacks.spec import ATTACKS, BUDGET_ATTACKS, MINIMAL_ATTACKS, Attack, get_attack, resolve
from robustjax.attacks.square import square
from robustjax.attacks.xla_cpu import canonicalize_convs

__all__ = [
    "ATTACKS",
    "Attack",
    "BUDGET_ATTACKS",
    "LOSSES",
    "MINIMAL_ATTACKS",
    "NORMS",
    "apgd",
    "autoattack",
    "bim",
    "canonicalize_convs",
    "ce_loss",
    "clip_box",
    "cw_l2",
    "deepfool",
    "dlr_loss",
    "dlr_targeted_loss",
    "fab",
    "fgm",
    "fgsm",
    "get_attack",
    "get_loss",
    "input_gradient",
    "is_success",
    "jsma",
    "loss_and_grad",
    "lp_norm",
    "margin_loss",
    "mim",
    "minimal_eps",
    "minimal_fgsm",
    "normalize",
    "pgd",
    "project",
    "project_l2",
    "project_linf",
    "rand_fgsm",
    "resolve",
    "square",
    "validate_inputs",
]
