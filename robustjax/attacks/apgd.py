"""Croce and Hein's Auto-PGD (APGD): step-size-free PGD with momentum and checkpoints, inside XLA.

    from robustjax import attacks
    x_adv = attacks.apgd(logits_fn, x, y, key, eps=8 / 255, norm="linf", loss="ce")          # APGD-CE
    x_adv = attacks.apgd(logits_fn, x, y, key, eps=8 / 255, loss="dlr_targeted", num_targets=9)  # APGD-T

The step size starts at ``2 * eps`` and is halved at checkpoints ``w_j = ceil(p_j * num_steps)``
(``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``) whenever the objective rose in
fewer than ``rho`` of the steps since the last checkpoint, or neither the step size nor the best objective
changed at the last checkpoint; a halving restarts from the best point found so far. The checkpoint
schedule is a constant table indexed by the loop counter, so everything runs in one ``lax.fori_loop``.
``eps`` may be traced (scalar or per example); ``num_steps``, ``restarts``, ``num_targets``, ``norm``,
``loss`` and ``targeted`` are static.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks import core, xla_cpu
from robustjax.types import Array, LogitsFn, LossFn, PRNGKey

LOSS_CHOICES = ("ce", "margin", "dlr", "dlr_targeted")


def checkpoints(num_steps: int) -> list[int]:
    """APGD's checkpoint iterations ``w_j = ceil(p_j * num_steps)`` in ``(0, num_steps]`` (sorted, unique).

    Example: ``checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    out = sorted({math.ceil(pj * num_steps - 1e-9) for pj in p[1:]})
    return [w for w in out if 0 < w <= num_steps]


