"""Tests for the minimal-perturbation attacks: DeepFool, Carlini-Wagner L2 and JSMA.

Tiny pure-jax models on 4x4x1 "images": linear classifiers (where the minimal perturbation has a closed
form) and a one-hidden-layer tanh MLP.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks

jsma_lib = importlib.import_module("robustjax.attacks.jsma")
minimal = importlib.import_module("robustjax.attacks.minimal")

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 6, 4, 4, 1, 4
D = H * W * C


def _flat(x):
    return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def data():
    x = jax.random.uniform(jax.random.key(1), (B, H, W, C), minval=0.35, maxval=0.65)
    return x


@pytest.fixture(scope="module")
def linear():
    w = jax.random.normal(jax.random.key(2), (D, K)) * 0.5
    b = jnp.linspace(-0.1, 0.1, K)
    return w, b, (lambda x: _flat(x) @ w + b)


@pytest.fixture(scope="module")
def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    w1 = jax.random.normal(k1, (D, 12)) / 2
    w2 = jax.random.normal(k2, (12, K))
    return lambda x: jnp.tanh(_flat(x) @ w1 * 2) @ w2


def _pred(fn, x):
    return np.asarray(jnp.argmax(fn(x), -1))


def _norm(delta, norm):
    return np.asarray(attacks.lp_norm(delta, norm))


def _linear_distance(w, b, x, y, norm):
    """Exact distance to the nearest decision boundary of a multiclass linear classifier."""
    q = 2 if norm == "l2" else 1
    z = np.asarray(_flat(x) @ w + b)
    w = np.asarray(w)
    out = []
    for i in range(x.shape[0]):
        out.append(min(abs(z[i, k] - z[i, y[i]]) / np.linalg.norm(w[:, k] - w[:, y[i]], q)
                       for k in range(w.shape[1]) if k != y[i]))
    return np.array(out)


# ------------------------------------------------------------------------------------------------ DeepFool


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_binary_linear_exact_distance(norm, data):
    """Two classes: the distance is |w.x + b| / ||w||_q, reached in one step (overshoot aside)."""
    x = data
    w = jax.random.normal(jax.random.key(4), (D,)) * 0.3
    b = 0.05
    logits_fn = lambda x_: jnp.stack([jnp.zeros(x_.shape[0]), _flat(x_) @ w + b], axis=-1)  # noqa: E731
    y = jnp.asarray(_pred(logits_fn, x))
    q = 2 if norm == "l2" else 1
    expected = np.abs(np.asarray(_flat(x) @ w + b)) / np.linalg.norm(np.asarray(w), q)
    x_adv = minimal.deepfool(logits_fn, x, y, None, norm=norm, overshoot=0.02, bounds=(-10.0, 10.0))
    np.testing.assert_allclose(_norm(x_adv - x, norm), 1.02 * (expected + 1e-4), rtol=1e-3)
    assert np.all(_pred(logits_fn, x_adv) != np.asarray(y))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_multiclass_linear_min_over_classes(norm, data, linear):
    w, b, logits_fn = linear
    x = data
    y = jnp.asarray(_pred(logits_fn, x))
    expected = _linear_distance(w, b, x, np.asarray(y), norm)
    x_adv = minimal.deepfool(logits_fn, x, y, None, norm=norm, overshoot=0.0, num_candidates=K,
                             bounds=(-10.0, 10.0))
    np.testing.assert_allclose(_norm(x_adv - x, norm), expected + 1e-4, rtol=1e-3)
    assert np.all(_pred(logits_fn, x_adv) != np.asarray(y))


def test_deepfool_stops_per_example_and_keeps_misclassified(data, mlp):
    x = data
    y = jnp.asarray(_pred(mlp, x))
    y_wrong = y.at[0].set((y[0] + 1) % K)  # example 0 starts misclassified
    x_adv = minimal.deepfool(mlp, x, y_wrong, None, num_steps=50)
    np.testing.assert_array_equal(np.asarray(x_adv[0]), np.asarray(x[0]))
    assert np.all(_pred(mlp, x_adv)[1:] != np.asarray(y)[1:])
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_deepfool_jit_vmap_and_bad_inputs(data, mlp):
    x = data
    y = jnp.asarray(_pred(mlp, x))
    attack = functools.partial(minimal.deepfool, mlp, num_steps=20)
    eager = attack(x, y, None)
    jitted = jax.jit(attack)(x, y, None)
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
    stacked = jax.vmap(lambda xb, yb: attack(xb, yb, None))(jnp.stack([x, x[::-1]]), jnp.stack([y, y[::-1]]))
    np.testing.assert_allclose(stacked[0], eager, atol=1e-5)
    np.testing.assert_allclose(stacked[1], eager[::-1], atol=1e-5)
    with pytest.raises(ValueError, match="norm"):
        minimal.deepfool(mlp, x, y, None, norm="l3")
    with pytest.raises(ValueError, match="num_candidates"):
        minimal.deepfool(mlp, x, y, None, num_candidates=1)
    with pytest.raises(ValueError, match="labels"):
        minimal.deepfool(mlp, x, y + K, None)


# ------------------------------------------------------------------------------------------------ C&W L2


@pytest.fixture(scope="module")
def cw_jit():
    def run(logits_fn, x, y, **kw):
        return jax.jit(functools.partial(minimal.cw_l2, logits_fn, **kw))(x, y, None)

    return run


def test_cw_linear_converges_to_analytic_minimum(data, linear, cw_jit):
    """On a linear model (boundary well inside the box) C&W lands within 2% of the exact L2 distance."""
    w, b, logits_fn = linear
    x = data
    y = jnp.asarray(_pred(logits_fn, x))
    expected = _linear_distance(w, b, x, np.asarray(y), "l2")
    x_adv = cw_l2 = cw_jit(logits_fn, x, y, num_steps=300, binary_search_steps=9, learning_rate=1e-2)
    got = _norm(cw_l2 - x, "l2")
    assert np.all(_pred(logits_fn, x_adv) != np.asarray(y))
    assert np.all(got >= expected * (1 - 1e-3)), (got, expected)  # cannot beat the exact minimum
    np.testing.assert_allclose(got, expected, rtol=0.02)


def test_cw_beats_deepfool_on_mlp(data, mlp, cw_jit):
    x = data
    y = jnp.asarray(_pred(mlp, x))
    x_cw = cw_jit(mlp, x, y, num_steps=200, binary_search_steps=8)
    x_df = minimal.deepfool(mlp, x, y, None)
    ok_cw = _pred(mlp, x_cw) != np.asarray(y)
    ok_df = _pred(mlp, x_df) != np.asarray(y)
    assert ok_cw.all() and ok_df.all()
    assert np.median(_norm(x_cw - x, "l2")) <= np.median(_norm(x_df - x, "l2"))


def test_cw_abort_early_loses_nothing_on_mlp(data, mlp, cw_jit):
    """Abort-early (on the batch's total objective) must not cost successes or more than 2% of the norm."""
    x = data
    y = jnp.asarray(_pred(mlp, x))
    kw = dict(num_steps=200, binary_search_steps=5, initial_const=0.01)
    x_early = cw_jit(mlp, x, y, abort_early=True, **kw)
    x_full = cw_jit(mlp, x, y, abort_early=False, **kw)
    ok_early = _pred(mlp, x_early) != np.asarray(y)
    ok_full = _pred(mlp, x_full) != np.asarray(y)
    assert ok_early.sum() >= ok_full.sum()
    both = ok_early & ok_full
    assert np.median(_norm(x_early - x, "l2")[both]) <= 1.02 * np.median(_norm(x_full - x, "l2")[both])


def test_cw_targeted_confidence_and_failure_returns_x(data, linear, cw_jit):
    w, b, logits_fn = linear
    x = data
    y = jnp.asarray(_pred(logits_fn, x))
    targets = (y + 1) % K
    x_adv = cw_jit(logits_fn, x, targets, num_steps=200, binary_search_steps=6, targeted=True, confidence=0.5)
    z = np.asarray(logits_fn(x_adv))
    z_t = z[np.arange(B), np.asarray(targets)]
    z_other = np.where(np.eye(K, dtype=bool)[np.asarray(targets)], -np.inf, z).max(-1)
    reached = z_t - z_other >= 0.5 - 1e-3
    assert reached.mean() >= 0.8
    # examples that did not reach the target with the confidence are returned unchanged
    np.testing.assert_array_equal(np.asarray(x_adv)[~reached], np.asarray(x)[~reached])
    # a model whose class 0 always wins by a mile: nothing found, x returned exactly
    stubborn = lambda x_: jnp.concatenate([jnp.full((x_.shape[0], 1), 100.0), 0.01 * _flat(x_)[:, :3]], -1)  # noqa
    x_same = cw_jit(stubborn, x, jnp.zeros(B, jnp.int32), num_steps=20, binary_search_steps=3)
    np.testing.assert_array_equal(np.asarray(x_same), np.asarray(x))


def test_cw_box_jit_equals_eager_and_errors(data, mlp):
    x = data.at[0, 0, 0, 0].set(0.0).at[1, 0, 0, 0].set(1.0)
    y = jnp.asarray(_pred(mlp, x))
    attack = functools.partial(minimal.cw_l2, mlp, num_steps=30, binary_search_steps=3)
    eager = attack(x, y, None)
    jitted = jax.jit(attack)(x, y, None)
    np.testing.assert_allclose(jitted, eager, atol=1e-5)
    assert float(eager.min()) >= 0.0 and float(eager.max()) <= 1.0
    stacked = jax.jit(jax.vmap(lambda xb, yb: attack(xb, yb, None)))(jnp.stack([x, x]), jnp.stack([y, y]))
    np.testing.assert_allclose(stacked[1], eager, atol=1e-5)
    with pytest.raises(ValueError, match="binary_search_steps"):
        minimal.cw_l2(mlp, x, y, None, binary_search_steps=0)
    with pytest.raises(ValueError, match="confidence"):
        minimal.cw_l2(mlp, x, y, None, confidence=-1.0)
    with pytest.raises(ValueError, match="bounds"):
        minimal.cw_l2(mlp, x, y, None, bounds=(1.0, 0.0))


# ------------------------------------------------------------------------------------------------ JSMA


def test_jsma_targeted_linear_reaches_targets_within_gamma():
    """8x8 images, 10-class linear model: most examples reach their target by raising pixel pairs to 1."""
    n, classes = 64, 10
    w = jax.random.normal(jax.random.key(2), (n, classes)) * 0.5
    logits_fn = lambda x_: _flat(x_) @ w  # noqa: E731
    x = jax.random.uniform(jax.random.key(1), (16, 8, 8, 1))
    targets = (jnp.argmax(logits_fn(x), -1) + 1) % classes
    gamma = 0.5
    x_adv = jax.jit(functools.partial(jsma_lib.jsma, logits_fn, theta=1.0, gamma=gamma, targeted=True))(
        x, targets, None)
    changed = np.asarray(jnp.sum(x_adv != x, axis=(1, 2, 3)))
    assert np.all(changed <= 2 * int(gamma * n / 2))
    assert np.all(changed % 2 == 0)  # pairs of features
    assert np.mean(_pred(logits_fn, x_adv) == np.asarray(targets)) >= 0.8
    # features only move up by theta, clipped to the box
    assert np.all(np.asarray(x_adv) >= np.asarray(x)) and float(x_adv.max()) <= 1.0
    moved = np.asarray(x_adv != x)
    np.testing.assert_allclose(np.asarray(x_adv)[moved], 1.0)
    # gamma caps the number of changed features
    x_small = jsma_lib.jsma(logits_fn, x, targets, None, theta=1.0, gamma=0.05, targeted=True)
    assert np.all(np.asarray(jnp.sum(x_small != x, axis=(1, 2, 3))) <= 2)


def test_jsma_saliency_pair_is_the_best_pair():
    alpha = jnp.asarray([0.5, -0.2, 0.3, 0.1])
    beta = jnp.asarray([-0.4, 0.1, -0.6, 0.2])
    p, q, found = jsma_lib._best_pairs(alpha, beta, jnp.ones(4, bool), increase=True)
    assert bool(found) and {int(p), int(q)} == {0, 2}
    p, q, found = jsma_lib._best_pairs(alpha, beta, jnp.asarray([True, True, False, True]), increase=True)
    assert bool(found) and {int(p), int(q)} == {0, 3}  # a = 0.6, b = -0.2 (0,1 has b = -0.3 but a = 0.3)
    _, _, found = jsma_lib._best_pairs(-jnp.abs(alpha), beta, jnp.ones(4, bool), increase=True)
    assert not bool(found)


def _art_jsma(w, x, target, theta, gamma):
    """ART 0.x's SaliencyMapMethod.generate for one example of a linear softmax model, in numpy: the two
    search-space features with the largest d p_target / dx move by theta (clipped to [0, 1]); a feature
    leaves the search space when it reaches the box; stop at the target, an empty space or > gamma * n
    distinct features changed."""
    val, n = x.astype(np.float64).copy(), x.size
    space = set(np.flatnonzero(val < 1.0)) if theta > 0 else set(np.flatnonzero(val > 0.0))
    used = set()
    sign = 1.0 if theta > 0 else -1.0

    def probs(v):
        z = v @ w
        e = np.exp(z - z.max())
        return e / e.sum()

    while np.argmax(probs(val)) != target and len(used) / n <= gamma and space:
        p = probs(val)
        grad = p[target] * (w[:, target] - w @ p)
        score = np.full(n, -np.inf)
        idx = np.fromiter(space, int)
        score[idx] = sign * grad[idx]
        for f in np.argsort(score)[-2:]:
            if f not in space:
                continue
            used.add(f)
            val[f] = min(1.0, val[f] + theta) if theta > 0 else max(0.0, val[f] + theta)
            if val[f] in (0.0, 1.0):
                space.discard(f)
    return val


@pytest.mark.parametrize("theta", [0.1, -0.25])
def test_jsma_art_variant_matches_a_numpy_transcription_of_arts_loop(theta):
    """saliency='target_probability', reuse_features=True: the same features moved by the same amounts as
    ART 0.x's loop (the library Zantedeschi et al. used), on a 3-class linear model over 12 features."""
    n, classes = 12, 3
    rng = np.random.default_rng(3)
    w = rng.normal(size=(n, classes)).astype(np.float32)
    x = rng.uniform(0.05, 0.95, size=(6, 2, 6, 1)).astype(np.float32)
    logits_fn = lambda x_: _flat(x_) @ jnp.asarray(w)  # noqa: E731
    targets = (np.asarray(_pred(logits_fn, jnp.asarray(x))) + 1) % classes
    attack = jax.jit(functools.partial(jsma_lib.jsma, logits_fn, theta=theta, gamma=1.0, targeted=True,
                                       saliency="target_probability", reuse_features=True))
    got = np.asarray(attack(jnp.asarray(x), jnp.asarray(targets), None)).reshape(6, n)
    for i in range(6):
        want = _art_jsma(w.astype(np.float64), x[i].reshape(n), targets[i], theta, 1.0)
        np.testing.assert_allclose(got[i], want, atol=1e-5)
    moved = np.abs(got - x.reshape(6, n))
    assert moved.max() > abs(theta) + 1e-3            # a feature was pushed more than once
    assert np.any(np.argmax(got @ w, -1) == targets)   # some reach their target (greedy: not all, as in ART)
    # the default variant changes each feature once, by at most theta
    once = np.asarray(jsma_lib.jsma(logits_fn, jnp.asarray(x), jnp.asarray(targets), None, theta=theta,
                                    gamma=1.0, targeted=True)).reshape(6, n)
    assert np.abs(once - x.reshape(6, n)).max() <= abs(theta) + 1e-6
    # gamma bounds the distinct features changed (checked before each iteration: at most 2 over)
    few = np.asarray(jsma_lib.jsma(logits_fn, jnp.asarray(x), jnp.asarray(targets), None, theta=theta,
                                   gamma=0.2, targeted=True, saliency="target_probability",
                                   reuse_features=True)).reshape(6, n)
    assert np.all(np.sum(few != x.reshape(6, n), axis=1) <= int(0.2 * n) + 2)


@pytest.mark.parametrize("target", ["random", "next"])
def test_jsma_untargeted_modes_and_determinism(target, data, mlp):
    x = data
    y = jnp.asarray(_pred(mlp, x))
    attack = jax.jit(functools.partial(jsma_lib.jsma, mlp, gamma=0.5, theta=-1.0, target=target))
    key = jax.random.key(7)
    x1, x2 = attack(x, y, key), attack(x, y, key)
    np.testing.assert_array_equal(x1, x2)
    assert np.mean(_pred(mlp, x1) != np.asarray(y)) >= 0.5
    assert float(x1.min()) >= 0.0 and np.all(np.asarray(x1) <= np.asarray(x))


def test_jsma_vmap_and_errors(data, linear):
    _, _, logits_fn = linear
    x = data
    y = jnp.asarray(_pred(logits_fn, x))
    attack = functools.partial(jsma_lib.jsma, logits_fn, target="next", gamma=0.25, pair_chunk=4)
    single = attack(x, y, None)
    stacked = jax.vmap(lambda xb, yb: attack(xb, yb, None))(jnp.stack([x, x]), jnp.stack([y, y]))
    np.testing.assert_allclose(stacked[0], single, atol=1e-6)
    with pytest.raises(ValueError, match="theta"):
        jsma_lib.jsma(logits_fn, x, y, None, theta=0.0, target="next")
    with pytest.raises(ValueError, match="gamma"):
        jsma_lib.jsma(logits_fn, x, y, None, gamma=1.5, target="next")
    with pytest.raises(ValueError, match="PRNG key"):
        jsma_lib.jsma(logits_fn, x, y, None)
    with pytest.raises(ValueError, match="target"):
        jsma_lib.jsma(logits_fn, x, y, None, target="last")
    with pytest.raises(ValueError, match="saliency must be one of"):
        jsma_lib.jsma(logits_fn, x, y, None, target="next", saliency="probability")
