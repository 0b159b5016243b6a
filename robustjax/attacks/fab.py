"""Croce and Hein's Fast Adaptive Boundary attack (FAB): minimal-norm adversarial examples, inside XLA.

    from robustjax import attacks
    x_adv = attacks.fab(logits_fn, x, y, key, eps=jnp.inf, norm="l2", num_steps=100)   # minimal L2 points
    x_adv = attacks.fab(logits_fn, x, y, key, eps=8 / 255, num_targets=9)                # FAB-T (AutoAttack)

Each step linearises the classifier at the current point ``x_i``, picks a decision hyperplane, and solves
``min ||d||_p  s.t.  <g, d> = c,  lo <= x + d <= hi`` exactly for ``x_i`` and for the clean ``x`` (a sort
and a cumulative sum per example: ``project_hyperplane_box``). The next point is a convex combination of
the two projections, biased towards the clean image; adversarial points are pulled back towards ``x``
(the backward step) so that the search keeps shrinking the norm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.attacks import core, xla_cpu
from robustjax.types import Array, LogitsFn, PRNGKey


def project_hyperplane_box(w: Array, c: Array, lo: Array, hi: Array, norm: str, num_bisections: int = 40) -> Array:
    """Per example, the minimal-``norm`` ``d`` with ``<w, d> = c`` and ``lo <= d <= hi``.

    Requires ``lo <= 0 <= hi`` (the box of a point inside the pixel box). When the hyperplane does not meet
    the box, returns the box point with the largest ``<w, d> * sign(c)`` (the closest one can get).

    L2: ``d_i = sign(w_i) * min(lam |w_i|, cap_i)``; L-inf: ``d_i = sign(w_i) * min(t, cap_i)``, with
    ``cap_i`` the room in the useful direction. ``<w, d>`` is a nondecreasing piecewise-linear function of
    the scalar ``lam`` (``t``): it is bracketed by ``num_bisections`` geometric bisection steps (``O(n)``
    each; a sort of the breakpoints is several times slower on CPU), then solved exactly on the linear piece
    at the bracket's lower end (exact unless a breakpoint falls inside the final, ~1e-7-relative bracket).

    Args:
      w: ``[B, n]`` hyperplane normals.
      c: ``[B]`` offsets.
      lo: ``[B, n]`` lower bounds on ``d`` (``<= 0``).
      hi: ``[B, n]`` upper bounds on ``d`` (``>= 0``).
      norm: ``"l2"`` or ``"linf"``.
      num_bisections: bracketing steps (static).

    Returns:
      ``[B, n]`` the projection step ``d``.
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"project_hyperplane_box: norm must be 'l2' or 'linf', got {norm!r}.")
    flip = jnp.where(c < 0, -1.0, 1.0).astype(w.dtype)
    w = w * flip[:, None]  # now <w, d> = |c| >= 0; d needs no flipping back
    c = jnp.abs(c)[:, None]
    aw = jnp.abs(w)
    live = aw > 0
    cap = jnp.maximum(jnp.where(w > 0, hi, jnp.where(w < 0, -lo, 0.0)), 0.0)
    if norm == "l2":
        breaks = jnp.where(live, cap / jnp.where(live, aw, 1.0), 0.0)  # lam at which d_i saturates
        weight = jnp.square(aw)  # slope of <w, d> in lam while unsaturated

        def reach(lam):
            return jnp.sum(jnp.minimum(lam * aw, cap) * aw, axis=-1, keepdims=True)
    else:
        breaks = jnp.where(live, cap, 0.0)
        weight = aw

        def reach(t):
            return jnp.sum(jnp.minimum(t, cap) * aw, axis=-1, keepdims=True)

    total = jnp.sum(aw * cap, axis=-1, keepdims=True)
    feasible = total >= c
    # c / sum(weight) <= lam* <= max breakpoint; reach(low) <= c <= reach(high) throughout.
    high = jnp.max(breaks, axis=-1, keepdims=True)
    low = jnp.minimum(c / jnp.maximum(jnp.sum(weight, axis=-1, keepdims=True), 1e-30), high)

    def bisect(_, bracket):
        low, high = bracket
        geometric = (low > 0) & (high > 4.0 * low)
        mid = jnp.where(geometric, jnp.sqrt(low * high), 0.5 * (low + high))
        below = reach(mid) < c
        return jnp.where(below, mid, low), jnp.where(below, high, mid)

    low, high = jax.lax.fori_loop(0, num_bisections, bisect, (low, high))
    saturated = live & (breaks <= low)
    base = jnp.sum(jnp.where(saturated, aw * cap, 0.0), axis=-1, keepdims=True)
    slope = jnp.sum(jnp.where(saturated, 0.0, weight), axis=-1, keepdims=True)
    scale = jnp.clip((c - base) / jnp.where(slope > 0, slope, 1.0), low, high)
    scale = jnp.where(slope > 0, scale, high)
    scale = jnp.where(feasible, scale, jnp.inf)
    mag = jnp.minimum(scale * aw, cap) if norm == "l2" else jnp.minimum(scale, cap)
    return jnp.where(live, jnp.sign(w) * mag, 0.0)


