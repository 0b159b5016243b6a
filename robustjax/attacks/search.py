"""Minimal-epsilon searches: the smallest budget at which an attack flips each prediction.

    from robustjax import attacks
    eps_fgsm = attacks.minimal_fgsm(logits_fn, x, y, eps_max=0.5)                # [B], inf = never flipped
    pgd10 = lambda f, x, y, k, eps: attacks.pgd(f, x, y, k, eps=eps, step_size=eps / 4, num_steps=10)
    eps_pgd = attacks.minimal_eps(pgd10, logits_fn, x, y, key, eps_hi=0.5, num_steps=10)

``minimal_fgsm`` is Zantedeschi et al.'s robustness metric (the smallest FGSM step that changes the
prediction); ``minimal_eps`` turns any fixed-budget attack that accepts a per-example ``eps`` ``[B]`` into a
per-example bisection. Both run their loops inside XLA and stop nothing early: every example is searched
in lock-step and its interval is updated by masking.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from robustjax.attacks import core, xla_cpu
from robustjax.types import Array, LogitsFn, LossFn, PRNGKey


def _bisect(fooled_at: Callable[[Array], Array], lo: Array, hi: Array, num_steps: int) -> Array:
    """Per-example bisection on ``[lo, hi]`` (``lo`` fails, ``hi`` fools); returns the final ``hi``."""

    def body(_, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        ok = fooled_at(mid)
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    return jax.lax.fori_loop(0, num_steps, body, (lo, hi))[1]


def minimal_fgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    eps_max: float = 1.0,
    num_grid: int = 32,
    num_bisection: int = 10,
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Smallest FGSM step ``eps`` that flips each prediction (Zantedeschi et al.'s robustness metric).

    The FGSM direction ``sign(grad loss(x))`` does not depend on ``eps``, so one gradient suffices: the
    line ``clip(x + eps * sign(g))`` is scanned on a grid of ``num_grid`` steps in ``(0, eps_max]`` (forward
    passes only), and the first grid cell where the prediction flips is refined by ``num_bisection`` halvings.
    The answer is within ``eps_max / num_grid / 2**num_bisection`` above a flip point.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: labels ``[B]`` (targets when ``targeted``: then the smallest step that reaches the target).
      key: unused, accepted for the common signature.
      eps_max: largest step searched.
      num_grid: number of grid points in ``(0, eps_max]`` (static).
      num_bisection: halvings of the first flipping grid cell (static).
      loss: loss whose gradient sign gives the direction.
      targeted: descend the loss at ``y`` and count reaching ``y`` as success.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``[B]`` minimal eps: ``0`` if already misclassified (untargeted), ``inf`` if no step up to ``eps_max``
      flips the prediction.
    """
    del key
    num_grid = core.validate_count(num_grid, "num_grid", "minimal_fgsm")
    # The one count that may be 0: no bisection leaves the grid's answer.
    num_bisection = core.validate_count(num_bisection, "num_bisection", "minimal_fgsm", minimum=0)
    core.check_attack_inputs("minimal_fgsm", logits_fn, x, y, bounds=bounds, eps_max=eps_max)
    core.require((eps_max,), lambda xp, e: xp.all(xp.isfinite(e)),
                 "minimal_fgsm: eps_max must be finite (the grid divides (0, eps_max]), got {:.4g}.",
                 lambda xp, e: (e,))
    loss_fn = core.get_loss(loss)
    _, logits, g = core.loss_and_grad(logits_fn, loss_fn, x, y, targeted)
    direction = jnp.sign(g)
    clean_ok = core.is_success(logits, y, targeted)

    def fooled_at(eps):
        x_adv = core.clip_box(x + core.per_example(eps, x) * direction, *bounds)
        return core.is_success(logits_fn(x_adv), y, targeted)

    eps_max = jnp.asarray(eps_max, x.dtype)
    cell = eps_max / num_grid

    def grid_step(found, i):
        ok = fooled_at(jnp.full(y.shape, cell * i, x.dtype))
        return jnp.where((found == 0) & ok, i, found), None

    first, _ = jax.lax.scan(grid_step, jnp.zeros(y.shape, jnp.int32), jnp.arange(1, num_grid + 1))
    hi = cell * first.astype(x.dtype)
    eps = _bisect(fooled_at, hi - cell, hi, num_bisection)
    eps = jnp.where(first > 0, eps, jnp.inf)
    return jax.lax.stop_gradient(jnp.where(clean_ok, 0.0, eps))


