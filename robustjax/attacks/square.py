"""Andriushchenko et al.'s Square Attack: score-based random search, no gradients, inside XLA.

    from robustjax import attacks
    x_adv = attacks.square(logits_fn, x, y, key, eps=8 / 255, norm="linf", num_queries=5000)
    x_adv = attacks.square(logits_fn, x, y, key, eps=0.5, norm="l2", num_queries=1000)

Only forward passes of ``logits_fn`` are used (it may be non-differentiable). Images must be NHWC
``[B, H, W, C]``. Each query changes one random square window per example (its side shrinks on the
paper's schedule of ``p``) and keeps the change if the loss went down; examples stop once they are
misclassified. Windows have a traced size, so they are masks over the full image rather than slices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks import core
from robustjax.types import Array, LogitsFn, PRNGKey

LOSS_CHOICES = ("margin", "ce")
# p is halved each time the (rescaled to 10000 queries) iteration passes one of these.
_P_THRESHOLDS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, it: Array, num_queries: int) -> Array:
    """Fraction ``p`` of the image changed at iteration ``it`` (the paper's piecewise-constant halvings).

    The schedule is defined for 10000 iterations and rescaled to ``num_queries``.
    """
    it_scaled = (jnp.asarray(it) * 10000) // num_queries
    halvings = sum((it_scaled > t).astype(jnp.int32) for t in _P_THRESHOLDS)
    return p_init / (2.0 ** halvings)


def _window(h0: Array, w0: Array, s: Array, height: int, width: int) -> Array:
    """``[H, W]`` bool mask of the ``s x s`` window with top-left corner ``(h0, w0)``."""
    rows = jnp.arange(height)[:, None] - h0
    cols = jnp.arange(width)[None, :] - w0
    return (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)


def _harmonic2_table(size: int) -> Array:
    """``table[m] = sum_{k < m} 1 / (k + 1)^2``."""
    return jnp.asarray(np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, size + 1) ** 2)]), jnp.float32)


def square_pattern(h0: Array, w0: Array, s: Array, transpose: Array, height: int, width: int) -> Array:
    """The L2 attack's ``s x s`` pseudo-Gaussian update placed at ``(h0, w0)`` on an ``[H, W]`` grid.

    The window is split into two halves (top/bottom, or left/right when ``transpose``) with opposite signs;
    each half holds nested centred rectangles, the ``k``-th (0-based) weighted ``1 / (k + 1)^2``, and is
    normalised to unit L2 norm; the whole pattern is then normalised to unit L2 norm. Zero outside.
    """
    table = _harmonic2_table(max(height, width) + 2)
    rows = jnp.arange(height)[:, None] - h0
    cols = jnp.arange(width)[None, :] - w0
    inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
    i = jnp.where(transpose, cols, rows)
    j = jnp.where(transpose, rows, cols)
    half = s // 2
    top = i < half
    size_x = jnp.where(top, half, s - half)  # rows of this half-rectangle
    ii = jnp.where(top, i, i - half)
    centre_x, centre_y = size_x // 2, s // 2
    levels = jnp.maximum(size_x // 2 + 1, s // 2 + 1)
    dist = jnp.maximum(jnp.abs(ii - centre_x), jnp.abs(j - centre_y))
    val = table[jnp.clip(levels, 0, table.shape[0] - 1)] - table[jnp.clip(dist, 0, table.shape[0] - 1)]
    val = jnp.where(inside, val, 0.0)
    n_top = jnp.sqrt(jnp.sum(jnp.where(top, val * val, 0.0)))
    n_bot = jnp.sqrt(jnp.sum(jnp.where(top, 0.0, val * val)))
    val = jnp.where(top, val / jnp.maximum(n_top, 1e-12), -val / jnp.maximum(n_bot, 1e-12))
    return val / jnp.maximum(jnp.sqrt(jnp.sum(val * val)), 1e-12)


def _losses(logits: Array, y: Array, loss: str, targeted: bool) -> tuple[Array, Array]:
    """``(margin, loss)`` per example, both to be minimised; ``margin <= 0`` means success."""
    num_classes = logits.shape[-1]
    onehot = jax.nn.one_hot(y, num_classes, dtype=bool)
    z_y = jnp.sum(jnp.where(onehot, logits, 0.0), axis=-1)
    other = jnp.max(jnp.where(onehot, -jnp.inf, logits), axis=-1)
    margin = (other - z_y) if targeted else (z_y - other)
    if loss == "margin":
        return margin, margin
    ce = core.ce_loss(logits, y)
    return margin, (ce if targeted else -ce)


def _init_linf(key, x, eps_b, bounds):
    """Vertical stripes: one random sign per (example, column, channel)."""
    b, _, w, c = x.shape
    signs = jax.random.choice(key, jnp.asarray([-1.0, 1.0], x.dtype), (b, 1, w, c))
    return core.clip_box(x + eps_b * signs, *bounds)


def _init_l2(key, x, eps_b, bounds):
    """A grid of pseudo-Gaussian squares with random signs, rescaled to L2 norm ``eps``."""
    b, h, w, c = x.shape
    s = max(h // 5, 1)
    start = (h - 5 * s) // 2
    corners = [(start + r * s, start + q * s) for r in range(h // s) for q in range(w // s)]
    hs = jnp.asarray([p[0] for p in corners])
    ws = jnp.asarray([p[1] for p in corners])
    k_t, k_s = jax.random.split(key)
    transpose = jax.random.bernoulli(k_t, 0.5, (b, len(corners)))
    pattern = jax.vmap(jax.vmap(lambda h0, w0, t: square_pattern(h0, w0, s, t, h, w), (0, 0, 0)),
                       (None, None, 0))(hs, ws, transpose)  # [B, T, H, W]
    signs = jax.random.choice(k_s, jnp.asarray([-1.0, 1.0], x.dtype), (b, len(corners), c))
    delta = jnp.einsum("bthw,btc->bhwc", pattern.astype(x.dtype), signs)
    delta = delta / core.per_example(jnp.maximum(core.lp_norm(delta, "l2"), 1e-12), x)
    return core.clip_box(x + eps_b * delta, *bounds)


def _step_linf(key, x, x_best, eps_b, p, bounds):
    b, h, w, c = x.shape
    s = jnp.round(jnp.sqrt(p * h * w)).astype(jnp.int32)
    s = jnp.clip(s, 1, min(h, w) - 1)
    k_h, k_w, k_s, k_f = jax.random.split(key, 4)
    h0 = jax.random.randint(k_h, (b,), 0, h - s)
    w0 = jax.random.randint(k_w, (b,), 0, w - s)
    win = jax.vmap(lambda a, d: _window(a, d, s, h, w))(h0, w0)[..., None]  # [B, H, W, 1]
    signs = jax.random.choice(k_s, jnp.asarray([-1.0, 1.0], x.dtype), (b, 1, 1, c))
    proposal = core.clip_box(x + eps_b * signs, *bounds)
    unchanged = jnp.all(jnp.where(win, jnp.abs(proposal - x_best) < 1e-7, True), axis=(1, 2, 3))
    # Instead of re-drawing until the window changes, flip a random non-empty subset of the channels.
    subset = jax.random.randint(k_f, (b,), 1, 2 ** c)
    flip = ((subset[:, None] >> jnp.arange(c)[None, :]) & 1).astype(bool)[:, None, None, :]
    signs = jnp.where(unchanged[:, None, None, None] & flip, -signs, signs)
    proposal = core.clip_box(x + eps_b * signs, *bounds)
    return jnp.where(win, proposal, x_best)


def _step_l2(key, x, x_best, eps_b, p, bounds):
    b, h, w, c = x.shape
    s = jnp.round(jnp.sqrt(p * h * w)).astype(jnp.int32)
    s = jnp.maximum(s, 3)
    s = s + (s % 2 == 0)
    s_max = min(h, w) - 1
    s_max = s_max if s_max % 2 == 1 else s_max - 1
    s = jnp.minimum(s, s_max)
    k_h, k_w, k_h2, k_w2, k_t, k_s = jax.random.split(key, 6)
    h0 = jax.random.randint(k_h, (b,), 0, h - s)
    w0 = jax.random.randint(k_w, (b,), 0, w - s)
    h2 = jax.random.randint(k_h2, (b,), 0, h - s)
    w2 = jax.random.randint(k_w2, (b,), 0, w - s)
    transpose = jax.random.bernoulli(k_t, 0.5, (b,))
    m1 = jax.vmap(lambda a, d: _window(a, d, s, h, w))(h0, w0)[..., None].astype(x.dtype)
    m2 = jax.vmap(lambda a, d: _window(a, d, s, h, w))(h2, w2)[..., None].astype(x.dtype)
    pattern = jax.vmap(lambda a, d, t: square_pattern(a, d, s, t, h, w))(h0, w0, transpose)[..., None]
    signs = jax.random.choice(k_s, jnp.asarray([-1.0, 1.0], x.dtype), (b, 1, 1, c))

    delta = x_best - x
    spatial = (1, 2)
    norm_w1 = jnp.sqrt(jnp.sum(jnp.square(delta * m1), axis=spatial, keepdims=True))  # [B, 1, 1, C]
    norm_img = jnp.sqrt(jnp.sum(jnp.square(delta), axis=(1, 2, 3), keepdims=True))
    norm_union = jnp.sqrt(jnp.sum(jnp.square(delta * jnp.maximum(m1, m2)), axis=spatial, keepdims=True))
    new = pattern.astype(x.dtype) * signs + delta * m1 / (1e-10 + norm_w1)
    room = jnp.maximum(jnp.square(eps_b) - jnp.square(norm_img), 0.0) / c + jnp.square(norm_union)
    new = new / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(new), axis=spatial, keepdims=True)), 1e-12)
    new = new * jnp.sqrt(room)
    delta = delta * (1.0 - m2)
    delta = delta * (1.0 - m1) + new * m1
    delta = delta / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(delta), axis=(1, 2, 3), keepdims=True)), 1e-12)
    return core.clip_box(x + eps_b * delta, *bounds)


def square(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    eps: float | Array,
    norm: str = "linf",
    num_queries: int = 5000,
    p_init: float = 0.8,
    loss: str = "margin",
    restarts: int = 1,
    targeted: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Square Attack (Andriushchenko et al., 2020), L-inf or L2, using only the logits' values.

    L-inf: starts from vertical stripes of ``+-eps``; each query sets one random ``s x s`` window (side
    ``s = round(sqrt(p H W))``) to ``x +- eps`` with one random sign per channel. L2: starts from a grid of
    pseudo-Gaussian squares; each query redistributes the perturbation of two random windows into a new
    pseudo-Gaussian square (``s`` odd, ``>= 3``) and rescales the whole perturbation to norm ``eps``.
    ``p`` starts at ``p_init`` and halves on the paper's schedule (defined for 10000 queries, rescaled to
    ``num_queries``). A query is kept if it lowers the loss (``"margin"``: ``z_y - max_{j != y} z_j``, or
    ``"ce"``: minus the cross-entropy; targeted: the same towards ``y``). Examples stop once successful.

    Restarts keep, per example, the first successful result or the lowest loss.

    Args:
      logits_fn: ``x -> logits [B, K]`` (no gradients are taken: it may be non-differentiable).
      x: clean images ``[B, H, W, C]`` inside ``bounds`` (``H, W >= 2``; L2 needs ``H, W >= 4``).
      y: true labels ``[B]``, or targets when ``targeted``.
      key: PRNG key.
      eps: finite radius, scalar or ``[B]``.
      norm: ``"linf"`` or ``"l2"`` (static).
      num_queries: model evaluations per run, including the initial one (static).
      p_init: initial fraction of pixels changed per query.
      loss: ``"margin"`` or ``"ce"`` (static).
      restarts: independent runs (static).
      targeted: ``y`` are targets.
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch (inside the ``eps`` ball and the box).
    """
    core.validate_norm(norm, ("linf", "l2"))
    if loss not in LOSS_CHOICES:
        raise ValueError(f"square: unknown loss {loss!r}; valid choices are {list(LOSS_CHOICES)}.")
    num_queries = core.validate_count(num_queries, "num_queries", "square")
    restarts = core.validate_count(restarts, "restarts", "square")
    if key is None:
        raise ValueError("square: needs a PRNG key (random search), got None; e.g. jax.random.key(0).")
    core.validate_static(x, y, eps=eps, bounds=bounds, name="square")
    if np.ndim(x) != 4:
        raise ValueError(
            f"square: x must be NHWC images [batch, height, width, channels], got shape {tuple(np.shape(x))}; "
            f"reshape flat inputs to images (e.g. x.reshape(-1, 28, 28, 1))."
        )
    min_side = 4 if norm == "l2" else 2
    if min(x.shape[1], x.shape[2]) < min_side:
        raise ValueError(f"square: images must be at least {min_side}x{min_side} for norm={norm!r}, "
                         f"got {x.shape[1]}x{x.shape[2]}." + core.nchw_hint(x.shape))
    core.check_attack_inputs("square", logits_fn, x, y, eps=eps, bounds=bounds, finite_eps=True, p_init=p_init)
    y = y.astype(jnp.int32)
    eps_b = core.per_example(jnp.broadcast_to(jnp.asarray(eps, x.dtype), (x.shape[0],)), x)
    init_fn, step_fn = (_init_linf, _step_linf) if norm == "linf" else (_init_l2, _step_l2)

    def evaluate(xa):
        return _losses(logits_fn(xa), y, loss, targeted)

    def run(key):
        k_init, k_loop = jax.random.split(key)
        x_best = init_fn(k_init, x, eps_b, bounds)
        margin, obj = evaluate(x_best)

        def body(i, carry):
            x_best, margin, obj = carry
            p = p_schedule(p_init, i, num_queries)
            x_new = step_fn(jax.random.fold_in(k_loop, i), x, x_best, eps_b, p, bounds)
            m_new, o_new = evaluate(x_new)
            accept = (margin > 0) & (o_new < obj)
            x_best = jnp.where(core.per_example(accept, x), x_new, x_best)
            return x_best, jnp.where(accept, m_new, margin), jnp.where(accept, o_new, obj)

        return jax.lax.fori_loop(0, num_queries - 1, body, (x_best, margin, obj))

    def outer(r, carry):
        x_out, margin, obj = carry
        x_r, m_r, o_r = run(jax.random.fold_in(key, r))
        take = (margin > 0) & ((m_r <= 0) | (o_r < obj))
        return (jnp.where(core.per_example(take, x), x_r, x_out), jnp.where(take, m_r, margin),
                jnp.where(take, o_r, obj))

    m0, _ = evaluate(x)
    init = (x, m0, jnp.full(y.shape, jnp.inf, m0.dtype))
    x_out, _, _ = jax.lax.fori_loop(0, restarts, outer, init)
    return core.finish(x_out, bounds)


def square_live(logits_fn, key, x, y, eps, live, chunk_size, *, norm="linf", num_queries=5000, p_init=0.8,
                loss="margin", restarts=1, bounds=(0.0, 1.0), compact=True):
    """Untargeted Square on the ``live`` examples only, stopping each one once fooled (for AutoAttack).

    Inputs are not checked (AutoAttack did). Differences from :func:`square`, all for speed:

    * only the live examples are attacked, sorted first and cut into chunks of ``chunk_size``
      (``core.map_live_chunks``; fewer when few are left), and each restart only the ones still robust;
    * inside a chunk the queries run in a ``lax.while_loop`` that stops once no example of the chunk is
      left (all fooled) or the queries are spent, instead of always spending all of them;
    * each query is computed only for the examples still robust, gathered to the front of the chunk at the
      smallest size of ``core.chunk_buckets(chunk_size)`` that holds them (``lax.switch``), so that the few
      examples that resist most of the 5000 queries cost a batch of 2 or 8, not the whole chunk, as in the
      reference implementation, which queries only the examples not yet fooled;
    * every random draw is made per example from ``fold_in(key, index in the batch)``, so an example's
      search does not depend on the chunking, on the compaction or on which other examples are left:
      ``compact=False`` (one fixed-size batch, all queries; the test's reference) gives the same points.

    Returns ``x_adv`` (unfinished): per example the first restart's point that fools the model, otherwise
    the lowest-loss point; dead examples unchanged.
    """
    y = y.astype(jnp.int32)
    batch = x.shape[0]
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (batch,))
    init_fn, step_fn = (_init_linf, _step_linf) if norm == "linf" else (_init_l2, _step_l2)
    ids = jnp.arange(batch)

    def evaluate(xa, y_):
        return _losses(logits_fn(xa), y_, loss, False)

    def per_example(fn, keys, *arrays):
        """``fn(key, x[None], ...)[0]`` for each example: draws that depend on the example's own key only."""
        return jax.vmap(lambda k, *a: fn(k, *(v[None] for v in a))[0])(keys, *arrays)

    def run(r, _chunk_key, ops, st, lv):
        x_c, y_c, eps_c, ids_c = ops
        x_out, margin, obj = st
        b = x_c.shape[0]
        sizes = core.chunk_buckets(b) if compact else [b]
        k_init, k_loop = jax.random.split(jax.random.fold_in(key, r))
        eps4 = eps_c[:, None, None, None]
        ex_keys = jax.vmap(lambda i: jax.random.fold_in(k_init, i))(ids_c)
        x_best = per_example(lambda k, xx, ee: init_fn(k, xx, ee, bounds), ex_keys, x_c, eps4)
        m_best, o_best = evaluate(x_best, y_c)

        def query(i, carry, size):
            x_best, m_best, o_best = carry
            active = lv & (m_best > 0)
            idx = jnp.argsort(~active, stable=True)[:size]  # the active examples first
            take = lambda v: v[idx]  # noqa: E731
            p = p_schedule(p_init, i, num_queries)
            keys = jax.vmap(lambda j: jax.random.fold_in(jax.random.fold_in(k_loop, i), j))(take(ids_c))
            x_new = per_example(lambda k, xx, xb, ee: step_fn(k, xx, xb, ee, p, bounds), keys, take(x_c),
                                take(x_best), take(eps4))
            m_new, o_new = evaluate(x_new, take(y_c))
            accept = take(active) & (o_new < take(o_best))
            put = lambda v, new: v.at[idx].set(jnp.where(core.per_example(accept, new), new, v[idx]))  # noqa: E731
            return put(x_best, x_new), put(m_best, m_new), put(o_best, o_new)

        def body(c):
            i, carry = c
            n_active = jnp.sum(lv & (carry[1] > 0))
            branch = sum((n_active <= s).astype(jnp.int32) for s in sizes[1:])
            branches = [lambda i_, c_, s=s: query(i_, c_, s) for s in sizes]
            return i + 1, jax.lax.switch(branch, branches, i, carry)

        def cond(c):
            i, carry = c
            return (i < num_queries - 1) & jnp.any(lv & (carry[1] > 0))

        _, (x_r, m_r, o_r) = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), (x_best, m_best, o_best)))
        take = lv & (margin > 0) & ((m_r <= 0) | (o_r < obj))
        return (jnp.where(core.per_example(take, x_c), x_r, x_out), jnp.where(take, m_r, margin),
                jnp.where(take, o_r, obj))

    m0, _ = evaluate(x, y)
    state = (x, jnp.where(live, m0, -jnp.inf), jnp.full((batch,), jnp.inf, m0.dtype))
    x_out, _, _ = core.map_live_runs(run, restarts, (x, y, eps_b, ids), state, lambda st: st[1] <= 0, live, key,
                                     chunk_size)
    return x_out
