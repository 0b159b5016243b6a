"""Shared pieces of every attack: per-example losses, projections, norms, input gradients, validation.

    from robustjax.attacks import core
    loss = core.get_loss("dlr")(logits, labels)            # [B]
    x_adv = core.project(x_adv, x, eps=0.3, norm="linf", bounds=(0.0, 1.0))

Conventions used across ``robustjax.attacks``:

* Images are a batch ``x`` of shape ``[B, ...]`` (usually NHWC); labels ``y`` are integers ``[B]``.
* Losses are per example, ``(logits [B, K], labels [B]) -> [B]``; *higher* means "more adversarial" for an
  untargeted attack. A targeted attack minimises the same loss evaluated at the target labels.
* ``eps`` and ``step_size`` may be Python floats, scalar arrays, or per-example arrays ``[B]``; they are
  never static, so one compiled function serves a whole eps grid (and bisection searches per example).
  ``eps = jnp.inf`` means "no norm constraint, box only".
* Nothing here imports flax: attacks only ever see ``logits_fn: x -> logits``.
* Validation (the last section) is in two kinds. *Static* checks (ranks, shapes, dtypes, loop counts,
  names) raise a ValueError at trace time, under ``jit`` too. *Value* checks (finite pixels, pixels in
  ``bounds``, labels in ``[0, K)``, ``eps`` and step sizes ``>= 0``) raise a ValueError on concrete values
  and become ``jax.experimental.checkify.debug_check``s on traced ones: a plain ``jax.jit`` drops them
  (nothing is computed), ``checkify.checkify`` reports them (see the ``robustjax.attacks`` docstring).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from robustjax.attacks import xla_cpu
from robustjax.types import Array, LogitsFn, LossFn, PRNGKey

# The CPU loop-body rewrite lives in ``xla_cpu``; kept reachable here, where it used to be.
canonicalize_convs = xla_cpu.canonicalize_convs

NORMS = ("linf", "l2", "l1")

# --------------------------------------------------------------------------------------------------------
# Per-example losses: (logits [B, K], labels [B]) -> [B]
# --------------------------------------------------------------------------------------------------------


def _label_logit(logits: Array, labels: Array) -> Array:
    # A one-hot contraction rather than take_along_axis: its VJP is a multiply, not a scatter.
    return jnp.sum(jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), logits, 0.0), axis=-1)


def _max_other(logits: Array, labels: Array) -> Array:
    """max_{j != y} z_j, per example."""
    num_classes = logits.shape[-1]
    mask = jax.nn.one_hot(labels, num_classes, dtype=bool)
    return jnp.max(jnp.where(mask, -jnp.inf, logits), axis=-1)


def ce_loss(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy per example, in a form whose gradient survives a saturated softmax.

    Computed as ``log(1 + sum_{j != y} exp(z_j - z_y))`` (equal to ``logsumexp(z) - z_y``). The textbook
    form differentiates to ``softmax(z) - onehot(y)``, and once the prediction is confident enough that
    ``softmax(z)_y`` rounds to 1 in float32 (a logit margin above ~17), the ``z_y`` component of the
    gradient cancels to exactly 0 while the other components stay non-zero: the input gradient then only
    pushes other logits up, and its sign is wrong on a large share of pixels (measured on a LeNet trained on
    MNIST: up to 45% of the pixels of an image, against a float64 reference). That is gradient masking by
    rounding, and it weakens FGSM/PGD against any well-trained model. Here the ``z_y`` component is
    ``-sum_{j != y} softmax_j``, a sum of small positive terms with no cancellation.

    Args:
      logits: ``[B, K]`` unnormalised scores.
      labels: ``[B]`` integer labels in ``[0, K)``.

    Returns:
      ``[B]`` loss, ``logsumexp(z) - z_y``.
    """
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    mask = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
    others = jnp.where(mask, -jnp.inf, logits - _label_logit(logits, labels)[..., None])
    return jnp.logaddexp(0.0, jax.nn.logsumexp(others, axis=-1))


