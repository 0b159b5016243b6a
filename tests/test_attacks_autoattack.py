"""Tests for AutoAttack (robustjax.attacks.autoattack) with reduced budgets on a tiny MLP.

6x6x1 "images", 5 classes, 16 examples; APGD/FAB with a handful of steps and Square with a few dozen
queries, so each compile stays small.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 16, 6, 6, 1, 5
D = H * W * C
EPS = 0.04
BUDGET = dict(num_steps=6, num_queries=30, num_targets=2)


def _flat(x):
    return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    w1 = jax.random.normal(k1, (D, 16)) / 3
    w2 = jax.random.normal(k2, (16, K))
    return lambda x: jnp.tanh(_flat(x) @ w1 * 3) @ w2


@pytest.fixture(scope="module")
def data(mlp):
    x = jax.random.uniform(jax.random.key(1), (B, H, W, C), minval=0.05, maxval=0.95)
    y = jnp.argmax(mlp(x), -1)
    y = y.at[:2].set((y[:2] + 1) % K)  # two examples misclassified from the start
    return x, y


def _robust(fn, x_adv, y):
    return np.asarray(jnp.argmax(fn(x_adv), -1) == y)


@pytest.fixture(scope="module")
def results(mlp, data):
    """Robust masks of the standard ensemble and of each of its components alone (same key), per norm."""
    x, y = data
    key = jax.random.key(0)
    out = {}
    for norm, eps in (("linf", EPS), ("l2", 0.25)):
        run = lambda names: jax.jit(functools.partial(  # noqa: E731
            attacks.autoattack, mlp, eps=eps, norm=norm, attacks=names, **BUDGET))(x, y, key)
        x_all = run(None)
        out[norm] = dict(eps=eps, x_all=x_all, all=_robust(mlp, x_all, y))
        for name in ("apgd-ce", "apgd-t", "fab-t", "square"):
            out[norm][name] = _robust(mlp, run((name,)), y)
    return out


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_ensemble_is_at_least_as_strong_as_each_component(norm, results, mlp, data):
    r = results[norm]
    x, y = data
    clean = _robust(mlp, x, y)
    for name in ("apgd-ce", "apgd-t", "fab-t", "square"):
        assert np.all(r["all"] <= r[name]), name  # robust under the ensemble => robust under each part
        assert r["all"].mean() <= r[name].mean()
    assert r["all"].mean() < clean.mean()  # the budget is large enough to fool someone
    # an example is robust under the ensemble exactly when every component failed on it
    together = clean & r["apgd-ce"] & r["apgd-t"] & r["fab-t"] & r["square"]
    np.testing.assert_array_equal(r["all"], together)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_output_inside_ball_box_and_untouched_where_robust(norm, results, mlp, data):
    r = results[norm]
    x, y = data
    x_adv = r["x_all"]
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, norm)) <= r["eps"] + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    unchanged = np.all(np.asarray(x_adv == x), axis=(1, 2, 3))
    assert np.all(unchanged[r["all"]])  # robust examples come back as x
    assert np.all(unchanged[:2])  # already misclassified: not attacked
    fooled = ~r["all"] & ~unchanged
    assert np.all(~_robust(mlp, x_adv, y)[fooled])


def test_same_key_same_result_and_plus_version(mlp, data):
    x, y = data
    key = jax.random.key(4)
    plus = jax.jit(functools.partial(attacks.autoattack, mlp, eps=EPS, version="plus", restarts=1,
                                     num_steps=3, num_queries=10, num_targets=2))
    a, b = plus(x, y, key), plus(x, y, key)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.asarray(attacks.lp_norm(a - x, "linf")) <= EPS + 1e-6)
    assert _robust(mlp, a, y).mean() < _robust(mlp, x, y).mean()


def test_rand_version_with_a_randomised_model(mlp, data):
    x, y = data

    def noisy(x_, key):
        return mlp(x_ + 0.01 * jax.random.normal(key, x_.shape))

    x_adv = jax.jit(functools.partial(attacks.autoattack, noisy, eps=EPS, version="rand", stochastic=True,
                                      num_steps=3))(x, y, jax.random.key(0))
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, "linf")) <= EPS + 1e-6)
    assert _robust(mlp, x_adv, y).mean() < _robust(mlp, x, y).mean()


def test_autoattack_errors(mlp, data):
    x, y = data
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="version"):
        attacks.autoattack(mlp, x, y, key, eps=EPS, version="fast")
    with pytest.raises(ValueError, match="unknown component"):
        attacks.autoattack(mlp, x, y, key, eps=EPS, attacks=("pgd",))
    with pytest.raises(ValueError, match="stochastic"):
        attacks.autoattack(lambda x_, k: mlp(x_), x, y, key, eps=EPS, stochastic=True)
    with pytest.raises(ValueError, match="finite"):
        attacks.autoattack(mlp, x, y, key, eps=jnp.inf)
    with pytest.raises(ValueError, match="norm"):
        attacks.autoattack(mlp, x, y, key, eps=EPS, norm="l1")
    with pytest.raises(ValueError, match="labels"):
        attacks.autoattack(mlp, x, y + K, key, eps=EPS)


def test_vmap_over_batches(mlp, data):
    x, y = data
    attack = functools.partial(attacks.autoattack, mlp, eps=EPS, attacks=("apgd-ce", "square"), num_steps=3,
                               num_queries=10)
    key = jax.random.key(1)
    single = jax.jit(attack)(x[:8], y[:8], key)
    stacked = jax.jit(jax.vmap(attack, in_axes=(0, 0, None)))(x.reshape(2, 8, H, W, C), y.reshape(2, 8), key)
    np.testing.assert_allclose(stacked[0], single, atol=1e-5)
    assert np.all(np.asarray(attacks.lp_norm(stacked[1] - x[8:], "linf")) <= EPS + 1e-6)


def test_chunked_ensemble(mlp, data, results):
    """chunk_size sorts the robust examples first and skips chunks with none left: same guarantees."""
    x, y = data
    key = jax.random.key(0)
    x_adv = jax.jit(functools.partial(attacks.autoattack, mlp, eps=EPS, chunk_size=5, **BUDGET))(x, y, key)
    robust = _robust(mlp, x_adv, y)
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, "linf")) <= EPS + 1e-6)
    unchanged = np.all(np.asarray(x_adv == x), axis=(1, 2, 3))
    assert np.all(unchanged[robust]) and np.all(unchanged[:2])
    assert abs(robust.mean() - results["linf"]["all"].mean()) <= 2 / B  # as strong, up to random draws
    with pytest.raises(ValueError, match="chunk_size"):
        attacks.autoattack(mlp, x, y, key, eps=EPS, chunk_size=0)


def test_chunked_ensemble_l2_with_small_chunks(mlp, data, results):
    """chunk_size=8 also exercises the smaller chunk sizes (8 -> [8, 2]) of the per-target re-selection."""
    x, y = data
    key = jax.random.key(0)
    eps = results["l2"]["eps"]
    x_adv = jax.jit(functools.partial(attacks.autoattack, mlp, eps=eps, norm="l2", chunk_size=8, **BUDGET))(x, y, key)
    robust = _robust(mlp, x_adv, y)
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, "l2")) <= eps + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    unchanged = np.all(np.asarray(x_adv == x), axis=(1, 2, 3))
    assert np.all(unchanged[robust]) and np.all(unchanged[:2])
    assert abs(robust.mean() - results["l2"]["all"].mean()) <= 2 / B


def test_fab_t_per_target_shrinking_keeps_the_robust_set(mlp, data):
    """FAB-T's runs start at x (no randomness) and an example's path does not depend on what was recorded,
    so attacking only what is left before each target (fab_live) finds exactly the same adversarial set
    within eps as running every target on the whole batch (fab)."""
    from robustjax.attacks.fab import fab_live

    x, y = data
    key = jax.random.key(0)
    for norm, eps in (("linf", 0.1), ("l2", 0.4)):
        full = jax.jit(functools.partial(attacks.fab, mlp, eps=eps, norm=norm, num_steps=6, num_targets=3))(x, y, key)
        live = jnp.argmax(mlp(x), -1) == y
        shrunk = jax.jit(lambda x_, y_, k_, lv: fab_live(mlp, k_, x_, y_, eps, lv, 4, norm=norm, num_steps=6,
                                                         num_targets=3))(x, y, key, live)
        r_full, r_shrunk = _robust(mlp, full, y), _robust(mlp, shrunk, y)
        assert 0 < (~r_full[2:]).sum() < B - 2  # a non-trivial robust set on the examples attacked
        np.testing.assert_array_equal(r_shrunk[2:], r_full[2:])
        np.testing.assert_array_equal(np.asarray(shrunk[:2]), np.asarray(x[:2]))  # dead: unchanged
        assert np.all(np.asarray(attacks.lp_norm(shrunk - x, norm)) <= eps + 1e-5)


def test_apgd_t_per_target_shrinking_is_as_strong(mlp, data):
    """APGD-T re-selecting what is left before every target: in the ball, never weaker than one target
    less, and within random draws of running every target on the whole batch."""
    from robustjax.attacks.apgd import apgd_live

    x, y = data
    key = jax.random.key(0)
    live = jnp.argmax(mlp(x), -1) == y
    kw = dict(norm="linf", num_steps=6, loss="dlr_targeted", restarts=1, num_classes=K, rho=0.75, momentum=0.75,
              targeted=False, eot_iter=1, stochastic=False, bounds=(0.0, 1.0))
    shrunk = jax.jit(lambda x_, y_, k_, lv: apgd_live(mlp, mlp, k_, x_, y_, EPS * 2, lv, 4, num_targets=3, **kw))(
        x, y, key, live)
    full = jax.jit(functools.partial(attacks.apgd, mlp, eps=EPS * 2, num_steps=6, loss="dlr_targeted",
                                     num_targets=3))(x, y, key)
    assert np.all(np.asarray(attacks.lp_norm(shrunk - x, "linf")) <= 2 * EPS + 1e-6)
    np.testing.assert_array_equal(np.asarray(shrunk[:2]), np.asarray(x[:2]))
    assert abs(_robust(mlp, shrunk, y).sum() - _robust(mlp, full, y).sum()) <= 2


def test_square_early_stop_matches_the_full_loop(mlp, data):
    """Square's while_loop with per-example draws, early stop and compaction of the still-robust examples
    returns, for every example the full fixed-size loop fools, the same point (so the same success)."""
    from robustjax.attacks.square import square_live

    x, y = data
    key = jax.random.key(2)
    live = jnp.argmax(mlp(x), -1) == y
    for norm, eps in (("linf", 0.06), ("l2", 0.3)):
        run = lambda compact, chunk: jax.jit(lambda x_, y_, k_, lv: square_live(  # noqa: E731
            mlp, k_, x_, y_, eps, lv, chunk, norm=norm, num_queries=60, compact=compact))(x, y, key, live)
        full, fast = run(False, B), run(True, 8)
        r_full, r_fast = _robust(mlp, full, y), _robust(mlp, fast, y)
        fooled = ~r_full & np.asarray(live)
        assert 0 < fooled.sum() < np.asarray(live).sum()  # some fooled, some left
        np.testing.assert_array_equal(r_fast, r_full)
        np.testing.assert_allclose(np.asarray(fast)[fooled], np.asarray(full)[fooled], atol=1e-6)
        np.testing.assert_array_equal(np.asarray(fast)[~np.asarray(live)], np.asarray(x)[~np.asarray(live)])
        assert np.all(np.asarray(attacks.lp_norm(fast - x, norm)) <= eps + 1e-5)


def test_chunked_ensemble_under_vmap(mlp, data):
    """The chunked mode (lax.switch over chunk sizes, Square's while_loop) still vmaps."""
    x, y = data
    attack = functools.partial(attacks.autoattack, mlp, eps=EPS, chunk_size=4, num_steps=3, num_queries=10,
                               num_targets=2)
    stacked = jax.jit(jax.vmap(attack, in_axes=(0, 0, None)))(x.reshape(2, 8, H, W, C), y.reshape(2, 8),
                                                               jax.random.key(1))
    assert np.all(np.asarray(attacks.lp_norm(stacked.reshape(B, H, W, C) - x, "linf")) <= EPS + 1e-6)
    robust = _robust(mlp, stacked.reshape(B, H, W, C), y)
    unchanged = np.all(np.asarray(stacked.reshape(B, H, W, C) == x), axis=(1, 2, 3))
    assert np.all(unchanged[robust])
