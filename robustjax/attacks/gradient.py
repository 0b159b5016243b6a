"""Fixed-budget gradient attacks: FGSM, FGM, R+FGSM, BIM, PGD and MIM.

    from robustjax import attacks
    pgd40 = jax.jit(functools.partial(attacks.pgd, logits_fn, eps=0.3, step_size=0.01, num_steps=40))
    x_adv = pgd40(x, y, key)

Every function is ``attack(logits_fn, x, y, key, **hyperparameters) -> x_adv`` with ``x_adv`` a
``stop_gradient``-ed batch inside the ``eps`` ball and the ``bounds`` box. ``eps`` and ``step_size`` are traced
values (scalars or per-example ``[B]``), so one compiled function serves a whole eps grid; everything that
changes shapes or loop counts (``num_steps``, ``restarts``, ``norm``, ``loss``, ``targeted``) is static.
The functions are not jitted themselves: jit them (or the train step that calls them) yourself, so that
``logits_fn`` can close over parameters without baking them into a cache entry. Iterative attacks run
their loop inside XLA (see ``_iterate`` and docs/attack_speed_notes.md for the chosen loop form).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.attacks import core, xla_cpu
from robustjax.types import Array, LogitsFn, LossFn, PRNGKey

# Loop form for the iterative attacks when ``unroll=None``: ``lax.fori_loop`` with this unroll factor and
# the body wrapped in ``xla_cpu.canonicalize_convs``. With canonical convolutions fori_loop, scan, full
# unrolling and a Python loop ran equally fast, and fori_loop compiled fastest (docs/attack_speed_notes.md).
DEFAULT_UNROLL = 1


def _iterate(body, init, num_steps: int, unroll: int | bool | None = None):
    """Runs ``carry = body(i, carry)`` ``num_steps`` times inside XLA.

    Args:
      body: ``(i, carry) -> carry``.
      init: initial carry.
      num_steps: static number of iterations.
      unroll: ``lax.fori_loop`` unroll factor; ``True`` unrolls fully; ``None`` uses ``DEFAULT_UNROLL``.
    """
    unroll = DEFAULT_UNROLL if unroll is None else unroll
    body = xla_cpu.canonicalize_convs(body)
    if unroll is True or (not isinstance(unroll, bool) and unroll >= num_steps):
        carry = init
        for i in range(num_steps):
            carry = body(jnp.asarray(i, jnp.int32), carry)
        return carry
    return jax.lax.fori_loop(0, num_steps, body, init, unroll=int(unroll))


def _check_common(name, logits_fn, x, y, eps, bounds, norm, norms, **positive):
    """Norm (static), then ``core.check_attack_inputs``; returns the number of classes."""
    core.validate_norm(norm, norms)
    return core.check_attack_inputs(name, logits_fn, x, y, eps=eps, bounds=bounds, **positive)


def _random_start(key: PRNGKey, x: Array, eps: Array, norm: str, bounds) -> Array:
    """A uniform point of the ``norm`` ball of radius ``eps`` around ``x``, clipped into the box.

    With ``eps = inf`` the radius is capped by the box's size (the box bounds the search anyway).
    """
    lo, hi = bounds
    width = jnp.asarray(hi - lo, x.dtype)
    if norm == "linf":
        radius = core.per_example(jnp.minimum(eps, width), x)
        delta = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * radius
    else:  # l2: direction uniform on the sphere, radius ~ eps * u^(1/d)
        dim = x[0].size
        k_dir, k_rad = jax.random.split(key)
        direction = core.normalize(jax.random.normal(k_dir, x.shape, x.dtype), "l2")
        u = jax.random.uniform(k_rad, (x.shape[0],), x.dtype)
        radius = jnp.minimum(eps, width * jnp.sqrt(jnp.asarray(dim, x.dtype))) * u ** (1.0 / dim)
        delta = direction * core.per_example(radius, x)
    return core.clip_box(x + delta, lo, hi)


def fgm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    eps: float | Array,
    norm: str = "l2",
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Fast gradient method: one steepest-ascent step of ``norm`` length ``eps``.

    ``norm="linf"`` is FGSM (``eps * sign(g)``); ``"l2"`` steps ``eps * g / ||g||_2``; ``"l1"`` puts the
    whole budget on the largest-magnitude gradient coordinate(s) (the optimal linear step in the L1 ball),
    then the box clip is applied.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: labels ``[B]`` (targets when ``targeted``).
      key: unused (deterministic attack), accepted for the common signature.
      eps: step length, scalar or ``[B]``.
      norm: ``"linf"``, ``"l2"`` or ``"l1"``.
      loss: ``"ce"``, ``"margin"``, ``"dlr"`` or a per-example loss function.
      targeted: descend the loss at ``y`` instead of ascending it.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    return _fgm("fgm", logits_fn, x, y, eps, norm, loss, targeted, bounds)


def _fgm(name, logits_fn, x, y, eps, norm, loss, targeted, bounds):
    _check_common(name, logits_fn, x, y, eps, bounds, norm, core.NORMS)
    loss_fn = core.get_loss(loss)
    _, _, g = core.loss_and_grad(logits_fn, loss_fn, x, y, targeted)
    x_adv = x + core.per_example(eps, x) * core.normalize(g, norm)
    return core.finish(x_adv, bounds)


def fgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    eps: float | Array,
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Goodfellow et al.'s fast gradient sign method: ``clip(x + eps * sign(grad_x loss))``.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: labels ``[B]`` (targets when ``targeted``: then ``x - eps * sign(grad)``).
      key: unused, accepted for the common signature.
      eps: L-inf budget, scalar or ``[B]``.
      loss: ``"ce"``, ``"margin"``, ``"dlr"`` or a per-example loss function.
      targeted: descend the loss at ``y``.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    return _fgm("fgsm", logits_fn, x, y, eps, "linf", loss, targeted, bounds)


RANDOM_INITS = ("sign", "gaussian")  # rand_fgsm's first step: Tramer et al.'s, or Zantedeschi et al.'s


def rand_fgsm(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    eps: float | Array,
    alpha: float | Array | None = None,
    random_init: str = "sign",
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Random + FGSM: a random first step of L-inf size at most ``alpha``, then FGSM of the budget left.

    ``random_init="sign"``: Tramer et al.'s R+FGSM ("Ensemble Adversarial Training: Attacks and Defenses", 2018),
    ``x' = clip(x + alpha * sign(N(0, I)))``, ``x_adv = clip(x' + (eps - alpha) * sign(grad loss(x')))``;
    ``alpha <= eps`` is required.

    ``random_init="gaussian"``: Zantedeschi et al.'s "Random + FGSM" ("Efficient Defenses Against
    Adversarial Attacks", 2017, Sec. 4.1: "FGSM applied after a preliminary step of adding Gaussian noise
    (within a range of alpha = 0.05); the random noise applied in the first step is deducted from the
    budget of the FGSM attack"). The paper gives no formula. Chosen here: with ``a = min(alpha, eps)``,
    ``x' = clip(x + clip(a * N(0, I), -a, a))`` (Gaussian noise of standard deviation ``a``, kept
    "within a range of" ``a``), then FGSM of ``eps - a`` from ``x'``. ``alpha`` is capped at ``eps``
    rather than refused, because the paper runs this attack over eps from 0.01 with alpha = 0.05 and says
    (Fig. 5) that for ``eps <= 0.05`` its examples "correspond to Gaussian noise": with the cap they are
    Gaussian noise of size ``eps``, and ``||x_adv - x||_inf <= eps`` always holds.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]``.
      y: labels ``[B]`` (targets when ``targeted``).
      key: PRNG key for the random step.
      eps: total L-inf budget, scalar or ``[B]``.
      alpha: random step size; default ``eps / 2`` (Tramer et al.'s choice). ``"sign"``: ``0 <= alpha <=
        eps``; ``"gaussian"``: ``alpha >= 0``, capped at ``eps``.
      random_init: ``"sign"`` or ``"gaussian"`` (static).
      loss: per-example loss name or function.
      targeted: descend the loss at ``y``.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    if random_init not in RANDOM_INITS:
        raise ValueError(f"rand_fgsm: random_init must be one of {list(RANDOM_INITS)}, got {random_init!r}.")
    if alpha is None:
        alpha = eps / 2
    _check_common("rand_fgsm", logits_fn, x, y, eps, bounds, "linf", ("linf",), alpha=alpha)
    loss_fn = core.get_loss(loss)
    noise = jax.random.normal(key, x.shape, x.dtype)
    if random_init == "sign":
        core.require((alpha, eps), lambda xp, a, e: xp.all(a <= e),
                     "rand_fgsm: alpha must be <= eps, got alpha - eps up to {:.4g}.",
                     lambda xp, a, e: (xp.max(a - e),))
        alpha_b = core.per_example(alpha, x)
        step = alpha_b * jnp.sign(noise)
    else:
        alpha_b = core.per_example(jnp.minimum(jnp.asarray(alpha, x.dtype), jnp.asarray(eps, x.dtype)), x)
        step = jnp.clip(alpha_b * noise, -alpha_b, alpha_b)
    x_rand = core.clip_box(x + step, *bounds)
    _, _, g = core.loss_and_grad(logits_fn, loss_fn, x_rand, y, targeted)
    x_adv = x_rand + (core.per_example(eps, x) - alpha_b) * jnp.sign(g)
    return core.finish(x_adv, bounds)


def _pgd_single(logits_fn, loss_fn, x, y, key, eps, step_size, num_steps, norm, random_start, targeted,
                bounds, unroll):
    """One PGD run; returns the final iterate."""
    x_adv = _random_start(key, x, eps, norm, bounds) if random_start else x
    step = core.per_example(step_size, x)

    def body(_, x_adv):
        _, _, g = core.loss_and_grad(logits_fn, loss_fn, x_adv, y, targeted)
        x_adv = x_adv + step * core.normalize(g, norm)
        return core.project(x_adv, x, eps, norm, bounds)

    return _iterate(body, x_adv, num_steps, unroll)


def _keep_best(logits_fn, loss_fn, y, targeted, best, candidate):
    """Per example, keep the candidate if it succeeds where the best does not, or ties and scores higher."""
    best_x, best_obj, best_ok = best
    logits = logits_fn(candidate)
    obj = (-1.0 if targeted else 1.0) * loss_fn(logits, y)
    ok = core.is_success(logits, y, targeted)
    better = (ok & ~best_ok) | ((ok == best_ok) & (obj > best_obj))
    x_new = jnp.where(core.per_example(better, candidate), candidate, best_x)
    return x_new, jnp.where(better, obj, best_obj), ok | best_ok


def pgd(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    eps: float | Array,
    step_size: float | Array,
    num_steps: int,
    norm: str = "linf",
    random_start: bool = True,
    restarts: int = 1,
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
    unroll: int | bool | None = None,
) -> Array:
    """Madry et al.'s projected gradient descent (ascent on the loss), L-inf or L2.

    Each step moves ``step_size`` along the steepest-ascent direction of ``norm`` (``sign(g)`` for L-inf,
    ``g / ||g||_2`` for L2) and projects back onto the ``eps`` ball and the box. With ``restarts > 1`` each
    restart starts from a fresh random point and every example keeps its worst case: an iterate that fools
    the model beats one that does not, then the higher loss wins. The final iterate of each run is used.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: labels ``[B]`` (targets when ``targeted``).
      key: PRNG key (random starts).
      eps: radius, scalar or ``[B]``; ``jnp.inf`` = unconstrained (box only). Traced, not static.
      step_size: step length in ``norm`` units, scalar or ``[B]``. Traced.
      num_steps: number of gradient steps (static).
      norm: ``"linf"`` or ``"l2"``.
      random_start: start from a uniform point of the ball (else from ``x``).
      restarts: number of runs (static); > 1 only makes sense with ``random_start``.
      loss: ``"ce"``, ``"margin"``, ``"dlr"`` or a per-example loss function.
      targeted: descend the loss at the targets ``y``.
      bounds: pixel range ``(lo, hi)``.
      unroll: loop form (``fori_loop`` unroll factor, ``True`` = fully unrolled; ``None`` = default).

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    return _pgd("pgd", logits_fn, x, y, key, eps, step_size, num_steps, norm, random_start, restarts, loss,
                targeted, bounds, unroll)


