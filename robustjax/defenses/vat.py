"""Virtual adversarial training (VAT, Miyato et al.): cross-entropy plus ``alpha`` times the KL between the
prediction at ``x`` and at ``x + r_adv``, the L2 direction of radius ``eps`` that changes it most.

    defense = vat.make(config, info, steps_per_epoch)
    r = vat.virtual_adversarial_perturbation(logits_fn, x, logits, key, eps=2.1, xi=1e-6, power_iterations=1)

``r_adv`` needs no label ("virtual"): with ``p = softmax(f(x))`` held fixed, ``D(r) = KL(p || softmax(f(x +
r)))`` has a minimum 0 at ``r = 0``, so its steepest direction is the top eigenvector of its Hessian there.
Power iteration finds it from a random unit ``d``: ``d <- grad_r D(r)`` at ``r = xi * d`` (a finite-
difference Hessian-vector product), ``power_iterations`` times; then ``r_adv = eps * d / ||d||_2`` per
example. The loss is ``CE(f(x), y) + alpha * mean_i D_i(r_adv_i)``, with ``r_adv`` and ``p`` constants.

As in Miyato et al.'s code, the forward passes at ``x + r`` run the network in train mode and do not
update BatchNorm's running statistics; only the clean pass does. Chosen here: every pass uses the step's
dropout key (the same mask), so the KL measures the change of the input alone. ``r_adv`` is a regulariser,
not an attack: ``x + r_adv`` is not clipped to the pixel range, so its norm is exactly ``eps``.

Config (``config.defense``): ``eps`` (2.1, L2, pixel units: Zantedeschi et al.'s setting, from Miyato et
al.), ``xi`` (1e-6, Miyato et al.'s), ``power_iterations`` (1), ``alpha`` (1.0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import accuracy, cross_entropy

FIELDS = {
    "name": fields.Field(),
    "eps": fields.Field(2.1, fields.number(0.0, lo_open=True), "L2 radius of r_adv (pixel units)"),
    "xi": fields.Field(1e-6, fields.number(0.0, lo_open=True),
                       "finite-difference radius of the power iteration"),
    "power_iterations": fields.Field(1, fields.integer(1), "power-iteration steps for r_adv's direction"),
    "alpha": fields.Field(1.0, fields.number(0.0), "weight of the VAT loss added to the cross-entropy"),
}
NETWORKS = ("classifier",)


def l2_normalize(d):
    """Each example of ``d`` scaled to L2 norm 1 (0 stays 0); max-abs first, so tiny gradients survive."""
    axes = tuple(range(1, d.ndim))
    d = d / (jnp.max(jnp.abs(d), axis=axes, keepdims=True) + 1e-12)
    return d / jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True) + 1e-12)


def virtual_adversarial_perturbation(logits_fn, x, logits, key, *, eps, xi, power_iterations):
    """``r_adv`` ``[B, ...]`` (per-example L2 norm ``eps``) for ``logits_fn`` at ``x`` (``logits = f(x)``)."""
    clean = jax.lax.stop_gradient(logits)

    def divergence(d):
        return jnp.sum(common.kl_divergence(clean, logits_fn(x + d)))

    d = jax.random.normal(key, x.shape, x.dtype)
    for _ in range(int(power_iterations)):
        d = jax.grad(divergence)(xi * l2_normalize(d))
    return jax.lax.stop_gradient(eps * l2_normalize(d))


def objective(*, eps: float, xi: float, power_iterations: int, alpha: float) -> supervised.Objective:
    """``CE(f(x), y) + alpha * mean_i KL(p(x_i) || p(x_i + r_adv_i))`` (see the module docstring)."""

    def fn(apply, params, batch_stats, batch, x_adv, key):
        x, y = batch["image"], batch["label"]
        k_net, k_dir = jax.random.split(key)
        logits, new_stats = apply(params, batch_stats, x, k_net)
        # the perturbed passes: the same train-mode network; BatchNorm's running statistics left alone
        perturbed = lambda p: (lambda v: apply(p, batch_stats, v, k_net)[0])  # noqa: E731
        r_adv = virtual_adversarial_perturbation(perturbed(jax.lax.stop_gradient(params)), x, logits, k_dir,
                                                 eps=eps, xi=xi, power_iterations=power_iterations)
        vat_loss = jnp.mean(common.kl_divergence(jax.lax.stop_gradient(logits), perturbed(params)(x + r_adv)))
        ce = cross_entropy(logits, y)
        r_norm = jnp.mean(jnp.sqrt(jnp.sum(jnp.square(r_adv).reshape(x.shape[0], -1), axis=1)))
        return ce + alpha * vat_loss, new_stats, {"ce": ce, "vat": vat_loss, "r_adv_norm": r_norm,
                                                  "accuracy": accuracy(logits, y)}

    return fn


def make(config, info, steps_per_epoch: int):
    hp = fields.read(config.defense, FIELDS, "config.defense")
    return supervised.make(config, info, steps_per_epoch, name="vat", hp=hp,
                           objective=objective(eps=hp["eps"], xi=hp["xi"], power_iterations=hp["power_iterations"],
                                               alpha=hp["alpha"]))