def margin_loss(logits: Array, labels: Array) -> Array:
    """Carlini-Wagner margin per example: ``max_{j != y} z_j - z_y`` (positive iff misclassified).

    Args:
      logits: ``[B, K]`` unnormalised scores (``K >= 2``).
      labels: ``[B]`` integer labels.

    Returns:
      ``[B]`` margin.
    """
    _check_num_classes(logits, 2, "margin_loss")
    return _max_other(logits, labels) - _label_logit(logits, labels)


def dlr_loss(logits: Array, labels: Array) -> Array:
    """Croce and Hein's untargeted Difference of Logits Ratio loss per example.

    ``DLR = -(z_y - max_{j != y} z_j) / (z_(1) - z_(3) + 1e-12)`` with ``z_(i)`` the i-th largest logit.
    It is invariant to shifting and positively rescaling the logits.

    Args:
      logits: ``[B, K]`` unnormalised scores (``K >= 3``).
      labels: ``[B]`` integer labels.

    Returns:
      ``[B]`` loss (higher = more adversarial).
    """
    _check_num_classes(logits, 3, "dlr_loss")
    top = jax.lax.top_k(logits, 3)[0]
    return -(_label_logit(logits, labels) - _max_other(logits, labels)) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: Array, labels: Array, targets: Array) -> Array:
    """Croce and Hein's targeted DLR loss per example (to be *maximised*).

    ``DLR_T = -(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2 + 1e-12)``.

    Args:
      logits: ``[B, K]`` unnormalised scores (``K >= 4``).
      labels: ``[B]`` true labels ``y``.
      targets: ``[B]`` target labels ``t``.

    Returns:
      ``[B]`` loss; it grows as ``z_t`` overtakes ``z_y``.
    """
    _check_num_classes(logits, 4, "dlr_targeted_loss")
    top = jax.lax.top_k(logits, 4)[0]
    denom = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12
    return -(_label_logit(logits, labels) - _label_logit(logits, targets)) / denom


def _check_num_classes(logits: Array, minimum: int, name: str) -> None:
    if logits.ndim != 2:
        raise ValueError(f"{name}: logits must be [batch, num_classes], got shape {tuple(logits.shape)}.")
    if logits.shape[-1] < minimum:
        raise ValueError(
            f"{name} needs at least {minimum} classes, the logits have {logits.shape[-1]}; "
            f"use loss='ce' (or 'margin') for models with fewer classes."
        )


LOSSES: dict[str, LossFn] = {"ce": ce_loss, "margin": margin_loss, "dlr": dlr_loss}