def _pgd(name, logits_fn, x, y, key, eps, step_size, num_steps, norm, random_start, restarts, loss, targeted,
         bounds, unroll):
    num_steps = core.validate_count(num_steps, "num_steps", name)
    restarts = core.validate_count(restarts, "restarts", name)
    _check_common(name, logits_fn, x, y, eps, bounds, norm, ("linf", "l2"), step_size=step_size)
    loss_fn = core.get_loss(loss)
    eps = jnp.asarray(eps, x.dtype)
    run = lambda k: _pgd_single(logits_fn, loss_fn, x, y, k, eps, step_size, num_steps, norm,
                                random_start, targeted, bounds, unroll)
    # Every iterate is projected into the box (num_steps >= 1), so the output needs no final clip.
    if restarts == 1:
        return jax.lax.stop_gradient(run(key))

    def restart(i, best):
        return _keep_best(logits_fn, loss_fn, y, targeted, best, run(jax.random.fold_in(key, i)))

    first = run(jax.random.fold_in(key, 0))
    init = _keep_best(logits_fn, loss_fn, y, targeted,
                      (first, jnp.full(y.shape, -jnp.inf, x.dtype), jnp.zeros(y.shape, bool)), first)
    best_x, _, _ = jax.lax.fori_loop(1, restarts, restart, init)
    return jax.lax.stop_gradient(best_x)


