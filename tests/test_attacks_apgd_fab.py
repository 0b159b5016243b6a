"""Tests for Auto-PGD and FAB (robustjax.attacks.apgd / .fab), plus the shared properties of APGD, FAB and
Square: inside the ball and the box, same key same result, jit equals eager, vmap equals a loop.

Tiny pure-jax models on 6x6x1 "images" with 5 classes: a linear classifier (closed-form boundary
distances) and a one-hidden-layer tanh MLP.
"""

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks

apgd_lib = importlib.import_module("robustjax.attacks.apgd")
fab_lib = importlib.import_module("robustjax.attacks.fab")
square_lib = importlib.import_module("robustjax.attacks.square")

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 8, 6, 6, 1, 5
D = H * W * C
EPS = 0.05
EPS_L2 = 0.3


def _flat(x):
    return x.reshape(x.shape[0], -1)


@pytest.fixture(scope="module")
def data():
    x = jax.random.uniform(jax.random.key(1), (B, H, W, C), minval=0.05, maxval=0.95)
    return x.at[0, 0, 0, 0].set(0.0).at[1, 0, 0, 0].set(1.0)  # pixels on the box edges


@pytest.fixture(scope="module")
def linear():
    w = jax.random.normal(jax.random.key(2), (D, K)) * 0.3
    b = jnp.linspace(-0.1, 0.1, K)
    return w, b, (lambda x: _flat(x) @ w + b)


@pytest.fixture(scope="module")
def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    w1 = jax.random.normal(k1, (D, 16)) / 3
    w2 = jax.random.normal(k2, (16, K))
    return lambda x: jnp.tanh(_flat(x) @ w1 * 3) @ w2


def _pred(fn, x):
    return np.asarray(jnp.argmax(fn(x), -1))


def _labels(fn, x):
    return jnp.asarray(_pred(fn, x))


# name -> (attack with hyperparameters bound, norm, budget)
ATTACKS = {
    "apgd_ce_linf": (functools.partial(apgd_lib.apgd, eps=EPS, num_steps=10), "linf", EPS),
    "apgd_dlr_l2": (functools.partial(apgd_lib.apgd, eps=EPS_L2, norm="l2", loss="dlr", num_steps=10),
                    "l2", EPS_L2),
    "apgd_t_restarts": (functools.partial(apgd_lib.apgd, eps=EPS, loss="dlr_targeted", num_targets=2,
                                          restarts=2, num_steps=6), "linf", EPS),
    "apgd_ce_linf_chunked": (functools.partial(apgd_lib.apgd, eps=EPS, num_steps=10, chunk_size=3), "linf",
                             EPS),
    "fab_linf": (functools.partial(fab_lib.fab, eps=EPS, num_steps=10), "linf", EPS),
    "fab_t_l2_restarts": (functools.partial(fab_lib.fab, eps=EPS_L2, norm="l2", num_targets=2, restarts=2,
                                            num_steps=6), "l2", EPS_L2),
    "square_linf": (functools.partial(square_lib.square, eps=EPS, num_queries=40), "linf", EPS),
    "square_l2": (functools.partial(square_lib.square, eps=EPS_L2, norm="l2", num_queries=40), "l2", EPS_L2),
}


@pytest.fixture(scope="module")
def jitted(mlp):
    return {name: jax.jit(functools.partial(fn, mlp)) for name, (fn, _, _) in ATTACKS.items()}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_properties(name, jitted, mlp, data):
    """Inside eps and the box; same key same result; jit equals eager; vmap equals separate calls."""
    x = data
    y = _labels(mlp, x)
    fn, norm, budget = ATTACKS[name]
    key = jax.random.key(0)
    x_adv = jitted[name](x, y, key)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, norm)) <= budget + 1e-5)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    np.testing.assert_array_equal(jitted[name](x, y, key), x_adv)
    eager = fn(mlp, x, y, key)
    np.testing.assert_allclose(eager, x_adv, atol=1e-5)
    other = jitted[name](x[::-1], y[::-1], key)
    stacked = jax.jit(jax.vmap(functools.partial(fn, mlp), in_axes=(0, 0, None)))(
        jnp.stack([x, x[::-1]]), jnp.stack([y, y[::-1]]), key)
    np.testing.assert_allclose(stacked[0], x_adv, atol=1e-5)
    np.testing.assert_allclose(stacked[1], other, atol=1e-5)
    # the attack does something: the margin drops on average
    assert float(jnp.mean(attacks.margin_loss(mlp(x_adv), y))) > float(jnp.mean(attacks.margin_loss(mlp(x), y)))