def _checkpoint_tables(num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``is_checkpoint[k]`` and ``window[k] = w_j - w_{j-1}`` for iteration counts ``k = 0..num_steps``."""
    is_ck = np.zeros(num_steps + 1, bool)
    window = np.ones(num_steps + 1, np.float32)
    prev = 0
    for w in checkpoints(num_steps):
        is_ck[w] = True
        window[w] = w - prev
        prev = w
    return is_ck, window


def _max_other_index(logits: Array, labels: Array) -> Array:
    masked = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return jnp.argmax(masked, axis=-1)


def random_start(key: PRNGKey, x: Array, eps: Array, norm: str, bounds) -> Array:
    """APGD's start: a random point on the boundary of the ``norm`` ball (L-inf: uniform direction scaled so
    the largest coordinate is ``eps``; L2: a Gaussian direction of length ``eps``), clipped to the box."""
    t = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) if norm == "linf" else jax.random.normal(
        key, x.shape, x.dtype)
    t = t / core.per_example(jnp.maximum(core.lp_norm(t, norm), 1e-12), x)
    return core.clip_box(x + core.per_example(eps, x) * t, *bounds)


def _apgd_run(logits_fn, x, eps, key, obj_fn, success_fn, *, norm, num_steps, rho, momentum, bounds,
              eot_iter=1, stochastic=False):
    """One APGD run from a random start.

    Returns ``(x_out, found, best_obj)``: the highest-objective adversarial point where one was found,
    otherwise the highest-objective point; whether an adversarial point was found; its objective.
    """
    batch = x.shape[0]
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (batch,))
    is_ck, window = _checkpoint_tables(num_steps)
    is_ck, window = jnp.asarray(is_ck), jnp.asarray(window)

    def value_grad(xa, k):
        def total(xa_, k_):
            z = logits_fn(xa_, k_) if stochastic else logits_fn(xa_)
            o = obj_fn(z)
            return jnp.sum(o), (o, z)

        def one(k_):
            (_, (o, z)), g = jax.value_and_grad(total, has_aux=True)(xa, k_)
            return o, z, g

        if eot_iter == 1:
            o, z, g = one(k)
            return o, success_fn(z), g
        # Expectation over transformation: average objective, logits and gradient over eot_iter draws.
        keys = jax.random.split(k, eot_iter)
        acc = jax.lax.fori_loop(
            1, eot_iter, xla_cpu.canonicalize_convs(lambda e, acc: jax.tree_util.tree_map(jnp.add, acc, one(keys[e]))),
            one(keys[0]))
        o, z, g = jax.tree_util.tree_map(lambda v: v / eot_iter, acc)
        return o, success_fn(z), g

    def proj(xa):
        return core.project(xa, x, eps_b, norm, bounds)

    def ex(mask):
        return core.per_example(mask, x)

    k_start, k_grad = jax.random.split(key)
    x0 = random_start(k_start, x, eps_b, norm, bounds)
    o0, s0, g0 = value_grad(x0, jax.random.fold_in(k_grad, num_steps))
    neg_inf = jnp.full((batch,), -jnp.inf, o0.dtype)
    state = dict(
        x_cur=x0, x_prev=x0, g=g0, o_cur=o0,
        x_max=x0, o_max=o0, g_max=g0,
        x_adv=x0, o_adv=jnp.where(s0, o0, neg_inf), found=s0,
        step=2.0 * eps_b, count=jnp.zeros((batch,), jnp.float32),
        o_max_last=o0, reduced_last=jnp.zeros((batch,), bool),
    )

    def body(i, s):
        a = jnp.where(i == 0, 1.0, momentum).astype(x.dtype)
        z_k = proj(s["x_cur"] + core.per_example(s["step"], x) * core.normalize(s["g"], norm))
        x_new = proj(s["x_cur"] + a * (z_k - s["x_cur"]) + (1.0 - a) * (s["x_cur"] - s["x_prev"]))
        o, succ, g = value_grad(x_new, jax.random.fold_in(k_grad, i))

        better_adv = succ & (o > s["o_adv"])
        x_adv = jnp.where(ex(better_adv), x_new, s["x_adv"])
        o_adv = jnp.where(better_adv, o, s["o_adv"])
        found = s["found"] | succ

        count = s["count"] + (o > s["o_cur"]).astype(jnp.float32)
        up = o > s["o_max"]
        x_max = jnp.where(ex(up), x_new, s["x_max"])
        g_max = jnp.where(ex(up), g, s["g_max"])
        o_max = jnp.where(up, o, s["o_max"])

        at_ck = is_ck[i + 1]
        few_increases = count < rho * window[i + 1]
        stalled = ~s["reduced_last"] & (o_max <= s["o_max_last"])
        reduce = at_ck & (few_increases | stalled)
        step = jnp.where(reduce, s["step"] / 2.0, s["step"])
        x_cur = jnp.where(ex(reduce), x_max, x_new)
        x_prev = jnp.where(ex(reduce), x_max, s["x_cur"])  # restart without momentum
        g = jnp.where(ex(reduce), g_max, g)
        o_cur = jnp.where(reduce, o_max, o)
        return dict(
            x_cur=x_cur, x_prev=x_prev, g=g, o_cur=o_cur, x_max=x_max, o_max=o_max, g_max=g_max,
            x_adv=x_adv, o_adv=o_adv, found=found, step=step,
            count=jnp.where(at_ck, 0.0, count),
            o_max_last=jnp.where(at_ck, o_max, s["o_max_last"]),
            reduced_last=jnp.where(at_ck, reduce, s["reduced_last"]),
        )

    s = jax.lax.fori_loop(0, num_steps, xla_cpu.canonicalize_convs(body), state)
    x_out = jnp.where(ex(s["found"]), s["x_adv"], s["x_max"])
    best = jnp.where(s["found"], s["o_adv"], s["o_max"])
    return x_out, s["found"], best


def apgd(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    eps: float | Array,
    norm: str = "linf",
    num_steps: int = 100,
    loss: str | LossFn = "ce",
    restarts: int = 1,
    num_targets: int = 9,
    rho: float = 0.75,
    momentum: float = 0.75,
    targeted: bool = False,
    eot_iter: int = 1,
    stochastic: bool = False,
    chunk_size: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Auto-PGD (Croce and Hein, 2020), with the CE, margin, DLR or targeted-DLR loss.

    Each run starts at a random point of the ball's boundary, takes ``num_steps`` steps
    ``z = P(x_k + eta * dir(grad))``, ``x_{k+1} = P(x_k + momentum * (z - x_k) + (1 - momentum) *
    (x_k - x_{k-1}))`` (``dir`` = sign for L-inf, ``g / ||g||_2`` for L2; no momentum on the first step),
    with the step-size schedule of the module docstring. Per example, the run returns the
    highest-objective point that is adversarial, or the highest-objective point if none is.

    Losses (untargeted, ``y`` the true labels): ``"ce"``, ``"margin"``, ``"dlr"`` (or a callable
    ``(logits, labels) -> [B]`` to maximise); ``"dlr_targeted"`` is APGD-T: one series of runs per target
    class, the ``num_targets`` classes with the highest clean logits other than ``y`` (capped at ``K - 1``),
    each maximising ``dlr_targeted_loss(z, y, t)``. Success means misclassified.

    With ``targeted=True``, ``y`` are the targets and success means classified as ``y``: ``"ce"``,
    ``"margin"`` and callables are minimised at ``y``; ``"dlr"``/``"dlr_targeted"`` maximise the targeted
    DLR with the strongest other class in place of the true label.

    Restarts (``restarts`` per target) keep, per example, the first successful result, or otherwise the
    highest objective. Examples already successful on the clean input are returned unchanged.

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: true labels ``[B]``, or targets when ``targeted``.
      key: PRNG key (random starts).
      eps: finite radius, scalar or ``[B]``.
      norm: ``"linf"`` or ``"l2"`` (static).
      num_steps: iterations per run (static).
      loss: ``"ce"``, ``"margin"``, ``"dlr"``, ``"dlr_targeted"`` or a callable.
      restarts: runs per target (static).
      num_targets: target classes for ``"dlr_targeted"`` when untargeted (static).
      rho: fraction of increasing steps below which the step is halved at a checkpoint.
      momentum: weight of the new step against the previous displacement (0.75 in the paper).
      targeted: ``y`` are targets.
      eot_iter: draws averaged per gradient (expectation over transformation, static); only useful for
        a randomised model (``stochastic=True``).
      stochastic: ``logits_fn`` is randomised and called as ``logits_fn(x, key)`` with a fresh key per
        draw (randomised defenses, AutoAttack's ``version="rand"``).
      chunk_size: ``None`` (default) attacks the whole batch. An int attacks only the examples not
        already successful on the clean input, as the reference implementation does: they are sorted
        first and the batch is cut into chunks of this size, chunks without one are skipped
        (``core.map_live_chunks``), so a batch with many misclassified images costs less. Since issue
        #11 the selection is redone before every run (each restart, each APGD-T target: ``apgd_live``),
        with a smaller chunk when few examples are left, so an example fooled by one target is not
        attacked by the next. Each chunk draws its own random starts, so results differ from the
        unchunked ones (not their strength) (static).
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch (inside the ``eps`` ball and the box).
    """
    core.validate_norm(norm, ("linf", "l2"))
    num_steps = core.validate_count(num_steps, "num_steps", "apgd")
    restarts = core.validate_count(restarts, "restarts", "apgd")
    num_targets = core.validate_count(num_targets, "num_targets", "apgd")
    eot_iter = core.validate_count(eot_iter, "eot_iter", "apgd")
    chunk_size = core.validate_count(chunk_size, "chunk_size", "apgd", allow_none=True)
    if not callable(loss) and loss not in LOSS_CHOICES:
        raise ValueError(f"apgd: unknown loss {loss!r}; valid choices are {list(LOSS_CHOICES)} or a callable.")
    if key is None:
        raise ValueError("apgd: needs a PRNG key (random starts), got None; e.g. jax.random.key(0).")
    key, key_clean = jax.random.split(key)
    # A randomised model is checked (classes, clean predictions) with one fixed draw.
    plain_logits_fn = (lambda x_: logits_fn(x_, key_clean)) if stochastic else logits_fn  # noqa: E731
    num_classes = core.check_attack_inputs(
        "apgd", plain_logits_fn, x, y, eps=eps, bounds=bounds, rho=rho, momentum=momentum,
        finite_eps="its step size starts at 2 * eps; use pgd for eps=inf")
    if loss in ("dlr", "dlr_targeted"):
        need = 4 if (loss == "dlr_targeted" or targeted) else 3
        if num_classes < need:
            raise ValueError(
                f"apgd: loss={loss!r}{' (targeted)' if targeted else ''} needs at least {need} classes, the "
                f"logits have {num_classes}; use loss='ce' or 'margin'."
            )
    y = y.astype(jnp.int32)
    solve = functools.partial(
        _apgd_solve, logits_fn, plain_logits_fn, norm=norm, num_steps=num_steps, loss=loss, restarts=restarts,
        num_targets=num_targets, num_classes=num_classes, rho=rho, momentum=momentum, targeted=targeted,
        eot_iter=eot_iter, stochastic=stochastic, bounds=bounds)
    if chunk_size is None or chunk_size >= x.shape[0]:
        return core.finish(solve(key, x, y, eps), bounds)
    live = ~core.is_success(plain_logits_fn(x), y, targeted)
    x_out = apgd_live(logits_fn, plain_logits_fn, key, x, y, eps, live, chunk_size, norm=norm, num_steps=num_steps,
                      loss=loss, restarts=restarts, num_targets=num_targets, num_classes=num_classes, rho=rho,
                      momentum=momentum, targeted=targeted, eot_iter=eot_iter, stochastic=stochastic, bounds=bounds)
    return core.finish(x_out, bounds)