def bim(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    eps: float | Array,
    step_size: float | Array,
    num_steps: int,
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
    unroll: int | bool | None = None,
) -> Array:
    """Kurakin et al.'s basic iterative method: L-inf PGD from ``x`` itself (no random start).

    ``x_{t+1} = clip_box(clip_{x, eps}(x_t + step_size * sign(grad loss(x_t))))``.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]``.
      y: labels ``[B]`` (targets when ``targeted``; Kurakin's "iterative least-likely class" is
        ``targeted=True`` with ``y = argmin logits``).
      key: unused (deterministic), accepted for the common signature.
      eps: L-inf budget, scalar or ``[B]``.
      step_size: per-step change, scalar or ``[B]`` (Kurakin: 1/255).
      num_steps: number of steps (Kurakin: ``min(eps*255 + 4, 1.25 * eps*255)``).
      loss: per-example loss name or function.
      targeted: descend the loss at ``y``.
      bounds: pixel range ``(lo, hi)``.
      unroll: loop form, as in ``pgd``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    key = jax.random.key(0) if key is None else key  # unused: no random start
    return _pgd("bim", logits_fn, x, y, key, eps, step_size, num_steps, "linf", False, 1, loss, targeted, bounds,
                unroll)


def mim(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    eps: float | Array,
    step_size: float | Array,
    num_steps: int,
    decay: float | Array = 1.0,
    norm: str = "linf",
    loss: str | LossFn = "ce",
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
    unroll: int | bool | None = None,
) -> Array:
    """Dong et al.'s momentum iterative method (MI-FGSM), L-inf or L2.

    ``m_{t+1} = decay * m_t + g_t / ||g_t||_1`` (per example), then a step of ``step_size`` along
    ``sign(m)`` (L-inf) or ``m / ||m||_2`` (L2), projected onto the ``eps`` ball and the box. Starts at ``x``.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]``.
      y: labels ``[B]`` (targets when ``targeted``).
      key: unused (deterministic), accepted for the common signature.
      eps: radius, scalar or ``[B]``.
      step_size: step length, scalar or ``[B]`` (the paper: ``eps / num_steps``).
      num_steps: number of steps (static).
      decay: momentum factor ``mu`` (the paper: 1.0).
      norm: ``"linf"`` or ``"l2"``.
      loss: per-example loss name or function.
      targeted: descend the loss at ``y``.
      bounds: pixel range ``(lo, hi)``.
      unroll: loop form, as in ``pgd``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    del key
    num_steps = core.validate_count(num_steps, "num_steps", "mim")
    _check_common("mim", logits_fn, x, y, eps, bounds, norm, ("linf", "l2"), step_size=step_size,
                  decay=decay)
    loss_fn = core.get_loss(loss)
    eps = jnp.asarray(eps, x.dtype)
    step = core.per_example(step_size, x)
    decay = jnp.asarray(decay, x.dtype)

    def body(_, carry):
        x_adv, momentum = carry
        _, _, g = core.loss_and_grad(logits_fn, loss_fn, x_adv, y, targeted)
        g = g / core.per_example(jnp.maximum(core.lp_norm(g, "l1"), 1e-12), g)
        momentum = decay * momentum + g
        x_adv = core.project(x_adv + step * core.normalize(momentum, norm), x, eps, norm, bounds)
        return x_adv, momentum

    x_adv, _ = _iterate(body, (x, jnp.zeros_like(x)), num_steps, unroll)
    return jax.lax.stop_gradient(x_adv)  # projected into the box at every step