# ------------------------------------------------------------------------------------------------ APGD


def test_apgd_checkpoint_schedule():
    assert apgd_lib.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    is_ck, window = apgd_lib._checkpoint_tables(100)
    assert np.flatnonzero(is_ck).tolist() == [22, 41, 57, 70, 80, 87, 93, 99]
    assert window[22] == 22 and window[41] == 19 and window[99] == 6


@pytest.mark.parametrize("norm,eps", [("linf", 0.03), ("l2", 0.2)])
def test_apgd_at_least_as_strong_as_pgd(norm, eps, mlp):
    """Same budget (20 gradient steps, one run): APGD-CE fools at least as many examples as PGD-CE with a
    hand-tuned step, and reaches at least the same mean loss."""
    x = jax.random.uniform(jax.random.key(11), (32, H, W, C))
    y = _labels(mlp, x)
    key = jax.random.key(5)
    x_apgd = jax.jit(functools.partial(apgd_lib.apgd, mlp, eps=eps, norm=norm, num_steps=20))(x, y, key)
    acc_apgd = np.mean(_pred(mlp, x_apgd) == np.asarray(y))
    for step in (eps / 4, eps / 10):
        x_pgd = jax.jit(functools.partial(attacks.pgd, mlp, eps=eps, step_size=step, num_steps=20, norm=norm))(
            x, y, key)
        acc_pgd = np.mean(_pred(mlp, x_pgd) == np.asarray(y))
        assert acc_apgd <= acc_pgd, (step, acc_apgd, acc_pgd)
    assert 0.0 < np.mean(_pred(mlp, x) == np.asarray(y)) - acc_apgd  # it fooled some examples


def test_apgd_targeted_and_clean_misclassified(mlp, data):
    x = data
    y = _labels(mlp, x)
    targets = (y + 2) % K
    x_adv = jax.jit(functools.partial(apgd_lib.apgd, mlp, eps=0.3, num_steps=20, targeted=True))(
        x, targets, jax.random.key(0))
    assert np.mean(_pred(mlp, x_adv) == np.asarray(targets)) >= 0.75
    x_dlr = jax.jit(functools.partial(apgd_lib.apgd, mlp, eps=0.3, num_steps=20, targeted=True, loss="dlr"))(
        x, targets, jax.random.key(0))
    assert np.mean(_pred(mlp, x_dlr) == np.asarray(targets)) >= 0.75
    # an example whose label is already wrong on the clean input is returned unchanged
    y_wrong = y.at[3].set((y[3] + 1) % K)
    x_u = apgd_lib.apgd(mlp, x, y_wrong, jax.random.key(0), eps=EPS, num_steps=3)
    np.testing.assert_array_equal(np.asarray(x_u[3]), np.asarray(x[3]))


def test_apgd_eot_with_a_randomised_model(mlp, data):
    x = data
    y = _labels(mlp, x)

    def noisy(x_, key):
        return mlp(x_) + 0.1 * jax.random.normal(key, (x_.shape[0], K))

    x_adv = jax.jit(functools.partial(apgd_lib.apgd, noisy, eps=EPS, num_steps=5, eot_iter=4, stochastic=True))(
        x, y, jax.random.key(0))
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, "linf")) <= EPS + 1e-6)
    assert float(jnp.mean(attacks.ce_loss(mlp(x_adv), y))) > float(jnp.mean(attacks.ce_loss(mlp(x), y)))


def test_apgd_errors(mlp, data):
    x = data
    y = _labels(mlp, x)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="finite"):
        apgd_lib.apgd(mlp, x, y, key, eps=jnp.inf)
    with pytest.raises(ValueError, match="unknown loss"):
        apgd_lib.apgd(mlp, x, y, key, eps=EPS, loss="hinge")
    with pytest.raises(ValueError, match="norm"):
        apgd_lib.apgd(mlp, x, y, key, eps=EPS, norm="l1")
    with pytest.raises(ValueError, match="eps must be >= 0"):
        apgd_lib.apgd(mlp, x, y, key, eps=-0.1)
    two = lambda x_: mlp(x_)[:, :2]  # noqa: E731
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd_lib.apgd(two, x, y % 2, key, eps=EPS, loss="dlr_targeted")
    with pytest.raises(ValueError, match="num_steps"):
        apgd_lib.apgd(mlp, x, y, key, eps=EPS, num_steps=0)
    with pytest.raises(ValueError, match="y must have shape"):
        apgd_lib.apgd(mlp, x, y[:3], key, eps=EPS)


