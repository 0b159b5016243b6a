"""Tests for robustjax.attacks.core: losses, projections, norms, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import pytest
from jax.experimental import checkify

from robustjax import attacks
from robustjax.attacks import core

jax.config.update("jax_disable_most_optimizations", True)

LOGITS = jnp.array([[2.0, 1.0, 0.0, -1.0], [0.5, 3.0, 1.0, 0.0]])
LABELS = jnp.array([0, 2])


def test_ce_loss_matches_hand_computed():
    z = np.asarray(LOGITS, np.float64)
    expected = [np.log(np.exp(z[0]).sum()) - 2.0, np.log(np.exp(z[1]).sum()) - 1.0]
    np.testing.assert_allclose(attacks.ce_loss(LOGITS, LABELS), expected, rtol=1e-6)


@pytest.mark.parametrize("margin", [5.0, 30.0, 80.0])
def test_ce_loss_gradient_keeps_the_label_component_when_softmax_saturates(margin):
    # softmax_y rounds to 1 in float32 for margins above ~17: the textbook form's d/dz_y = p_y - 1 is then
    # exactly 0 while d/dz_j = p_j is not. The gradient must match float64 p - onehot in every component.
    z = jnp.array([[margin, 0.0, -1.0], [0.0, margin, 2.0]], jnp.float32)
    y = jnp.array([0, 1])
    g = np.asarray(jax.grad(lambda z: attacks.ce_loss(z, y).sum())(z), np.float64)
    z64 = np.asarray(z, np.float64)
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = p - np.eye(3)[np.asarray(y)]
    others = np.where(np.eye(3)[np.asarray(y)] > 0, 0.0, p)
    expected[[0, 1], [0, 1]] = -others.sum(-1)  # 1 - p_y without cancellation, even in float64
    np.testing.assert_allclose(g, expected, rtol=1e-5)
    assert np.all(g[[0, 1], [0, 1]] < 0)
    np.testing.assert_allclose(attacks.ce_loss(z, y), np.log1p(others.sum(-1) / p[[0, 1], [0, 1]]), rtol=1e-5)


def test_ce_loss_misclassified_large_gap_is_finite():
    z = jnp.array([[-200.0, 200.0]])
    y = jnp.array([0])
    np.testing.assert_allclose(attacks.ce_loss(z, y), [400.0], rtol=1e-6)
    g = jax.grad(lambda z: attacks.ce_loss(z, y).sum())(z)
    np.testing.assert_allclose(g, [[-1.0, 1.0]], atol=1e-6)


def test_margin_loss_matches_hand_computed():
    # example 0: max other = 1, z_y = 2 -> -1 ; example 1: max other = 3, z_y = 1 -> 2
    np.testing.assert_allclose(attacks.margin_loss(LOGITS, LABELS), [-1.0, 2.0])


def test_dlr_loss_matches_hand_computed():
    # ex 0: -(2 - 1) / (2 - 0) = -0.5 ; ex 1: sorted 3, 1, 0.5 -> -(1 - 3) / (3 - 0.5) = 0.8
    np.testing.assert_allclose(attacks.dlr_loss(LOGITS, LABELS), [-0.5, 0.8], rtol=1e-6)


def test_dlr_loss_is_shift_and_scale_invariant():
    np.testing.assert_allclose(attacks.dlr_loss(3.0 * LOGITS + 7.0, LABELS), attacks.dlr_loss(LOGITS, LABELS),
                               rtol=1e-5)


def test_dlr_targeted_loss_matches_hand_computed():
    targets = jnp.array([3, 0])
    # ex 0: -(2 - (-1)) / (2 - (0 + -1)/2) = -3 / 2.5 ; ex 1: sorted 3,1,0.5,0 -> -(1 - 0.5) / (3 - 0.25)
    expected = [-3.0 / 2.5, -0.5 / 2.75]
    np.testing.assert_allclose(attacks.dlr_targeted_loss(LOGITS, LABELS, targets), expected, rtol=1e-6)


def test_dlr_needs_three_classes():
    with pytest.raises(ValueError, match="at least 3 classes"):
        attacks.dlr_loss(jnp.zeros((2, 2)), jnp.array([0, 1]))


def test_get_loss_names_and_error():
    assert attacks.get_loss("margin") is attacks.margin_loss
    fn = lambda z, y: z[:, 0]
    assert attacks.get_loss(fn) is fn
    with pytest.raises(ValueError, match=r"valid names are \['ce', 'dlr', 'margin'\]"):
        attacks.get_loss("xent")


def test_lp_norms():
    d = jnp.array([[[3.0, -4.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(attacks.lp_norm(d, "linf"), [4.0, 1.0])
    np.testing.assert_allclose(attacks.lp_norm(d, "l2"), [5.0, 1.0])
    np.testing.assert_allclose(attacks.lp_norm(d, "l1"), [7.0, 1.0])
    with pytest.raises(ValueError, match="Unknown norm 'l3'"):
        attacks.lp_norm(d, "l3")


def test_project_linf_and_box():
    x = jnp.full((2, 3), 0.5)
    x_adv = jnp.array([[0.9, 0.1, 0.55], [2.0, -1.0, 0.5]])
    out = attacks.project(x_adv, x, 0.2, "linf", (0.0, 1.0))
    np.testing.assert_allclose(out, [[0.7, 0.3, 0.55], [0.7, 0.3, 0.5]], atol=1e-6)
    out_inf = attacks.project(x_adv, x, jnp.inf, "linf", (0.0, 1.0))
    np.testing.assert_allclose(out_inf, jnp.clip(x_adv, 0, 1))


def test_project_l2_scales_only_outside_ball():
    x = jnp.zeros((2, 2))
    x_adv = jnp.array([[3.0, 4.0], [0.3, 0.4]])
    out = attacks.project_l2(x_adv, x, 1.0)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.3, 0.4]], atol=1e-6)
    # per-example eps, and inf leaves everything alone
    out = attacks.project_l2(x_adv, x, jnp.array([10.0, 0.25]))
    np.testing.assert_allclose(out, [[3.0, 4.0], [0.15, 0.2]], atol=1e-6)
    np.testing.assert_allclose(attacks.project_l2(x_adv, x, jnp.inf), x_adv)


def test_normalize_directions():
    g = jnp.array([[1.0, -3.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(attacks.normalize(g, "linf"), jnp.sign(g))
    np.testing.assert_allclose(attacks.lp_norm(attacks.normalize(g, "l2"), "l2"), [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(attacks.normalize(g, "l1"), [[0.0, -0.5, 0.5], [0.0, 0.0, 0.0]])


def test_input_gradient_of_linear_ce():
    w = jnp.array([[1.0, -1.0], [2.0, 0.0]])  # 2 features -> 2 classes
    f = lambda x: x @ w
    x = jnp.array([[0.3, 0.1]])
    y = jnp.array([0])
    p = jax.nn.softmax(f(x))
    expected = (p - jax.nn.one_hot(y, 2)) @ w.T
    np.testing.assert_allclose(attacks.input_gradient(f, "ce")(x, y), expected, rtol=1e-5)
    np.testing.assert_allclose(attacks.input_gradient(f, "ce", targeted=True)(x, y), -expected, rtol=1e-5)


# ---- validation ---------------------------------------------------------------------------------------

X = jnp.full((2, 3, 3, 1), 0.5)
Y = jnp.array([0, 1])


def test_validate_accepts_good_inputs():
    core.validate_inputs(X, Y, eps=0.3, bounds=(0.0, 1.0), num_classes=10)
    core.validate_inputs(X, Y, eps=jnp.inf, num_classes=10)
    core.validate_inputs(X, Y, eps=jnp.array([0.1, 0.2]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=X.at[0, 0, 0, 0].set(jnp.nan)), "non-finite"),
        (dict(y=jnp.array([0, 10])), r"labels must be in \[0, 10\)"),
        (dict(y=jnp.array([0, -1])), r"labels must be in \[0, 10\)"),
        (dict(eps=-0.1), "eps must be >= 0"),
        (dict(eps=jnp.nan), "eps must be >= 0"),
        (dict(bounds=(1.0, 0.0)), "lo < hi"),
        (dict(y=jnp.array([0, 1, 2])), r"y must have shape \[batch\] = \[2\]"),
        (dict(y=jnp.array([0.0, 1.0])), "integer class labels"),
        (dict(x=X * 255.0), "outside bounds"),
        (dict(x=jnp.zeros((3,))), "at least 2 dimensions"),
        (dict(x=X.astype(jnp.int32)), "floating point"),
        (dict(eps=jnp.ones(3)), "per-example"),
        (dict(step_size=-1.0), "step_size must be >= 0"),
    ],
)
def test_validate_rejects_bad_inputs(kwargs, match):
    args = dict(x=X, y=Y, eps=0.3, bounds=(0.0, 1.0), num_classes=10)
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(ValueError, match=match):
        core.validate_inputs(x, y, **args)


def test_validate_under_plain_jit_is_silent_and_checkify_reports():
    # Traced values are unknown at trace time: a plain jit runs on (no error, no crash) ...
    def f(x, eps):
        core.validate_inputs(x, Y, eps=eps, num_classes=10)
        return x

    jax.jit(f)(X.at[0, 0, 0, 0].set(jnp.nan), -1.0)
    # ... and checkify reports the first problem, with its run-time values.
    checked = jax.jit(checkify.checkify(f))
    assert checked(X, 0.1)[0].get() is None
    assert "x has 1 non-finite pixel(s)" in checked(X.at[0, 0, 0, 0].set(jnp.nan), -1.0)[0].get()
    assert "eps must be >= 0 (inf allowed), got -1" in checked(X, -1.0)[0].get()


def test_validate_static_checks_run_under_jit_and_hint_at_the_batch_axis():
    with pytest.raises(ValueError, match=r"looks like one HWC image.*x\[None\]"):
        jax.jit(lambda x, y: core.validate_inputs(x, y)).trace(X[0], Y[0])
    with pytest.raises(ValueError, match=r"y must be a vector of labels \[batch\] = \[2\], got a scalar"):
        jax.jit(lambda x, y: core.validate_inputs(x, y)).trace(X, Y[0])


def test_validate_count_rule():
    assert core.validate_count(3, "num_steps", "pgd") == 3
    assert type(core.validate_count(np.int32(3), "num_steps", "pgd")) is int
    assert core.validate_count(None, "chunk_size", "apgd", allow_none=True) is None
    assert core.validate_count(0, "num_bisection", "minimal_fgsm", minimum=0) == 0
    for bad in (0, 2.5, True, None, jnp.asarray(3)):
        with pytest.raises(ValueError, match="pgd: num_steps must be an integer >= 1"):
            core.validate_count(bad, "num_steps", "pgd")


# ---- canonicalize_convs -----------------------------------------------------------------------------------


def _conv_net(w1, w2):
    def f(x):
        h = jax.lax.conv_general_dilated(x, w1, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.jit(jax.nn.relu)(h)  # a nested jit, as flax/optax code often has
        # an NCHW/OIHW conv and a grouped conv exercise the other dimension-number paths
        h = jax.lax.conv_general_dilated(h.transpose(0, 3, 1, 2), w2, (1, 1), "SAME",
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.lax.conv_general_dilated(h, jnp.ones((4, 1, 3, 3)), (2, 2), "VALID", feature_group_count=4,
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return h.reshape(h.shape[0], -1)[:, :3]
    return f


@pytest.fixture(scope="module")
def conv_loop():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    f = _conv_net(jax.random.normal(k1, (3, 3, 2, 4)), jax.random.normal(k2, (4, 4, 3, 3)))
    x = jax.random.uniform(k3, (2, 6, 6, 2))
    y = jnp.array([0, 2])

    def body(_, xa):
        return xa + 0.01 * jnp.sign(attacks.input_gradient(f, "ce")(xa, y))

    return x, body


def test_canonicalize_convs_keeps_numbers(conv_loop):
    x, body = conv_loop
    plain = jax.jit(lambda x: jax.lax.fori_loop(0, 3, body, x))
    canon = jax.jit(lambda x: jax.lax.fori_loop(0, 3, core.canonicalize_convs(body), x))
    np.testing.assert_allclose(canon(x), plain(x), atol=1e-6)
    # and under vmap (batches of one)
    vm = jax.jit(jax.vmap(lambda xi: core.canonicalize_convs(body)(0, xi[None])[0]))(x)
    np.testing.assert_allclose(vm, jax.jit(jax.vmap(lambda xi: body(0, xi[None])[0]))(x), atol=1e-6)


def test_canonicalize_convs_emits_only_canonical_convs_in_loops(conv_loop):
    import re

    x, body = conv_loop
    hlo = jax.jit(lambda x: jax.lax.fori_loop(0, 3, core.canonicalize_convs(body), x)).lower(x).compile().as_text()
    labels = set(re.findall(r"dim_labels=(\S+?),", hlo))
    grouped = set(re.findall(r"dim_labels=(\S+?), feature_group_count", hlo))
    assert labels - grouped <= {"b01f_01io->b01f"}, labels


def _pool_grad(window, strides, padding="VALID", reduce="max"):
    def pool(x):
        if reduce == "max":
            return nn.max_pool(x, window, strides=strides, padding=padding)
        return nn.pooling.pool(x, jnp.inf, jax.lax.min, window, strides, padding)
    return jax.grad(lambda x: jnp.sum(jnp.sin(pool(x)) * jnp.arange(1.0, 4.0)))


@pytest.mark.parametrize("window,strides,padding,reduce,shape", [
    ((2, 2), (2, 2), "VALID", "max", (2, 6, 6, 3)),
    ((2, 2), (2, 2), "VALID", "max", (2, 7, 5, 3)),     # VALID drops the odd last row / column
    ((3, 3), (3, 3), "VALID", "max", (1, 9, 6, 3)),
    ((2, 2), (2, 2), "VALID", "min", (2, 6, 6, 3)),
    ((2, 2), (2, 2), "SAME", "max", (2, 6, 6, 3)),      # SAME with no padding needed: rewritten too
    ((3, 3), (1, 1), "SAME", "max", (2, 5, 5, 3)),      # overlapping windows: XLA's op, unchanged
])
def test_canonicalize_convs_pool_gradient_is_exact_with_ties(window, strides, padding, reduce, shape):
    g = _pool_grad(window, strides, padding, reduce)
    # values on a coarse grid, so that most windows hold tied maxima: the cotangent must still go to the
    # first of them in row-major window order, as select_and_scatter's `ge` does
    x = jnp.round(jax.random.normal(jax.random.key(1), shape) * 1.5) / 2
    want = jax.jit(g)(x)
    got = jax.jit(core.canonicalize_convs(g))(x)
    np.testing.assert_array_equal(got, want)
    hlo = jax.jit(core.canonicalize_convs(g)).lower(x).as_text()
    assert ("stablehlo.select_and_scatter" in hlo) == (window != strides), hlo


def test_canonicalize_convs_removes_select_and_scatter_from_a_pgd_loop():
    model = lambda x: nn.max_pool(jnp.tanh(x), (2, 2), strides=(2, 2)).reshape(x.shape[0], -1)[:, :3]
    x = jax.random.uniform(jax.random.key(2), (2, 4, 4, 1))
    y = jnp.array([0, 2])
    pgd = jax.jit(lambda x: attacks.pgd(model, x, y, jax.random.key(0), eps=0.3, step_size=0.1, num_steps=3))
    hlo = pgd.lower(x).compile().as_text()
    assert " select-and-scatter(" not in hlo and " reduce-window(" in hlo, hlo  # the forward pool stays


def test_single_gradient_attacks_also_avoid_select_and_scatter():
    # loss_and_grad (FGSM, minimal FGSM, input_gradient) goes through the same rewrite, numbers unchanged
    model = lambda x: nn.max_pool(jnp.tanh(x), (2, 2), strides=(2, 2)).reshape(x.shape[0], -1)[:, :3]
    x = jnp.round(jax.random.uniform(jax.random.key(3), (2, 4, 4, 1)) * 4) / 4  # ties
    y = jnp.array([0, 2])
    hlo = jax.jit(lambda x: attacks.fgsm(model, x, y, eps=0.1)).lower(x).compile().as_text()
    assert " select-and-scatter(" not in hlo, hlo
    plain = jax.jit(jax.grad(lambda v: jnp.sum(attacks.ce_loss(model(v), y))))(x)
    # a tie sent to the wrong entry would differ by a whole gradient component, not by rounding
    np.testing.assert_allclose(jax.jit(attacks.input_gradient(model, "ce"))(x, y), plain, rtol=0, atol=1e-6)


def test_map_live_chunks_runs_only_chunks_with_live_examples():
    x = jnp.arange(7.0)[:, None] * jnp.ones((1, 2))
    live = jnp.array([False, True, False, False, True, False, False])

    def run(key, ops, lv):
        (xc,) = ops
        return xc * 10.0 + 1.0, lv

    def skip(ops, lv):
        (xc,) = ops
        return -xc, jnp.zeros_like(lv)

    out, lv_out = jax.jit(lambda x, live: core.map_live_chunks(run, skip, (x,), live, jax.random.key(0), 2))(x, live)
    # live examples 1 and 4 share the first chunk (run); every other chunk holds only dead examples (skip)
    expected = np.where(np.asarray(live)[:, None], np.asarray(x) * 10.0 + 1.0, -np.asarray(x))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(lv_out, live)