def _fab_restart_point(key, x, radius, norm, bounds):
    if norm == "linf":
        t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
    else:
        t = jax.random.normal(key, x.shape, x.dtype)
    t = t / core.per_example(jnp.maximum(core.lp_norm(t, norm), 1e-12), x)
    return core.clip_box(x + core.per_example(radius, x) * t, *bounds)


def fab(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    eps: float | Array = float("inf"),
    norm: str = "linf",
    num_steps: int = 100,
    restarts: int = 1,
    targeted: bool = False,
    num_targets: int | None = None,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Fast Adaptive Boundary attack (Croce and Hein, 2020), L-inf or L2.

    Step ``i``: with ``h = z_v - z_u`` linearised at ``x_i`` (gradient ``g``), let ``d_i`` and ``d_0`` be
    the minimal-norm steps from ``x_i`` and from ``x`` onto ``{h = 0}`` inside the box. With
    ``a = min(||d_i|| / (||d_i|| + ||d_0||), alpha_max)`` the next point is
    ``clip((1 - a)(x_i + eta d_i) + a (x + eta d_0))``; if it is adversarial it is recorded when smaller
    than the best so far and replaced by ``(1 - beta) x + beta x_{i+1}`` (backward step).

    Which boundary (``u`` -> ``v``):
      * untargeted (default): ``u = y`` and ``v`` the class whose linearised boundary is nearest
        (``|h| / ||g||_q``, ``q`` dual); needs one backward pass per class per step.
      * ``num_targets=k`` (FAB-T, as in AutoAttack): one series of runs per target ``v`` among the ``k``
        classes with the highest clean logits other than ``y``; ``u = y``; success = misclassified. One
        backward pass per step.
      * ``targeted=True``: ``y`` are targets, ``v = y``, ``u`` the strongest other class at ``x_i``;
        success = classified as ``y``.

    The first run of each target starts at ``x``; further ``restarts`` start at a random point at distance
    ``min(best norm, eps) / 2`` (``x`` itself while both are infinite).

    Returns the smallest adversarial point found if its norm is ``<= eps`` (use ``eps=jnp.inf`` for pure
    minimal-norm search), else ``x`` unchanged. Already-successful clean inputs are returned unchanged.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: true labels ``[B]``, or targets when ``targeted``.
      key: PRNG key (only used when ``restarts > 1``; may then not be ``None``).
      eps: acceptance radius, scalar or ``[B]``; ``jnp.inf`` allowed.
      norm: ``"linf"`` or ``"l2"`` (static).
      num_steps: iterations per run (static).
      restarts: runs per target (static).
      targeted: ``y`` are targets.
      num_targets: FAB-T target classes (static), ``None`` for untargeted FAB; capped at ``K - 1``.
      alpha_max: cap on the weight of the clean image's projection.
      eta: overshoot of the projection steps.
      beta: backward-step factor.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch.
    """
    core.validate_norm(norm, ("linf", "l2"))
    num_steps = core.validate_count(num_steps, "num_steps", "fab")
    restarts = core.validate_count(restarts, "restarts", "fab")
    num_targets = core.validate_count(num_targets, "num_targets", "fab", allow_none=True)
    if targeted and num_targets is not None:
        raise ValueError("fab: targeted=True takes the targets from y; leave num_targets=None.")
    if restarts > 1 and key is None:
        raise ValueError("fab: restarts > 1 needs a PRNG key for the random starts.")
    num_classes = core.check_attack_inputs("fab", logits_fn, x, y, eps=eps, bounds=bounds, alpha_max=alpha_max,
                                           eta=eta, beta=beta)
    if num_classes < 2:
        raise ValueError(f"fab: the logits must have at least 2 classes, got {num_classes}.")
    y = y.astype(jnp.int32)
    batch = x.shape[0]
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (batch,))
    xf = x.reshape(batch, -1)
    logits0 = logits_fn(x)
    found0 = core.is_success(logits0, y, targeted)
    if num_targets is not None:
        n_t = min(num_targets, num_classes - 1)
        ranked = _ranked_targets(logits0, y, n_t, num_classes)
    else:
        n_t = 1
        ranked = None
    settings = dict(norm=norm, num_steps=num_steps, restarts=restarts, targeted=targeted, num_classes=num_classes,
                    alpha_max=alpha_max, eta=eta, beta=beta, bounds=bounds)

    def outer(r, carry):
        return _fab_one_run(logits_fn, r, jax.random.fold_in(key, r) if key is not None else None, x, y, eps_b,
                            ranked, *carry, **settings)

    best0 = jnp.where(found0, 0.0, jnp.inf).astype(x.dtype)
    x_out, best = jax.lax.fori_loop(0, restarts * n_t, xla_cpu.canonicalize_convs(outer), (xf, best0))
    x_adv = jnp.where((best <= eps_b)[:, None], x_out, xf).reshape(x.shape)
    return core.finish(x_adv, bounds)


def _ranked_targets(logits0, y, n_t, num_classes):
    return jax.lax.top_k(jnp.where(jax.nn.one_hot(y, num_classes, dtype=bool), -jnp.inf, logits0), n_t)[1]


def _fab_one_run(logits_fn, r, key, x, y, eps_b, ranked, x_out, best, *, norm, num_steps, restarts, targeted,
                 num_classes, alpha_max, eta, beta, bounds):
    """Run ``r`` of :func:`fab` (target ``ranked[:, r // restarts]``) on a batch; returns ``(x_out, best)``.

    ``x_out`` ``[b, n]`` (flat) is the smallest adversarial point so far and ``best`` its norm (``inf`` while
    none). ``key`` is this run's key (only used for restarts)."""
    lo, hi = bounds
    batch = x.shape[0]
    dual = "l2" if norm == "l2" else "l1"
    onehot_y = jax.nn.one_hot(y, num_classes, dtype=x.dtype)
    xf = x.reshape(batch, -1)
    target = None if ranked is None else jnp.take(ranked, r // restarts, axis=1)

    def boundary(x_i):
        """``(h [B], g [B, n])``: the chosen linearised boundary at ``x_i``."""
        z, vjp_fn = jax.vjp(logits_fn, x_i)
        if ranked is None and not targeted:
            eye = jnp.eye(num_classes, dtype=z.dtype)
            cot = jnp.broadcast_to(eye[:, None, :], (num_classes,) + z.shape)
            jac = jax.vmap(lambda ct: vjp_fn(ct)[0])(cot).reshape(num_classes, batch, -1)  # [K, B, n]
            jac = jnp.moveaxis(jac, 0, 1)  # [B, K, n]
            z_y = jnp.sum(z * onehot_y, axis=-1, keepdims=True)
            g_y = jnp.einsum("bk,bkn->bn", onehot_y, jac)
            df = z - z_y
            dg = jac - g_y[:, None, :]
            gnorm = core.lp_norm(dg.reshape(batch * num_classes, -1), dual).reshape(batch, num_classes)
            dist = jnp.abs(df) / (gnorm + 1e-12)
            dist = jnp.where(onehot_y > 0, jnp.inf, dist)
            v = jnp.argmin(dist, axis=-1)
            h = jnp.take_along_axis(df, v[:, None], axis=-1)[:, 0]
            g = jnp.take_along_axis(dg, v[:, None, None], axis=1)[:, 0]
            return h, g
        if targeted:
            v = y
            others = jnp.where(onehot_y > 0, -jnp.inf, z)
            u = jnp.argmax(others, axis=-1)
        else:
            v, u = target, y
        ct = jax.nn.one_hot(v, num_classes, dtype=z.dtype) - jax.nn.one_hot(u, num_classes, dtype=z.dtype)
        h = jnp.sum(z * ct, axis=-1)
        g = vjp_fn(ct)[0].reshape(batch, -1)
        return h, g

    def body(_, carry):
        x_i, x_out, best = carry
        h, g = boundary(x_i.reshape(x.shape))
        d_i = project_hyperplane_box(g, -h, lo - x_i, hi - x_i, norm)
        c_0 = -(h + jnp.sum(g * (xf - x_i), axis=-1))
        d_0 = project_hyperplane_box(g, c_0, lo - xf, hi - xf, norm)
        a_i = core.lp_norm(d_i, norm)
        a_0 = core.lp_norm(d_0, norm)
        alpha = jnp.minimum(a_i / (a_i + a_0 + 1e-12), alpha_max)[:, None]
        x_new = jnp.clip((1 - alpha) * (x_i + eta * d_i) + alpha * (xf + eta * d_0), lo, hi)
        adv = core.is_success(logits_fn(x_new.reshape(x.shape)), y, targeted)
        dist = core.lp_norm(x_new - xf, norm)
        better = adv & (dist < best)
        x_out = jnp.where(better[:, None], x_new, x_out)
        best = jnp.where(better, dist, best)
        x_i = jnp.where(adv[:, None], (1 - beta) * xf + beta * x_new, x_new)
        return x_i, x_out, best

    if restarts > 1:
        radius = 0.5 * jnp.minimum(best, eps_b)
        radius = jnp.where(jnp.isfinite(radius), radius, 0.0)
        radius = jnp.where(r % restarts == 0, 0.0, radius)
        x_start = _fab_restart_point(key, x, radius, norm, bounds).reshape(batch, -1)
    else:
        x_start = xf
    _, x_out, best = jax.lax.fori_loop(0, num_steps, xla_cpu.canonicalize_convs(body), (x_start, x_out, best))
    return x_out, best


def fab_live(logits_fn, key, x, y, eps, live, chunk_size, *, norm="linf", num_steps=100, restarts=1,
             num_targets=None, alpha_max=0.1, eta=1.05, beta=0.9, bounds=(0.0, 1.0)):
    """Untargeted FAB / FAB-T on the ``live`` examples only, re-selecting what is left before every run.

    For AutoAttack (inputs already checked by it): each run (target or restart; ``core.map_live_runs``)
    attacks, in chunks of ``chunk_size`` (fewer when few are left), only the live examples without an
    adversarial point within ``eps`` yet, as the reference AutoAttack's FAB-T does per target. Unlike
    :func:`fab`, a point found within ``eps`` is therefore not refined by later targets (its norm may be
    larger; whether it fools the model is the same). Returns ``x_adv`` (unfinished): the smallest
    adversarial point found if within ``eps``, else ``x``.
    """
    y = y.astype(jnp.int32)
    batch = x.shape[0]
    num_classes = jax.eval_shape(logits_fn, x).shape[-1]
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (batch,))
    if num_targets is not None:
        n_t = min(num_targets, num_classes - 1)
        ranked = _ranked_targets(logits_fn(x), y, n_t, num_classes)
    else:
        n_t = 1
        ranked = jnp.zeros((batch, 1), jnp.int32)
    settings = dict(norm=norm, num_steps=num_steps, restarts=restarts, targeted=False, num_classes=num_classes,
                    alpha_max=alpha_max, eta=eta, beta=beta, bounds=bounds)

    def run(r, k, ops, st, lv):
        x_c, y_c, eps_c, ranked_c = ops
        x_out, best = st
        x_new, best_new = _fab_one_run(logits_fn, r, k, x_c, y_c, eps_c,
                                       ranked_c if num_targets is not None else None, x_out, best, **settings)
        return jnp.where(lv[:, None], x_new, x_out), jnp.where(lv, best_new, best)

    xf = x.reshape(batch, -1)
    best0 = jnp.where(live, jnp.inf, 0.0).astype(x.dtype)
    x_out, best = core.map_live_runs(run, restarts * n_t, (x, y, eps_b, ranked), (xf, best0),
                                     lambda st: st[1] <= eps_b, live, key, chunk_size)
    return jnp.where((best <= eps_b)[:, None], x_out, xf).reshape(x.shape)
