"""Loop bodies for XLA:CPU: canonical NHWC/HWIO convolutions, and max-pool gradients as selects.

    from robustjax.attacks import xla_cpu
    x_adv = jax.lax.fori_loop(0, num_steps, xla_cpu.canonicalize_convs(body), x)

XLA:CPU rewrites a convolution whose operands are not NHWC/HWIO into a canonical one (so that it runs
on the fast YNNPACK/Eigen kernels) only in the *entry* computation: its convolution-canonicalization pass
does not visit the computations of loop bodies. JAX's transpose rule gives every input-gradient convolution a
kernel with its in/out dimensions swapped ("01oi"), so inside a `while` body (fori_loop, scan) those
convolutions fall back to a naive elemental loop: PGD-40 on a LeNet ran 5.7x slower than 40 separate
gradients (docs/attack_speed_notes.md). `canonicalize_convs` re-emits such convolutions with explicit
transposes to NHWC/HWIO, which XLA then fuses normally. It changes no numbers, only the HLO.

The same rewrite replaces the gradient of a non-overlapping max pool (``nn.max_pool(x, (2, 2), strides=(2,
2))``, i.e. ``lax.reduce_window`` max), which JAX expresses as ``select_and_scatter_add``: XLA:CPU runs that
op ~40x slower than the pool itself, and it dominated PGD on a LeNet written with ``nn.max_pool``. For
windows that tile the input it is re-emitted as slices, compares and selects that route each cotangent to
the first maximum of its window, as ``select_and_scatter`` does, ties included (bit-identical gradients
for finite inputs; a window holding a NaN gets a zero gradient; ``tests/test_attacks_core.py``).
Overlapping or padded windows keep XLA's op. robustjax's own models pool by reshaping
(``models.layers.max_pool_2x2``), so this matters for the user's models.

``core.loss_and_grad`` (FGSM, minimal FGSM, ``input_gradient``) applies the rewrite outside loops too.

Every iterative attack wraps its loop bodies in :func:`canonicalize_convs` (``tests/test_attacks_loops.py``
pins that); it is re-exported as ``robustjax.attacks.canonicalize_convs`` and ``core.canonicalize_convs``.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Callable

import jax
import jax.extend.core as jex
import jax.numpy as jnp


def _canonical_conv(lhs, rhs, params):
    dn = params["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    n = len(lhs_spec)
    canon_io = (0, n - 1, *range(1, n - 1))       # batch, feature, spatial... for NHWC
    canon_k = (n - 1, n - 2, *range(0, n - 2))    # out, in, spatial... for HWIO
    if (
        (tuple(lhs_spec), tuple(rhs_spec), tuple(out_spec)) == (canon_io, canon_k, canon_io)
        or params.get("feature_group_count", 1) != 1
        or params.get("batch_group_count", 1) != 1
    ):
        return jex.primitives.conv_general_dilated_p.bind(lhs, rhs, **params)
    lhs_t = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    rhs_t = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    new_dn = jax.lax.ConvDimensionNumbers(lhs_spec=canon_io, rhs_spec=canon_k, out_spec=canon_io)
    out = jex.primitives.conv_general_dilated_p.bind(lhs_t, rhs_t, **{**params, "dimension_numbers": new_dn})
    perm = [0] * n
    perm[out_spec[0]], perm[out_spec[1]] = 0, n - 1
    for i, axis in enumerate(out_spec[2:]):
        perm[axis] = 1 + i
    return jnp.transpose(out, perm)


# Windows with more entries than this keep XLA's select_and_scatter (the rewrite unrolls over the window).
_MAX_POOL_WINDOW = 16


def _pool_vjp_by_windows(source, operand, params):
    """``select_and_scatter_add`` of a non-overlapping max (or min) pool, as slices and selects.

    XLA:CPU's ``select_and_scatter`` (the VJP of ``lax.reduce_window`` max pooling, e.g. ``nn.max_pool``)
    is ~40x slower than the pool itself. For windows that tile the input (stride = window, no padding)
    the same gradient is: reshape the input into its windows, find each window's maximum, and route the
    cotangent to the first entry (in row-major window order) that equals it - exactly what
    ``select_and_scatter`` with ``ge`` does, ties included. Anything else is bound unchanged.
    """
    win, strides = tuple(params["window_dimensions"]), tuple(params["window_strides"])
    select = params["select_prim"]
    if (
        win != strides
        or any(tuple(p) != (0, 0) for p in params["padding"])
        or select not in (jex.primitives.ge_p, jex.primitives.le_p)
        or not jnp.issubdtype(operand.dtype, jnp.floating)
        or math.prod(win) > _MAX_POOL_WINDOW
        or any(o != s // w for o, s, w in zip(source.shape, operand.shape, win))
    ):
        return jex.primitives.select_and_scatter_add_p.bind(source, operand, **params)
    n = operand.ndim
    crop = operand[tuple(slice(0, o * w) for o, w in zip(source.shape, win))]
    y = crop.reshape([d for o, w in zip(source.shape, win) for d in (o, w)])
    positions = list(itertools.product(*(range(w) for w in win)))
    entries = [y[tuple(i for p in pos for i in (slice(None), p))] for pos in positions]
    best = functools.reduce(jnp.maximum if select is jex.primitives.ge_p else jnp.minimum, entries)
    taken = jnp.zeros(source.shape, bool)
    zero = jnp.zeros((), source.dtype)
    parts = []
    for entry in entries:
        hit = (entry == best) & ~taken
        parts.append(jnp.where(hit, source, zero))
        taken = taken | hit
    out = jnp.stack(parts, axis=-1).reshape(*source.shape, *win)
    out = jnp.transpose(out, [a for i in range(n) for a in (i, n + i)]).reshape(crop.shape)
    return jax.lax.pad(out, zero, [(0, s - c, 0) for s, c in zip(operand.shape, crop.shape)])


def _eval_canonical(jaxpr, consts, *args):
    env = {}

    def read(v):
        return v.val if isinstance(v, jex.Literal) else env[v]

    def write(v, val):
        if not isinstance(v, jex.DropVar):
            env[v] = val

    for v, val in zip(jaxpr.constvars, consts):
        write(v, val)
    for v, val in zip(jaxpr.invars, args):
        write(v, val)
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        prim = eqn.primitive
        if prim is jex.primitives.conv_general_dilated_p:
            outs = [_canonical_conv(*invals, eqn.params)]
        elif prim is jex.primitives.select_and_scatter_add_p:
            outs = [_pool_vjp_by_windows(*invals, eqn.params)]
        elif prim in (jex.primitives.jit_p, jex.primitives.closed_call_p):
            closed = eqn.params["jaxpr"] if prim is jex.primitives.jit_p else eqn.params["call_jaxpr"]
            inner = getattr(closed, "jaxpr", closed)
            outs = _eval_canonical(inner, getattr(closed, "consts", ()), *invals)
        else:
            bind_params = prim.get_bind_params(eqn.params)
            subfuns = []
            if isinstance(bind_params, tuple):  # older jax: (subfuns, params)
                subfuns, bind_params = bind_params
            ctx = getattr(getattr(eqn, "ctx", None), "manager", None)
            if ctx is not None:
                with ctx:
                    outs = prim.bind(*subfuns, *invals, **bind_params)
            else:
                outs = prim.bind(*subfuns, *invals, **bind_params)
            if not prim.multiple_results:
                outs = [outs]
        for v, val in zip(eqn.outvars, outs):
            write(v, val)
    return [read(v) for v in jaxpr.outvars]


def canonicalize_convs(fn: Callable) -> Callable:
    """Wraps a loop body so that its convolutions reach XLA:CPU in NHWC/HWIO form and its non-overlapping
    max-pool gradients run as selects instead of ``select_and_scatter`` (CPU only).

    Use it on the body of any ``lax.fori_loop``/``while_loop``/``scan`` that differentiates through a
    conv net: ``lax.fori_loop(0, n, canonicalize_convs(body), init)``. On other backends, or if the
    rewrite meets something it cannot handle, ``fn`` runs unchanged. Numbers are identical either way.
    """
    if jax.default_backend() != "cpu":
        return fn

    @functools.wraps(fn)
    def wrapped(*args):
        try:
            closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        except Exception:  # pragma: no cover - fall back to the plain body
            return fn(*args)
        flat = _eval_canonical(closed.jaxpr, closed.consts, *jax.tree_util.tree_leaves(args))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), flat)

    return wrapped