# ------------------------------------------------------------------------------------------------ FAB


def _linear_distance(w, b, x, y, norm):
    q = 2 if norm == "l2" else 1
    z = np.asarray(_flat(x) @ w + b)
    w = np.asarray(w)
    return np.array([min(abs(z[i, k] - z[i, y[i]]) / np.linalg.norm(w[:, k] - w[:, y[i]], q)
                         for k in range(K) if k != y[i]) for i in range(x.shape[0])])


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("num_targets", [None, K - 1])
def test_fab_linear_finds_the_exact_distance(norm, num_targets, linear):
    """On a linear model the linearisation is exact: FAB (and FAB-T over every target) converges to the
    distance to the nearest boundary, from above."""
    w, b, logits_fn = linear
    x = jax.random.uniform(jax.random.key(4), (B, H, W, C), minval=0.4, maxval=0.6)
    y = _labels(logits_fn, x)
    expected = _linear_distance(w, b, x, np.asarray(y), norm)
    x_adv = jax.jit(functools.partial(fab_lib.fab, logits_fn, norm=norm, num_steps=20, num_targets=num_targets))(
        x, y, None)
    got = np.asarray(attacks.lp_norm(x_adv - x, norm))
    assert np.all(_pred(logits_fn, x_adv) != np.asarray(y))
    assert np.all(got >= expected * (1 - 1e-4))
    np.testing.assert_allclose(got, expected, rtol=0.01)
    # with eps below the distance nothing is accepted: x comes back unchanged
    x_in = fab_lib.fab(logits_fn, x, y, None, eps=jnp.asarray(expected * 0.9, jnp.float32), norm=norm,
                       num_steps=20, num_targets=num_targets)
    np.testing.assert_array_equal(np.asarray(x_in), np.asarray(x))


def test_fab_beats_deepfool_on_mlp(mlp):
    x = jax.random.uniform(jax.random.key(12), (16, H, W, C))
    y = _labels(mlp, x)
    x_fab = jax.jit(functools.partial(fab_lib.fab, mlp, norm="l2", num_steps=30))(x, y, None)
    x_df = attacks.deepfool(mlp, x, y, None, norm="l2")
    assert np.all(_pred(mlp, x_fab) != np.asarray(y))
    n_fab = np.asarray(attacks.lp_norm(x_fab - x, "l2"))
    n_df = np.asarray(attacks.lp_norm(x_df - x, "l2"))
    assert np.median(n_fab) <= np.median(n_df)


def test_fab_targeted(mlp, data):
    x = data
    y = _labels(mlp, x)
    targets = (y + 1) % K
    x_adv = jax.jit(functools.partial(fab_lib.fab, mlp, num_steps=30, targeted=True))(x, targets, None)
    reached = _pred(mlp, x_adv) == np.asarray(targets)
    assert reached.mean() >= 0.75
    np.testing.assert_array_equal(np.asarray(x_adv)[~reached], np.asarray(x)[~reached])


