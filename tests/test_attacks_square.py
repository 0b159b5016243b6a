"""Tests for the Square Attack (robustjax.attacks.square): no gradients, the paper's schedule and patterns.

Tiny pure-jax models on 6x6x1 "images" with 5 classes. The property tests shared with APGD and FAB (ball,
box, determinism, jit, vmap) live in test_attacks_apgd_fab.py.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks

square_lib = importlib.import_module("robustjax.attacks.square")

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 8, 6, 6, 1, 5
D = H * W * C


def _flat(x):
    return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def data():
    return jax.random.uniform(jax.random.key(1), (B, H, W, C), minval=0.05, maxval=0.95)


@pytest.fixture(scope="module")
def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    w1 = jax.random.normal(k1, (D, 16)) / 3
    w2 = jax.random.normal(k2, (16, K))
    return lambda x: jnp.tanh(_flat(x) @ w1 * 3) @ w2


@pytest.fixture(scope="module")
def no_grad_mlp(mlp):
    """The same model, but differentiating it raises: Square must only ever evaluate it."""

    @jax.custom_vjp
    def guarded(x):
        return mlp(x)

    def fwd(x):
        return mlp(x), None

    def bwd(_, g):
        raise AssertionError("square took a gradient of the model")

    guarded.defvjp(fwd, bwd)
    return guarded


def _margin(fn, x, y):
    return np.asarray(attacks.margin_loss(fn(x), y))  # max_{j != y} z_j - z_y: > 0 iff fooled


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.3)])
def test_square_lowers_the_margin_without_gradients(norm, eps, no_grad_mlp, data):
    x = data
    y = jnp.argmax(no_grad_mlp(x), -1)
    with pytest.raises(AssertionError, match="gradient"):  # the guard works
        jax.grad(lambda x_: jnp.sum(no_grad_mlp(x_)))(x)
    x_adv = jax.jit(functools.partial(square_lib.square, no_grad_mlp, eps=eps, norm=norm, num_queries=100))(
        x, y, jax.random.key(0))
    before, after = _margin(no_grad_mlp, x, y), _margin(no_grad_mlp, x_adv, y)
    assert np.all(after >= before - 1e-6)  # a query is only kept if it helps
    assert np.mean(after - before) > 0.05
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, norm)) <= eps + 1e-5)
    if norm == "l2":  # the L2 attack always spends the whole budget (before the box clip)
        assert np.all(np.asarray(attacks.lp_norm(x_adv - x, norm)) >= 0.5 * eps)


def test_square_quantised_model(mlp, data):
    """A piecewise-constant model (rounded logits) has zero gradients; Square still makes progress."""
    quantised = lambda x_: jnp.round(mlp(x_) * 4) / 4  # noqa: E731
    x = data
    y = jnp.argmax(mlp(x), -1)
    x_adv = square_lib.square(quantised, x, y, jax.random.key(1), eps=0.1, num_queries=60)
    assert np.mean(_margin(mlp, x_adv, y) - _margin(mlp, x, y)) > 0.05


def test_square_restarts_never_hurt_and_targeted(mlp, data):
    x = data
    y = jnp.argmax(mlp(x), -1)
    key = jax.random.key(2)
    one = square_lib.square(mlp, x, y, key, eps=0.03, num_queries=30)
    two = square_lib.square(mlp, x, y, key, eps=0.03, num_queries=30, restarts=2)
    m1, m2 = _margin(mlp, one, y), _margin(mlp, two, y)
    assert np.all((m2 >= m1 - 1e-6) | (m1 > 0))  # restart 0 is the single run; a fooled example stays fooled
    assert np.all(m2[m1 > 0] > 0)
    targets = (y + 1) % K
    x_t = square_lib.square(mlp, x, targets, key, eps=0.1, num_queries=60, targeted=True, loss="ce")
    gap = lambda z: np.asarray(jnp.take_along_axis(z, targets[:, None], -1)[:, 0] - z.max(-1))  # noqa: E731
    assert np.all(gap(mlp(x_t)) >= gap(mlp(x)) - 1e-6)
    assert np.mean(gap(mlp(x_t)) - gap(mlp(x))) > 0.05


def test_p_schedule():
    p = lambda it, n: float(square_lib.p_schedule(0.8, it, n)) / 0.8  # noqa: E731
    assert p(0, 10000) == pytest.approx(1) and p(10, 10000) == pytest.approx(1)
    assert p(11, 10000) == pytest.approx(1 / 2) and p(50, 10000) == pytest.approx(1 / 2)
    assert p(51, 10000) == pytest.approx(1 / 4) and p(201, 10000) == pytest.approx(1 / 8)
    assert p(8001, 10000) == pytest.approx(1 / 512) and p(9999, 10000) == pytest.approx(1 / 512)
    assert p(2, 1000) == pytest.approx(1 / 2)  # rescaled: iteration 2 of 1000 is iteration 20 of 10000


def _rect_reference(x, y):
    """The paper's nested rectangles, written the way the authors' loop builds them."""
    delta = np.zeros([x, y])
    cx, cy = x // 2, y // 2
    for k in range(max(x // 2 + 1, y // 2 + 1)):
        delta[max(cx - k, 0):min(cx + k + 1, x), max(cy - k, 0):min(cy + k + 1, y)] += 1.0 / (k + 1) ** 2
    return delta / np.sqrt(np.sum(delta ** 2)) if delta.size else delta


@pytest.mark.parametrize("s", [1, 2, 3, 5, 6])
@pytest.mark.parametrize("transpose", [False, True])
def test_square_pattern_matches_reference(s, transpose):
    ref = np.zeros([s, s])
    ref[: s // 2] = _rect_reference(s // 2, s)
    ref[s // 2:] = -_rect_reference(s - s // 2, s)
    ref = ref / np.sqrt(np.sum(ref ** 2))
    if transpose:
        ref = ref.T
    full = np.zeros([9, 8])
    full[2:2 + s, 1:1 + s] = ref
    got = np.asarray(square_lib.square_pattern(2, 1, s, transpose, 9, 8))
    np.testing.assert_allclose(got, full, atol=1e-6)


def test_square_errors(mlp, data):
    x = data
    y = jnp.argmax(mlp(x), -1)
    key = jax.random.key(0)
    flat_fn = lambda v: mlp(v.reshape(-1, H, W, C))  # noqa: E731
    with pytest.raises(ValueError, match="NHWC"):
        square_lib.square(flat_fn, _flat(x), y, key, eps=0.1)
    with pytest.raises(ValueError, match="finite"):
        square_lib.square(mlp, x, y, key, eps=jnp.inf)
    with pytest.raises(ValueError, match="unknown loss"):
        square_lib.square(mlp, x, y, key, eps=0.1, loss="dlr")
    with pytest.raises(ValueError, match="at least 4x4"):
        square_lib.square(lambda v: mlp(jnp.tile(v, (1, 2, 2, 1))), x[:, :3, :3], y, key, eps=0.1, norm="l2")
    with pytest.raises(ValueError, match="num_queries"):
        square_lib.square(mlp, x, y, key, eps=0.1, num_queries=0)
