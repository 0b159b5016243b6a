"""Adversarial attacks as pure functions of a logits function (jax, jax.numpy, optax and chex only).

    from robustjax import attacks
    x_adv = attacks.pgd(logits_fn, x, y, key, eps=0.3, step_size=0.01, num_steps=40)
    acc = jnp.mean(jnp.argmax(logits_fn(x_adv), -1) == y)

Every attack is ``attack(logits_fn, x, y, key, **hyperparameters) -> x_adv`` (images in ``bounds``,
default [0, 1]; ``stop_gradient`` of the adversarial batch, inside the box even when ``x`` is not). See
``core`` for losses and projections, ``spec`` for attacks described as dicts (``attacks.resolve``).

Input checks, and how to turn them on under ``jax.jit``:

* Static problems raise a ValueError at trace time, jitted or not: ``x`` not a floating-point batch
  ``[B, ...]`` (a single HWC image is told to add its batch axis, ``x[None]``; an NCHW-looking batch that
  the model rejects gets an NCHW -> NHWC hint), ``y`` not integer labels ``[B]``, an unknown norm, loss or
  component, a bad loop count.
* Loop counts (``num_steps``, ``restarts``, ``num_queries``, ``binary_search_steps``, ``num_targets``,
  ``eot_iter``, ``chunk_size``, ...) follow one rule (``core.validate_count``): a Python int ``>= 1``
  (numpy integers accepted; bools, floats such as ``2.0`` and arrays refused). The one exception is
  ``minimal_fgsm``'s ``num_bisection``, which may be 0.
* Value problems (NaN/inf pixels, pixels outside ``bounds``, labels outside ``[0, K)``, negative or NaN
  ``eps``/step sizes/other hyperparameters, an infinite eps where the attack needs a finite one) raise a
  ValueError when the values are concrete (eager calls, constants). On traced values they are
  ``jax.experimental.checkify.debug_check``s: a plain ``jax.jit`` compiles them away (the same XLA
  program as without them; ``tests/test_attacks_checks.py`` pins it), and ``checkify`` reports them::

      from jax.experimental import checkify
      checked = jax.jit(checkify.checkify(robust_accuracy))   # default errors=checkify.user_checks
      err, acc = checked(params, x, y, key)
      err.throw()   # JaxRuntimeError: pgd: labels must be in [0, 10) (num_classes from the logits), ...

  ``checkify.checkify`` of an already jitted function works the same way. Cost when on: a few reductions
  over ``x``, ``y`` and ``eps`` per attack call (one pass over the batch, next to the attack's many
  forward and backward passes), and an error value carried out of the compiled function.
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
