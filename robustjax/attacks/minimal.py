"""Minimal-perturbation attacks: DeepFool and Carlini-Wagner L2.

    from robustjax import attacks
    x_adv = jax.jit(lambda x, y: attacks.deepfool(logits_fn, x, y, None, num_steps=50))(x, y)
    norms = attacks.lp_norm(x_adv - x, "l2")      # per-example minimal L2 distance found

Both attacks look for the *smallest* perturbation that changes the prediction rather than the strongest
one inside a fixed ``eps``. They run per example until success and then stop moving that example (a
boolean mask inside the XLA loop), so one compiled function serves the whole batch. ``num_steps``,
``binary_search_steps``, ``norm``, ``num_candidates`` and ``targeted`` are static; numerical
hyperparameters may be traced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from robustjax.attacks import core, xla_cpu
from robustjax.types import Array, LogitsFn, PRNGKey


# --------------------------------------------------------------------------------------------------------
# DeepFool
# --------------------------------------------------------------------------------------------------------


def deepfool(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    num_steps: int = 50,
    overshoot: float = 0.02,
    norm: str = "l2",
    num_candidates: int = 10,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Moosavi-Dezfooli et al.'s DeepFool: iterated steps to the nearest linearised decision boundary.

    At each step the classifier is linearised around the current point; for each candidate class ``k``
    (the label ``y`` against the ``num_candidates - 1`` classes with the highest clean logits) the distance
    to the boundary ``z_k = z_y`` is ``|z_k - z_y| / ||grad(z_k - z_y)||_q`` (``q`` the dual norm: 2 for
    L2, 1 for L-inf). The step goes to the nearest one (plus ``1e-4`` to cross it). The accumulated step is
    scaled by ``1 + overshoot`` and clipped into the box. An example stops as soon as it is misclassified.

    Examples that are already misclassified are returned unchanged. Examples still classified as ``y``
    after ``num_steps`` are returned at their last iterate (which is then not adversarial).

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: true labels ``[B]`` (DeepFool is untargeted).
      key: unused (deterministic attack), accepted for the common signature.
      num_steps: maximum number of linearisation steps (static).
      overshoot: relative overshoot of the accumulated perturbation.
      norm: ``"l2"`` or ``"linf"`` (static).
      num_candidates: classes considered per step, including ``y`` (static, capped at ``K``; ``>= 2``).
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    del key
    core.validate_norm(norm, ("linf", "l2"))
    num_steps = core.validate_count(num_steps, "num_steps", "deepfool")
    num_candidates = core.validate_count(num_candidates, "num_candidates", "deepfool", minimum=2)
    num_classes = core.check_attack_inputs("deepfool", logits_fn, x, y, bounds=bounds, overshoot=overshoot)
    if num_classes < 2:
        raise ValueError(f"deepfool: the logits must have at least 2 classes, got {num_classes}.")
    num_cand = min(num_candidates, num_classes) - 1  # candidates other than y
    lo, hi = bounds
    y = y.astype(jnp.int32)

    logits0 = logits_fn(x)
    others = jax.lax.top_k(jnp.where(jax.nn.one_hot(y, num_classes, dtype=bool), -jnp.inf, logits0), num_cand)[1]

    def diffs(x_):
        z = logits_fn(x_)
        return jnp.take_along_axis(z, others, axis=-1) - core._label_logit(z, y)[:, None], z  # [B, C]

    def body(carry):
        i, r_total, x_adv, active = carry
        f, vjp_fn, z = jax.vjp(diffs, x_adv, has_aux=True)
        # one backward pass per candidate: d f_k / dx for every example at once -> [C, B, ...]
        cot = jnp.broadcast_to(jnp.eye(num_cand, dtype=f.dtype)[:, None, :], (num_cand,) + f.shape)
        grads = jax.vmap(lambda c: vjp_fn(c)[0])(cot)
        active = active & (jnp.argmax(z, axis=-1) == y)
        dual = "l2" if norm == "l2" else "l1"
        gnorm = jax.vmap(lambda g: core.lp_norm(g, dual))(grads).T  # [B, C]
        dist = jnp.abs(f) / (gnorm + 1e-8)
        best = jnp.argmin(dist, axis=-1)  # [B]
        g_best = jnp.take_along_axis(jnp.moveaxis(grads, 0, 1), best.reshape((-1, 1) + (1,) * (x.ndim - 1)),
                                     axis=1)[:, 0]
        d_best = jnp.take_along_axis(dist, best[:, None], axis=-1)[:, 0] + 1e-4
        n_best = jnp.take_along_axis(gnorm, best[:, None], axis=-1)[:, 0] + 1e-8
        if norm == "l2":
            step = core.per_example(d_best / n_best, x) * g_best
        else:
            step = core.per_example(d_best, x) * jnp.sign(g_best)
        r_total = jnp.where(core.per_example(active, x), r_total + step, r_total)
        x_new = core.clip_box(x + (1.0 + overshoot) * r_total, lo, hi)
        x_adv = jnp.where(core.per_example(active, x), x_new, x_adv)
        return i + 1, r_total, x_adv, active

    def cond(carry):
        i, _, _, active = carry
        return (i < num_steps) & jnp.any(active)

    active0 = jnp.ones(y.shape, bool)
    init = (jnp.asarray(0), jnp.zeros_like(x), x, active0)
    _, _, x_adv, _ = jax.lax.while_loop(cond, xla_cpu.canonicalize_convs(body), init)
    return core.finish(x_adv, bounds)


# --------------------------------------------------------------------------------------------------------
# Carlini-Wagner L2
# --------------------------------------------------------------------------------------------------------


def cw_l2(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    confidence: float = 0.0,
    initial_const: float = 1e-2,
    binary_search_steps: int = 9,
    num_steps: int = 1000,
    learning_rate: float = 1e-2,
    abort_early: bool = True,
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Carlini and Wagner's L2 attack: ``min ||x' - x||_2^2 + c * f(x')`` over ``x' = box(tanh(w))``.

    ``x' = lo + (hi - lo) * (tanh(w) + 1) / 2`` keeps every iterate inside the box. ``f`` is the margin
    ``max(z_y - max_{j != y} z_j + confidence, 0)`` (targeted: ``max(max_{j != t} z_j - z_t + confidence,
    0)``). For each of ``binary_search_steps`` values of the constant ``c`` (per example, starting at
    ``initial_const``), Adam runs ``num_steps`` steps on ``w`` from ``w(x)``. Then, per example, ``c`` is
    bisected down if an adversarial point was found with it and raised (x10 until an upper bound exists)
    otherwise. Every iterate that is adversarial with the required ``confidence`` and closer than the best
    so far is kept.

    Examples for which no adversarial point was ever found are returned **unchanged** (``x`` itself), so
    check success with the logits. With ``abort_early`` the Adam steps for the current ``c`` stop once the
    batch's total objective has not decreased by 0.01% over the last ``num_steps // 10`` steps, as in the
    reference implementation and foolbox (so, as there, when an example stops depends on its batch; stopping
    each example on its own objective was tried and lost examples whose objective plateaus for a while).

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: true labels ``[B]``, or targets when ``targeted``.
      key: unused (deterministic attack), accepted for the common signature.
      confidence: required logit margin ``kappa >= 0``.
      initial_const: first value of the trade-off constant ``c``.
      binary_search_steps: number of values of ``c`` tried per example (static).
      num_steps: Adam steps per value of ``c`` (static).
      learning_rate: Adam learning rate on ``w``.
      abort_early: stop the inner loop when the batch's total objective stalls.
      targeted: ``y`` are targets.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the best (smallest-L2) adversarial batch found, ``x`` where none was found.
    """
    del key
    binary_search_steps = core.validate_count(binary_search_steps, "binary_search_steps", "cw_l2")
    num_steps = core.validate_count(num_steps, "num_steps", "cw_l2")
    num_classes = core.check_attack_inputs("cw_l2", logits_fn, x, y, bounds=bounds, confidence=confidence,
                                           initial_const=initial_const, learning_rate=learning_rate)
    if num_classes < 2:
        raise ValueError(f"cw_l2: the logits must have at least 2 classes, got {num_classes}.")
    lo, hi = bounds
    y = y.astype(jnp.int32)
    batch = x.shape[0]
    axes = tuple(range(1, x.ndim))
    onehot = jax.nn.one_hot(y, num_classes, dtype=bool)

    def to_x(w):
        return lo + (hi - lo) * (jnp.tanh(w) + 1.0) / 2.0

    w0 = jnp.arctanh(jnp.clip((x - lo) / (hi - lo) * 2.0 - 1.0, -1.0 + 1e-6, 1.0 - 1e-6))

    def margin(z):
        z_y = core._label_logit(z, y)
        other = jnp.max(jnp.where(onehot, -jnp.inf, z), axis=-1)
        return (other - z_y) if targeted else (z_y - other)  # <= -confidence  <=>  success

    def objective(w, const):
        x_new = to_x(w)
        z = logits_fn(x_new)
        l2 = jnp.sum(jnp.square(x_new - x), axis=axes)
        m = margin(z)
        loss = l2 + const * jnp.maximum(m + confidence, 0.0)
        return jnp.sum(loss), (loss, l2, m, x_new)

    grad_fn = jax.grad(objective, has_aux=True)
    opt = optax.adam(learning_rate)
    check_every = max(num_steps // 10, 1)

    def outer(_, carry):
        lower, upper, const, best_l2, best_x = carry

        def inner_cond(c):
            i, *_, running = c
            return (i < num_steps) & jnp.any(running)

        def inner_body(c):
            i, w, opt_state, best_l2, best_x, found, prev, running = c
            g, (loss, l2, m, x_new) = grad_fn(w, const)
            success = m <= -confidence
            improve = success & (l2 < best_l2) & running
            best_l2 = jnp.where(improve, l2, best_l2)
            best_x = jnp.where(core.per_example(improve, x), x_new, best_x)
            found = found | (success & running)
            updates, opt_state = opt.update(g, opt_state, w)
            w = jnp.where(core.per_example(running, x), optax.apply_updates(w, updates), w)
            if abort_early:
                # The batch's total objective decides, as in Carlini's code and foolbox: an example whose own
                # objective plateaus for a while can still cross the boundary later; stopping it alone lost
                # 1 image in 128 against foolbox on a MNIST LeNet (benchmarks/peers.py).
                total = jnp.sum(loss)
                at_check = (i % check_every) == (check_every - 1)
                stalled = at_check & (total > prev * 0.9999)
                running = running & ~stalled
                prev = jnp.where(at_check, total, prev)
            return i + 1, w, opt_state, best_l2, best_x, found, prev, running

        init = (
            jnp.asarray(0), w0, opt.init(w0), best_l2, best_x, jnp.zeros((batch,), bool),
            jnp.asarray(jnp.inf, x.dtype), jnp.ones((batch,), bool),
        )
        _, _, _, best_l2, best_x, found, _, _ = jax.lax.while_loop(
            inner_cond, xla_cpu.canonicalize_convs(inner_body), init)

        upper = jnp.where(found, jnp.minimum(upper, const), upper)
        lower = jnp.where(found, lower, jnp.maximum(lower, const))
        const = jnp.where(upper < 1e9, (lower + upper) / 2.0, const * 10.0)
        return lower, upper, const, best_l2, best_x

    init = (
        jnp.zeros((batch,), x.dtype), jnp.full((batch,), 1e10, x.dtype),
        jnp.full((batch,), initial_const, x.dtype), jnp.full((batch,), jnp.inf, x.dtype), x,
    )
    *_, best_x = jax.lax.fori_loop(0, binary_search_steps, xla_cpu.canonicalize_convs(outer), init)
    return core.finish(best_x, bounds)