def test_projection_onto_hyperplane_and_box_is_exact():
    """Against scipy on random small problems: the minimal L2 (SLSQP) and L-inf (linear program) steps."""
    from scipy import optimize as scipy_optimize  # scipy comes with scikit-learn, a dependency
    rng = np.random.default_rng(0)
    n, batch = 7, 12
    w = rng.normal(size=(batch, n))
    c = rng.normal(size=batch) * 0.4
    lo = -rng.uniform(0, 0.5, size=(batch, n))
    hi = rng.uniform(0, 0.5, size=(batch, n))
    args = [jnp.asarray(a, jnp.float32) for a in (w, c, lo, hi)]
    for norm in ("l2", "linf"):
        d = np.asarray(fab_lib.project_hyperplane_box(*args, norm), np.float64)
        assert np.all(d >= lo - 1e-6) and np.all(d <= hi + 1e-6)
        for i in range(batch):
            if norm == "linf":
                a_ub = np.r_[np.c_[np.eye(n), -np.ones(n)], np.c_[-np.eye(n), -np.ones(n)]]
                res = scipy_optimize.linprog(np.r_[np.zeros(n), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * n),
                                             A_eq=np.r_[w[i], 0.0][None], b_eq=[c[i]],
                                             bounds=list(zip(lo[i], hi[i])) + [(0, None)])
                ref = res.x[-1] if res.status == 0 else None
                got = np.abs(d[i]).max()
            else:
                res = scipy_optimize.minimize(
                    lambda v: v @ v, np.zeros(n), method="SLSQP", bounds=list(zip(lo[i], hi[i])),
                    constraints=[{"type": "eq", "fun": lambda v, i=i: w[i] @ v - c[i]}])
                ref = np.sqrt(res.fun) if res.success else None
                got = np.linalg.norm(d[i])
            if ref is None:  # infeasible: the box corner that gets closest to the hyperplane
                best = np.sum(np.where(w[i] * np.sign(c[i]) > 0, w[i] * hi[i], w[i] * lo[i]) * np.sign(c[i]))
                np.testing.assert_allclose(w[i] @ d[i] * np.sign(c[i]), best, rtol=1e-5)
            else:
                np.testing.assert_allclose(w[i] @ d[i], c[i], atol=1e-5)
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_fab_errors(mlp, data):
    x = data
    y = _labels(mlp, x)
    with pytest.raises(ValueError, match="norm"):
        fab_lib.fab(mlp, x, y, None, norm="l0")
    with pytest.raises(ValueError, match="PRNG key"):
        fab_lib.fab(mlp, x, y, None, restarts=2)
    with pytest.raises(ValueError, match="num_targets"):
        fab_lib.fab(mlp, x, y, None, targeted=True, num_targets=3)
    with pytest.raises(ValueError, match="finite"):
        fab_lib.fab(mlp, x.at[0, 0, 0, 0].set(jnp.nan), y, None)


@pytest.mark.parametrize("name", ["apgd", "fab", "square"])
def test_per_example_eps_is_traced(name, mlp, data):
    """eps is a traced [B] argument: one compiled function serves every radius, each example its own."""
    x = data
    y = _labels(mlp, x)
    fn = {"apgd": functools.partial(apgd_lib.apgd, num_steps=5),
          "fab": functools.partial(fab_lib.fab, num_steps=5),
          "square": functools.partial(square_lib.square, num_queries=20)}[name]
    run = jax.jit(lambda x_, y_, k, eps: fn(mlp, x_, y_, k, eps=eps))
    eps = jnp.linspace(0.0, 0.1, B)
    x_adv = run(x, y, jax.random.key(0), eps)
    assert np.all(np.asarray(attacks.lp_norm(x_adv - x, "linf")) <= np.asarray(eps) + 1e-6)
    np.testing.assert_array_equal(np.asarray(x_adv[0]), np.asarray(x[0]))  # eps = 0: untouched
    run(x, y, jax.random.key(0), eps * 0.5)
    assert run._cache_size() == 1


def test_apgd_chunked_attacks_only_what_is_left_and_is_as_strong(mlp, data, jitted):
    x = data
    y = _labels(mlp, x)
    y = y.at[:3].set((y[:3] + 1) % K)  # three examples misclassified from the start
    key = jax.random.key(5)
    plain = jitted["apgd_ce_linf"](x, y, key)
    chunked = jitted["apgd_ce_linf_chunked"](x, y, key)
    np.testing.assert_array_equal(chunked[:3], x[:3])  # already adversarial: returned as they are
    assert np.abs(np.asarray(chunked - x)).max() <= EPS + 1e-6
    fooled = lambda xa: int(np.sum(_pred(mlp, xa) != np.asarray(y)))  # noqa: E731
    assert fooled(chunked) >= fooled(plain) - 1


def test_apgd_chunk_size_must_be_positive(mlp, data):
    with pytest.raises(ValueError, match="chunk_size"):
        apgd_lib.apgd(mlp, data, _labels(mlp, data), jax.random.key(0), eps=EPS, chunk_size=0)