def _ranked_targets(logits0, y, num_targets, num_classes):
    """APGD-T/FAB-T's targets: the ``min(num_targets, K - 1)`` classes with the highest clean logits but ``y``."""
    n_t = min(num_targets, num_classes - 1)
    return jax.lax.top_k(jnp.where(jax.nn.one_hot(y, num_classes, dtype=bool), -jnp.inf, logits0), n_t)[1]


def _objective(loss, targeted, restarts, y, ranked, r):
    """Run ``r``'s objective ``logits -> [B]`` (to maximise) and the number of runs."""
    if targeted:
        if loss in ("dlr", "dlr_targeted"):
            return lambda z: core.dlr_targeted_loss(z, _max_other_index(z, y), y), restarts
        loss_fn = core.get_loss(loss)
        return lambda z: -loss_fn(z, y), restarts
    if loss == "dlr_targeted":
        t = jnp.take(ranked, r // restarts, axis=1)
        return lambda z: core.dlr_targeted_loss(z, y, t), restarts * ranked.shape[1]
    loss_fn = core.get_loss(loss)
    return lambda z: loss_fn(z, y), restarts


def apgd_live(logits_fn, plain_logits_fn, key, x, y, eps, live, chunk_size, *, norm, num_steps, loss, restarts,
              num_targets, num_classes, rho, momentum, targeted, eot_iter, stochastic, bounds):
    """APGD on the ``live`` examples only, re-selecting what is left before every run (target or restart).

    Each run (``core.map_live_runs``) attacks, in chunks of ``chunk_size`` (fewer when few are left), only
    the live examples that no earlier run has fooled, as the reference AutoAttack does per target: the cost
    of APGD-T falls with every target instead of staying that of the whole chunk for all nine. Per example
    the result is the first successful run's point, otherwise the highest objective (as in ``apgd``); dead
    examples are returned unchanged. Not finished (``core.finish``) and no input checks: callers do both.
    """
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), y.shape)
    ranked = (_ranked_targets(plain_logits_fn(x), y, num_targets, num_classes)
              if (loss == "dlr_targeted" and not targeted) else jnp.zeros(y.shape + (1,), jnp.int32))
    _, num_runs = _objective(loss, targeted, restarts, y, ranked, 0)

    def run(r, k, ops, st, lv):
        x_c, y_c, eps_c, ranked_c = ops
        x_out, found, best = st
        obj_fn, _ = _objective(loss, targeted, restarts, y_c, ranked_c, r)
        x_r, found_r, best_r = _apgd_run(
            logits_fn, x_c, eps_c, k, obj_fn, lambda z: core.is_success(z, y_c, targeted), norm=norm,
            num_steps=num_steps, rho=rho, momentum=momentum, bounds=bounds, eot_iter=eot_iter,
            stochastic=stochastic)
        take = lv & ~found & (found_r | (best_r > best))
        return (jnp.where(core.per_example(take, x_c), x_r, x_out), found | (lv & found_r),
                jnp.where(take, best_r, best))

    state = (x, ~live, jnp.full(y.shape, -jnp.inf, x.dtype))
    x_out, _, _ = core.map_live_runs(run, num_runs, (x, y, eps_b, ranked), state, lambda st: st[1], live, key,
                                     chunk_size)
    return x_out