def minimal_eps(
    attack: Callable[..., Array],
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    eps_hi: float,
    eps_lo: float = 0.0,
    num_steps: int = 10,
    targeted: bool = False,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    return_adv: bool = False,
) -> Array | tuple[Array, Array]:
    """Per-example bisection for the smallest budget at which a fixed-budget attack succeeds.

    Runs ``attack(logits_fn, x, y, key, eps=eps_b)`` with a per-example ``eps_b`` ``[B]`` at ``eps_hi`` and
    then ``num_steps`` bisection midpoints (each with a fresh ``fold_in`` key), assuming success is
    monotone in eps (attack strength grows with the budget). Bind the other hyperparameters beforehand,
    e.g. ``lambda f, x, y, k, eps: pgd(f, x, y, k, eps=eps, step_size=eps / 4, num_steps=20)``; a step
    size proportional to eps keeps the attack equally strong at every radius.

    Args:
      attack: ``(logits_fn, x, y, key, eps=[B]) -> x_adv``; for ``targeted`` it must attack the targets ``y``.
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]``.
      y: labels ``[B]`` (targets when ``targeted``).
      key: PRNG key.
      eps_hi: largest budget searched.
      eps_lo: a budget assumed too small (the search interval's lower end).
      num_steps: bisection steps (static); the answer is within ``(eps_hi - eps_lo) / 2**num_steps``.
      targeted: count reaching ``y`` as success instead of leaving it.
      bounds: pixel range: inputs are checked against it and the returned batch clipped into it (``None``
        skips both).
      return_adv: also return the adversarial batch found at the returned eps (``x`` where none).

    Returns:
      ``[B]`` minimal eps (``0`` when already misclassified, ``inf`` when ``eps_hi`` is not enough), and
      with ``return_adv`` the matching adversarial batch.
    """
    if not callable(attack):
        raise ValueError(f"minimal_eps: attack must be a function (logits_fn, x, y, key, eps=[B]) -> x_adv, "
                         f"got {attack!r}.")
    num_steps = core.validate_count(num_steps, "num_steps", "minimal_eps")
    core.check_attack_inputs("minimal_eps", logits_fn, x, y, eps=eps_hi, bounds=bounds, eps_lo=eps_lo)
    core.require((eps_lo, eps_hi), lambda xp, lo, hi: xp.all(lo < hi),
                 "minimal_eps: need eps_lo < eps_hi, got eps_lo={:.4g}, eps_hi={:.4g}.", lambda xp, lo, hi: (lo, hi))

    def run(eps, i):
        x_adv = attack(logits_fn, x, y, jax.random.fold_in(key, i), eps=eps)
        return x_adv, core.is_success(logits_fn(x_adv), y, targeted)

    clean_ok = core.is_success(logits_fn(x), y, targeted)
    hi = jnp.full(y.shape, eps_hi, x.dtype)
    x_hi, hi_ok = run(hi, 0)

    def body(i, carry):
        lo, hi, best = carry
        mid = 0.5 * (lo + hi)
        x_mid, ok = run(mid, i + 1)
        best = jnp.where(core.per_example(ok, x), x_mid, best)
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi), best

    lo = jnp.full(y.shape, eps_lo, x.dtype)
    _, hi, best = jax.lax.fori_loop(0, num_steps, xla_cpu.canonicalize_convs(body), (lo, hi, x_hi))
    eps = jnp.where(clean_ok, 0.0, jnp.where(hi_ok, hi, jnp.inf))
    if not return_adv:
        return jax.lax.stop_gradient(eps)
    best = jnp.where(core.per_example(clean_ok | ~hi_ok, x), x, best)
    return jax.lax.stop_gradient(eps), core.finish(best, bounds)