def get_loss(loss: str | LossFn) -> LossFn:
    """Resolves a loss name (``"ce"``, ``"margin"``, ``"dlr"``) or returns a callable unchanged.

    Args:
      loss: a name from ``LOSSES`` or a function ``(logits [B, K], labels [B]) -> [B]``.

    Returns:
      The per-example loss function.

    Raises:
      ValueError: if the name is unknown.
    """
    if callable(loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ValueError(
        f"Unknown loss {loss!r}; valid names are {sorted(LOSSES)} "
        f"(or pass a function (logits [B, K], labels [B]) -> per-example loss [B])."
    )


# --------------------------------------------------------------------------------------------------------
# Norms and projections
# --------------------------------------------------------------------------------------------------------


def chunk_buckets(chunk_size: int, factor: int = 4) -> list[int]:
    """The chunk sizes ``map_live_chunks(..., shrink=True)`` may use: ``chunk_size``, then divided by
    ``factor`` while the result is at least 2 (32 -> ``[32, 8, 2]``). Each size is a separate compiled
    branch, so the list is kept short."""
    sizes = [chunk_size]
    while sizes[-1] // factor >= 2:
        sizes.append(sizes[-1] // factor)
    return sizes


def map_live_chunks(run: Callable, skip: Callable, operands: tuple, live: Array, key: PRNGKey,
                    chunk_size: int, *, shrink: bool = False) -> tuple:
    """Runs ``run`` only on the chunks of a batch that hold a live example, the live examples sorted first.

    XLA needs static shapes, so a batch cannot shrink to the examples still worth attacking. Instead the
    live examples are moved to the front (stable sort), the batch is split into ``ceil(B / chunk_size)``
    chunks (the last padded with copies of one example), and ``lax.map`` runs ``run`` on every chunk that
    holds a live example and ``skip`` on the others (``lax.cond``): the cost becomes about
    ``ceil(live / chunk_size)`` chunks instead of the whole batch. Results are put back in the original
    order. Under ``vmap`` the ``cond`` runs both branches (still correct, no saving).

    Args:
      run: ``(key, operands_chunk, live_chunk) -> outputs``, a tuple of ``[chunk_size, ...]`` arrays.
      skip: ``(operands_chunk, live_chunk) -> outputs`` of the same structure (what a dead chunk returns).
      operands: tuple of ``[B, ...]`` arrays.
      live: ``[B]`` bool.
      key: PRNG key; chunk ``i`` gets ``split(key, num_chunks)[i]``.
      chunk_size: positive int (static).
      shrink: when fewer live examples than ``chunk_size`` are left, use the smallest size of
        ``chunk_buckets(chunk_size)`` that holds them all (one ``lax.switch`` branch per size): three
        examples left then cost a batch of 8, not 32, as in the reference implementation, which attacks
        exactly the examples left. Each size compiles ``run`` once more; under ``vmap`` the switch
        runs every branch (correct, but slower than without chunks) (static).

    Returns:
      ``outputs`` with leading dimension ``B``, in the batch's order.
    """
    sizes = chunk_buckets(chunk_size) if shrink else [chunk_size]
    if len(sizes) == 1:
        return _map_live_chunks_fixed(run, skip, operands, live, key, chunk_size)
    n_live = jnp.sum(live)
    branch = sum((n_live <= s).astype(jnp.int32) for s in sizes[1:])  # sizes decrease: how many still fit
    branches = [functools.partial(_map_live_chunks_fixed, run, skip, chunk_size=s) for s in sizes]
    return jax.lax.switch(branch, [lambda o, lv, k, f=f: f(o, lv, k) for f in branches], operands, live, key)


def _map_live_chunks_fixed(run, skip, operands, live, key, chunk_size):
    batch = live.shape[0]
    num_chunks = -(-batch // chunk_size)
    pad = num_chunks * chunk_size - batch
    order = jnp.argsort(~live, stable=True)
    idx = jnp.concatenate([order, jnp.full((pad,), order[-1])])
    live_sorted = jnp.concatenate([live[order], jnp.zeros((pad,), bool)])

    def split(v):
        return v[idx].reshape((num_chunks, chunk_size) + v.shape[1:])

    def guarded(args):
        k, ops, lv = args
        return jax.lax.cond(jnp.any(lv), lambda a: run(*a), lambda a: skip(*a[1:]), (k, ops, lv))

    chunks = (jax.random.split(key, num_chunks), tuple(split(v) for v in operands),
              live_sorted.reshape(num_chunks, chunk_size))
    outs = jax.lax.map(guarded, chunks)

    def unsort(v):
        flat = v.reshape((num_chunks * chunk_size,) + v.shape[2:])[:batch]
        return jnp.zeros_like(flat).at[order].set(flat)

    return tuple(unsort(v) for v in outs)


def map_live_runs(run: Callable, num_runs: int, operands: tuple, state: tuple, done: Callable, live: Array,
                  key: PRNGKey, chunk_size: int) -> tuple:
    """``num_runs`` runs of an attack (targets x restarts), each on only the examples still left.

    Before run ``r`` the examples ``live & ~done(state)`` are re-selected and only they are attacked, in
    chunks (``map_live_chunks(..., shrink=True)``): an example fooled by one target is not attacked by the
    next, as in the reference AutoAttack's APGD-T/FAB-T. Inside a ``lax.fori_loop``.

    Args:
      run: ``(r, key, operands_chunk, state_chunk, live_chunk) -> state_chunk``.
      num_runs: number of runs (static).
      operands: tuple of ``[B, ...]`` arrays that do not change.
      state: tuple of ``[B, ...]`` arrays carried from run to run (what a skipped chunk keeps).
      done: ``state -> [B]`` bool, examples that need no further run.
      live: ``[B]`` bool, examples to attack at all.
      key: PRNG key; run ``r`` uses ``fold_in(key, r)``.
      chunk_size: positive int (static).
    """
    n_ops = len(operands)

    def body(r, st):
        @xla_cpu.canonicalize_convs  # the run's gradients outside its own step loop sit in this loop's body
        def run_chunk(k, ops, lv):
            return tuple(run(r, k, ops[:n_ops], ops[n_ops:], lv))

        return map_live_chunks(run_chunk, lambda ops, lv: tuple(ops[n_ops:]), tuple(operands) + tuple(st),
                               live & ~done(st), jax.random.fold_in(key, r), chunk_size, shrink=True)

    return jax.lax.fori_loop(0, num_runs, body, tuple(state))


def per_example(value: Array | float, x: Array) -> Array:
    """Broadcasts a scalar or per-example ``[B]`` value against a batch ``x`` of shape ``[B, ...]``."""
    value = jnp.asarray(value, dtype=x.dtype)
    if value.ndim == 0:
        return value
    if value.ndim == 1:
        return value.reshape(value.shape + (1,) * (x.ndim - 1))
    raise ValueError(
        f"Expected a scalar or a per-example vector of shape [{x.shape[0]}], got shape {tuple(value.shape)}."
    )


def _reduce_axes(x: Array) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def lp_norm(delta: Array, norm: str) -> Array:
    """Per-example norm of ``delta`` ``[B, ...]`` over every axis but the first.

    Args:
      delta: perturbation batch.
      norm: ``"linf"``, ``"l2"`` or ``"l1"``.

    Returns:
      ``[B]`` norms.
    """
    axes = _reduce_axes(delta)
    if norm == "linf":
        return jnp.max(jnp.abs(delta), axis=axes)
    if norm == "l2":
        return jnp.sqrt(jnp.sum(jnp.square(delta), axis=axes))
    if norm == "l1":
        return jnp.sum(jnp.abs(delta), axis=axes)
    raise ValueError(_norm_error(norm, NORMS))


def _norm_error(norm, valid) -> str:
    return f"Unknown norm {norm!r}; valid choices are {list(valid)}."


def clip_box(x: Array, lo: float | Array = 0.0, hi: float | Array = 1.0) -> Array:
    """Clips ``x`` into the box ``[lo, hi]`` (the valid pixel range)."""
    return jnp.clip(x, lo, hi)


def project_linf(x_adv: Array, x: Array, eps: float | Array) -> Array:
    """Projects ``x_adv`` onto the L-inf ball of radius ``eps`` (scalar or ``[B]``) around ``x``."""
    eps = per_example(eps, x)
    return x + jnp.clip(x_adv - x, -eps, eps)


def project_l2(x_adv: Array, x: Array, eps: float | Array) -> Array:
    """Projects ``x_adv`` onto the L2 ball of radius ``eps`` (scalar or ``[B]``, may be inf) around ``x``."""
    delta = x_adv - x
    norms = lp_norm(delta, "l2")
    eps = jnp.broadcast_to(jnp.asarray(eps, x.dtype), norms.shape)
    factor = jnp.minimum(1.0, eps / jnp.maximum(norms, 1e-12))
    return x + delta * per_example(factor, x)


def project(
    x_adv: Array,
    x: Array,
    eps: float | Array,
    norm: str = "linf",
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Projects onto the ``norm`` ball of radius ``eps`` around ``x``, then into the box ``bounds``.

    For L-inf the result lies in both sets exactly (they are boxes). For L2 the ball projection is followed
    by clipping, which can only shrink the perturbation, so the result stays inside both sets.

    Args:
      x_adv: candidate batch ``[B, ...]``.
      x: clean batch ``[B, ...]``.
      eps: radius, scalar or ``[B]``; ``jnp.inf`` skips the ball.
      norm: ``"linf"`` or ``"l2"``.
      bounds: ``(lo, hi)`` pixel range.

    Returns:
      The projected batch.
    """
    if norm == "linf":
        x_adv = project_linf(x_adv, x, eps)
    elif norm == "l2":
        x_adv = project_l2(x_adv, x, eps)
    else:
        raise ValueError(_norm_error(norm, ("linf", "l2")))
    return clip_box(x_adv, *bounds)


def normalize(g: Array, norm: str) -> Array:
    """Steepest-ascent direction of unit ``norm`` for a gradient ``g`` ``[B, ...]`` (per example).

    ``"linf"`` -> ``sign(g)``; ``"l2"`` -> ``g / ||g||_2``; ``"l1"`` -> all mass on the largest
    ``|g_i|`` (split evenly between ties), signed. A zero gradient gives a zero direction.
    """
    if norm == "linf":
        return jnp.sign(g)
    if norm == "l2":
        return g / per_example(jnp.maximum(lp_norm(g, "l2"), 1e-12), g)
    if norm == "l1":
        abs_g = jnp.abs(g)
        max_abs = jnp.max(abs_g, axis=_reduce_axes(g), keepdims=True)
        ties = (abs_g == max_abs) & (max_abs > 0)
        count = jnp.maximum(jnp.sum(ties, axis=_reduce_axes(g), keepdims=True), 1)
        return jnp.sign(g) * ties / count
    raise ValueError(_norm_error(norm, NORMS))


# --------------------------------------------------------------------------------------------------------
# Gradients and predictions
# --------------------------------------------------------------------------------------------------------


def loss_and_grad(
    logits_fn: LogitsFn,
    loss_fn: LossFn,
    x: Array,
    y: Array,
    targeted: bool = False,
) -> tuple[Array, Array, Array]:
    """Per-example attack objective, logits and input gradient in one backward pass.

    The objective is ``loss_fn(logits_fn(x), y)`` for an untargeted attack and its negative for a targeted
    one, so the attacker always *ascends* it. The gradient is that of the summed objective, which is the
    per-example gradient whenever examples do not interact (eval-mode BatchNorm, no batch statistics).

    Returns:
      ``(objective [B], logits [B, K], grad [B, ...])``.
    """
    sign = -1.0 if targeted else 1.0

    def total(x_):
        logits = logits_fn(x_)
        obj = sign * loss_fn(logits, y)
        return jnp.sum(obj), (obj, logits)

    # Through canonicalize_convs also outside loops (FGSM, minimal FGSM, user code): on CPU a model's
    # nn.max_pool gradient then runs as selects instead of XLA's slow select_and_scatter; same numbers.
    (_, (obj, logits)), grad = xla_cpu.canonicalize_convs(jax.value_and_grad(total, has_aux=True))(x)
    return obj, logits, grad


def input_gradient(logits_fn: LogitsFn, loss: str | LossFn = "ce", targeted: bool = False) -> Callable:
    """Returns ``(x, y) -> d objective / dx`` for the named (or given) per-example loss.

    Example:
      ``g = input_gradient(logits_fn, "ce")(x, y)``.
    """
    loss_fn = get_loss(loss)

    def grad_fn(x: Array, y: Array) -> Array:
        return loss_and_grad(logits_fn, loss_fn, x, y, targeted)[2]

    return grad_fn


def is_success(logits: Array, y: Array, targeted: bool = False) -> Array:
    """``[B]`` bool: misclassified (untargeted) or classified as the target ``y`` (targeted)."""
    pred = jnp.argmax(logits, axis=-1)
    return pred == y if targeted else pred != y


# --------------------------------------------------------------------------------------------------------
# Validation: static checks always raise; value checks raise when concrete, debug_check when traced
# --------------------------------------------------------------------------------------------------------


def is_concrete(*values) -> bool:
    """True when none of ``values`` is a JAX tracer (i.e. we are not inside jit/vmap/grad)."""
    return not any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values))


def require(values: Sequence[Any], predicate: Callable, message: str, fmt: Callable | None = None) -> None:
    """One value check, concrete or traced.

    ``predicate(xp, *values)`` returns a scalar bool and ``fmt(xp, *values)`` the arguments that fill the
    ``{}`` of ``message``; ``xp`` is ``numpy`` when every value is concrete and ``jax.numpy`` otherwise.
    Concrete values that fail raise ``ValueError(message)`` now. Traced values become a
    ``checkify.debug_check``: dropped by a plain ``jax.jit`` (its inputs are dead code that XLA removes),
    reported by ``checkify.checkify`` with the run-time values filled in.

    Example:
      ``require((eps,), lambda xp, e: xp.all(e >= 0), "pgd: eps must be >= 0, got {:.4g}", lambda xp, e: (xp.min(e),))``
    """
    if is_concrete(*values):
        vals = [np.asarray(v) for v in values]
        if not bool(predicate(np, *vals)):
            raise ValueError(message.format(*(fmt(np, *vals) if fmt else ())))
    else:
        vals = [jnp.asarray(v) for v in values]
        checkify.debug_check(predicate(jnp, *vals), message, *(fmt(jnp, *vals) if fmt else ()))


def count_problem(value: Any, minimum: int = 1, allow_none: bool = False) -> str | None:
    """What is wrong with a loop count (``None`` if nothing), by the one rule every attack uses.

    A loop count (``num_steps``, ``restarts``, ``num_queries``, ``binary_search_steps``, ...) fixes the
    shape of the program, so it is static: a Python ``int`` (numpy integers accepted) ``>= minimum``
    (``minimum`` is 1 except where a count of 0 is meaningful). ``bool``s, floats (even ``2.0``) and
    arrays are refused.
    """
    if value is None and allow_none:
        return None
    expect = f"an integer >= {minimum}" + (" or None" if allow_none else "")
    if isinstance(value, jax.core.Tracer) or isinstance(value, jax.Array):
        return (f"must be {expect} known at trace time (it fixes the program's shape), got an array; pass a "
                f"Python int (mark it static, e.g. jax.jit(..., static_argnames=...))")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return f"must be {expect}, got {value!r}"
    if value < minimum:
        return f"must be {expect}, got {value!r}"
    return None


def validate_count(value: Any, what: str, name: str, minimum: int = 1, allow_none: bool = False) -> int | None:
    """Checks a loop count by :func:`count_problem`'s rule and returns it as a Python int (or ``None``).

    Raises:
      ValueError: ``"{name}: {what} must be an integer >= {minimum}, got ..."``.
    """
    problem = count_problem(value, minimum, allow_none)
    if problem is not None:
        raise ValueError(f"{name}: {what} {problem}.")
    return None if value is None else int(value)


def validate_norm(norm: str, valid: Sequence[str] = ("linf", "l2")) -> None:
    """Raises ValueError if ``norm`` is not one of ``valid`` (a static check, also run under jit)."""
    if norm not in valid:
        raise ValueError(_norm_error(norm, valid))


def looks_nchw(shape: Sequence[int]) -> bool:
    """True for a 4-D shape whose axis 1 looks like channels (1 or 3) and whose last axis does not."""
    return len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3, 4) and shape[3] > 4


def nchw_hint(shape: Sequence[int]) -> str:
    """A hint for NCHW-looking batches (``""`` otherwise): robustjax attacks and models use NHWC."""
    if not looks_nchw(shape):
        return ""
    return (f" x {tuple(shape)} looks like NCHW [batch, channels, height, width]; robustjax attacks take NHWC "
            f"images [batch, height, width, channels]: pass x.transpose(0, 2, 3, 1) (and have logits_fn take "
            f"NHWC, e.g. transpose back inside it).")


def validate_static(x: Array, y: Array | None = None, *, eps=None, bounds=(0.0, 1.0), name: str = "attack",
                    **per_example) -> None:
    """The static half of :func:`validate_inputs` (ranks, shapes, dtypes): raises at trace time, under jit too."""
    x_shape = tuple(np.shape(x))
    if len(x_shape) < 2:
        raise ValueError(
            f"{name}: x must be a batch [batch, ...] with at least 2 dimensions, got shape {x_shape}; "
            f"add a batch axis, e.g. x[None]."
        )
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise ValueError(
            f"{name}: x must be floating point images (dtype {jnp.result_type(x)} given); "
            f"convert with x.astype(jnp.float32) / 255.0 if they are uint8 pixels."
        )
    if y is not None:
        y_shape = tuple(np.shape(y))
        if y_shape != x_shape[:1]:
            if len(x_shape) == 3 and x_shape[-1] in (1, 3, 4) and y_shape in ((), (1,)):
                raise ValueError(
                    f"{name}: x {x_shape} looks like one HWC image, read as a batch of {x_shape[0]}; add a "
                    f"batch axis: x[None] (and y[None] for a scalar label; y has shape {y_shape})."
                )
            if y_shape == ():
                raise ValueError(
                    f"{name}: y must be a vector of labels [batch] = [{x_shape[0]}], got a scalar; for one "
                    f"example pass x[None] and y[None]."
                )
            raise ValueError(
                f"{name}: y must have shape [batch] = [{x_shape[0]}] to match x {x_shape} (batch axis first), "
                f"got {y_shape}; pass integer class labels, not one-hot vectors."
            )
        if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
            raise ValueError(
                f"{name}: y must be integer class labels, got dtype {jnp.result_type(y)}; "
                f"use y.astype(jnp.int32) (or argmax of one-hot labels)."
            )
    if bounds is not None:
        if len(bounds) != 2:
            raise ValueError(f"{name}: bounds must be a pair (lo, hi), got {bounds!r}.")
        for b in bounds:
            if np.shape(b) != ():
                raise ValueError(f"{name}: bounds must be two scalars (lo, hi), got shapes "
                                 f"{[np.shape(b) for b in bounds]}.")
    for key, value in (("eps", eps), *per_example.items()):
        if value is None:
            continue
        if isinstance(value, (str, bytes)) or not jnp.issubdtype(jnp.result_type(value), jnp.number):
            raise ValueError(f"{name}: {key} must be a number (scalar or per-example [{x_shape[0]}]), "
                             f"got {value!r}.")
        if tuple(np.shape(value)) not in ((), x_shape[:1]):
            raise ValueError(
                f"{name}: {key} must be a scalar or per-example [{x_shape[0]}], got shape {np.shape(value)}."
            )


def _validate_values(x, y, eps, bounds, num_classes, atol, name, finite_eps, nonneg) -> None:
    if bounds is not None:
        lo, hi = bounds
        require((lo, hi), lambda xp, lo, hi: xp.isfinite(lo) & xp.isfinite(hi) & (lo < hi),
                f"{name}: bounds must be finite with lo < hi, got ({{:.4g}}, {{:.4g}}); e.g. bounds=(0.0, 1.0).",
                lambda xp, lo, hi: (lo, hi))
    require((x,), lambda xp, x: xp.all(xp.isfinite(x)),
            f"{name}: x has {{}} non-finite pixel(s) (NaN or inf); clean the inputs before attacking.",
            lambda xp, x: (xp.sum(~xp.isfinite(x)),))
    if bounds is not None and np.size(x):
        require((x, lo, hi), lambda xp, x, lo, hi: (xp.min(x) >= lo - atol) & (xp.max(x) <= hi + atol),
                f"{name}: pixels of x lie in [{{:.4g}}, {{:.4g}}], outside bounds=({{:.4g}}, {{:.4g}}); rescale "
                f"the images to the bounds (e.g. x / 255.0) or pass the right bounds=.",
                lambda xp, x, lo, hi: (xp.min(x), xp.max(x), lo, hi))
    if y is not None and num_classes is not None and np.size(y):
        require((y,), lambda xp, y: (xp.min(y) >= 0) & (xp.max(y) < num_classes),
                f"{name}: labels must be in [0, {num_classes}) (num_classes from the logits), "
                f"got values in [{{}}, {{}}].",
                lambda xp, y: (xp.min(y), xp.max(y)))
    for key, value in (("eps", eps), *nonneg.items()):
        if value is None:
            continue
        allowed = " (inf allowed)" if key == "eps" and not finite_eps else ""
        require((value,), lambda xp, v: xp.all(v >= 0),  # NaN fails too
                f"{name}: {key} must be >= 0{allowed}, got {{:.4g}}.", lambda xp, v: (xp.min(v),))
    if eps is not None and finite_eps:
        why = f" ({finite_eps})" if isinstance(finite_eps, str) else ""
        require((eps,), lambda xp, v: xp.all(xp.isfinite(v)),
                f"{name}: eps must be finite{why}, got {{:.4g}}.", lambda xp, v: (xp.max(v),))


def validate_inputs(
    x: Array,
    y: Array | None = None,
    *,
    eps: float | Array | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    num_classes: int | None = None,
    atol: float = 1e-5,
    name: str = "attack",
    finite_eps: bool | str = False,
    **positive: float | Array | None,
) -> None:
    """Checks an attack's inputs and raises a ValueError that says what is wrong and how to fix it.

    Static checks always run, under ``jit`` too: ``x`` a floating-point batch ``[B, ...]``, ``y`` integer
    labels ``[B]`` (with a hint when ``x`` looks like one image without its batch axis), ``bounds`` a pair,
    ``eps`` and the hyperparameters scalars or ``[B]``. Value checks (finite pixels, pixels inside
    ``bounds``, labels in ``[0, num_classes)``, ``eps`` and extra hyperparameters ``>= 0``, ``eps`` finite
    when ``finite_eps``) raise on concrete values; on traced values they are ``checkify.debug_check``s,
    free under a plain ``jit`` and reported under ``checkify.checkify`` (see :func:`require`).

    Args:
      x: image batch ``[B, ...]`` (floating point).
      y: label batch ``[B]`` (integer), or ``None``.
      eps: radius (scalar or ``[B]``), ``jnp.inf`` allowed unless ``finite_eps``; ``None`` skips.
      bounds: ``(lo, hi)`` pixel range with ``lo < hi``; ``None`` skips the box check.
      num_classes: number of classes ``K`` if known (labels must be in ``[0, K)``).
      atol: tolerance for pixels slightly outside ``bounds``.
      name: attack name used in the messages.
      finite_eps: also require a finite ``eps`` (a string: the reason, added to the message).
      **positive: further hyperparameters that must be ``>= 0`` (e.g. ``step_size=0.01``).

    Raises:
      ValueError: on the first problem found (value problems only when the values are concrete).
    """
    validate_static(x, y, eps=eps, bounds=bounds, name=name, **positive)
    _validate_values(x, y, eps, bounds, num_classes, atol, name, finite_eps, positive)


def num_classes_of(logits_fn: LogitsFn, x: Array, name: str = "attack") -> int:
    """Number of classes, read from the logits' shape without running the model (``jax.eval_shape``).

    If ``logits_fn`` fails on ``x`` and ``x`` looks NCHW, the error says so (the model's own shape error
    rarely does).
    """
    x_shape = tuple(np.shape(x))
    try:
        shape = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(x_shape, jnp.result_type(x))).shape
    except (TypeError, ValueError) as e:
        hint = nchw_hint(x_shape)
        if hint:
            raise ValueError(f"{name}: logits_fn failed on x ({type(e).__name__}: {e}).{hint}") from e
        raise
    if len(shape) != 2 or shape[0] != x_shape[0]:
        raise ValueError(
            f"{name}: logits_fn must map x {x_shape} to logits [batch, num_classes], got shape {shape}."
            + nchw_hint(x_shape)
        )
    return int(shape[-1])


def check_attack_inputs(
    name: str,
    logits_fn: LogitsFn,
    x: Array,
    y: Array | None,
    *,
    eps: float | Array | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    finite_eps: bool | str = False,
    **positive: float | Array | None,
) -> int:
    """An attack's entry check: static checks, the number of classes (no model run), then value checks.

    The order matters: a wrong rank or dtype is reported as such before the model sees ``x``.

    Returns:
      The number of classes ``K`` of ``logits_fn``'s output.
    """
    validate_static(x, y, eps=eps, bounds=bounds, name=name, **positive)
    num_classes = num_classes_of(logits_fn, x, name)
    _validate_values(x, y, eps, bounds, num_classes, 1e-5, name, finite_eps, positive)
    return num_classes


def finish(x_adv: Array, bounds: tuple[float, float] | None) -> Array:
    """An attack's output: clipped into ``bounds`` (so it lies in the box whatever the input) and
    ``stop_gradient``-ed. The clip changes nothing for an input already inside the box."""
    if bounds is not None:
        x_adv = clip_box(x_adv, *bounds)
    return jax.lax.stop_gradient(x_adv)