def _apgd_solve(logits_fn, plain_logits_fn, key, x, y, eps, *, norm, num_steps, loss, restarts, num_targets,
                num_classes, rho, momentum, targeted, eot_iter, stochastic, bounds):
    """The restarts/targets loop of :func:`apgd` on one (validated) batch; returns the best points."""
    run = lambda k, obj_fn, success_fn: _apgd_run(  # noqa: E731
        logits_fn, x, eps, k, obj_fn, success_fn, norm=norm, num_steps=num_steps, rho=rho,
        momentum=momentum, bounds=bounds, eot_iter=eot_iter, stochastic=stochastic)

    logits0 = plain_logits_fn(x)
    found0 = core.is_success(logits0, y, targeted)

    if targeted:
        if loss in ("dlr", "dlr_targeted"):
            def obj_fn(z):
                return core.dlr_targeted_loss(z, _max_other_index(z, y), y)
        else:
            loss_fn = core.get_loss(loss)

            def obj_fn(z):
                return -loss_fn(z, y)
        objectives = lambda r: obj_fn  # noqa: E731
        num_runs = restarts
    elif loss == "dlr_targeted":
        n_t = min(num_targets, num_classes - 1)
        ranked = jax.lax.top_k(jnp.where(jax.nn.one_hot(y, num_classes, dtype=bool), -jnp.inf, logits0), n_t)[1]

        def objectives(r):
            t = ranked[:, r // restarts]
            return lambda z: core.dlr_targeted_loss(z, y, t)

        num_runs = restarts * n_t
    else:
        loss_fn = core.get_loss(loss)
        objectives = lambda r: (lambda z: loss_fn(z, y))  # noqa: E731
        num_runs = restarts

    success_fn = lambda z: core.is_success(z, y, targeted)  # noqa: E731

    def outer(r, carry):
        x_out, found, best = carry
        x_r, found_r, best_r = run(jax.random.fold_in(key, r), objectives(r), success_fn)
        take = ~found & (found_r | (best_r > best))
        x_out = jnp.where(core.per_example(take, x), x_r, x_out)
        return x_out, found | found_r, jnp.where(take, best_r, best)

    init = (x, found0, jnp.full(y.shape, -jnp.inf, logits0.dtype))
    x_out, _, _ = jax.lax.fori_loop(0, num_runs, xla_cpu.canonicalize_convs(outer), init)
    return x_out
