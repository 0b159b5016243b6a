"""Tests for robustjax.attacks.gradient: FGSM, FGM, R+FGSM, BIM, PGD, MIM.

Tiny pure-jax models (a linear classifier and a 1-hidden-layer MLP on 4x4x1 "images", 5 classes).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import attacks

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 6, 4, 4, 1, 5
D = H * W * C
EPS = 0.1


@pytest.fixture(scope="module")
def data():
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.uniform(kx, (B, H, W, C), minval=0.05, maxval=0.95)
    x = x.at[0, 0, 0, 0].set(0.0).at[1, 0, 0, 0].set(1.0)  # some pixels on the box edges
    y = jax.random.randint(ky, (B,), 0, K)
    return x, y


@pytest.fixture(scope="module")
def linear():
    w = jax.random.normal(jax.random.key(2), (D, K))
    b = jnp.linspace(-0.5, 0.5, K)
    return w, b, (lambda x: x.reshape(x.shape[0], -1) @ w + b)


@pytest.fixture(scope="module")
def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    w1 = jax.random.normal(k1, (D, 8)) / 2
    w2 = jax.random.normal(k2, (8, K))
    return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1) @ w2


# name -> (attack with hyperparameters bound, norm, budget)
ATTACKS = {
    "fgsm": (functools.partial(attacks.fgsm, eps=EPS), "linf", EPS),
    "fgm_l2": (functools.partial(attacks.fgm, eps=0.5, norm="l2"), "l2", 0.5),
    "fgm_l1": (functools.partial(attacks.fgm, eps=1.0, norm="l1"), "l1", 1.0),
    "rand_fgsm": (functools.partial(attacks.rand_fgsm, eps=EPS, alpha=EPS / 2), "linf", EPS),
    "rand_fgsm_gaussian": (
        functools.partial(attacks.rand_fgsm, eps=EPS, alpha=EPS / 2, random_init="gaussian"), "linf", EPS),
    "bim": (functools.partial(attacks.bim, eps=EPS, step_size=0.02, num_steps=8), "linf", EPS),
    "pgd_linf": (functools.partial(attacks.pgd, eps=EPS, step_size=0.02, num_steps=8), "linf", EPS),
    "pgd_linf_restarts": (
        functools.partial(attacks.pgd, eps=EPS, step_size=0.02, num_steps=8, restarts=3), "linf", EPS),
    "pgd_l2": (functools.partial(attacks.pgd, eps=0.5, step_size=0.1, num_steps=8, norm="l2"), "l2", 0.5),
    "pgd_margin": (
        functools.partial(attacks.pgd, eps=EPS, step_size=0.02, num_steps=8, loss="margin"), "linf", EPS),
    "pgd_dlr": (functools.partial(attacks.pgd, eps=EPS, step_size=0.02, num_steps=8, loss="dlr"), "linf", EPS),
    "pgd_unrolled": (
        functools.partial(attacks.pgd, eps=EPS, step_size=0.02, num_steps=4, unroll=True), "linf", EPS),
    "mim_linf": (functools.partial(attacks.mim, eps=EPS, step_size=0.02, num_steps=8), "linf", EPS),
    "mim_l2": (functools.partial(attacks.mim, eps=0.5, step_size=0.1, num_steps=8, norm="l2"), "l2", 0.5),
}
LOSS_OF = {"pgd_margin": attacks.margin_loss, "pgd_dlr": attacks.dlr_loss}


@pytest.fixture(scope="module")
def jitted(mlp):
    """One compiled function per attack, shared by the tests below."""
    return {name: jax.jit(functools.partial(fn, mlp)) for name, (fn, _, _) in ATTACKS.items()}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_inside_ball_and_box(name, jitted, data):
    x, y = data
    _, norm, budget = ATTACKS[name]
    x_adv = jitted[name](x, y, jax.random.key(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert np.all(np.isfinite(x_adv))
    assert np.all(attacks.lp_norm(x_adv - x, norm) <= budget * (1 + 1e-5) + 1e-6)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float(jnp.max(jnp.abs(x_adv - x))) > 0.0  # it did move


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_loss_not_below_clean(name, jitted, data, mlp):
    x, y = data
    loss_fn = LOSS_OF.get(name, attacks.ce_loss)
    x_adv = jitted[name](x, y, jax.random.key(0))
    clean, adv = loss_fn(mlp(x), y), loss_fn(mlp(x_adv), y)
    if name.startswith("rand_fgsm"):  # the random half-step can cost a little: compare on average
        assert float(adv.mean()) > float(clean.mean())
    else:
        assert np.all(adv >= clean - 1e-5), (clean, adv)
        assert float(adv.mean()) > float(clean.mean())


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_same_key_same_result_and_jit_equals_eager(name, jitted, data, mlp):
    x, y = data
    fn = ATTACKS[name][0]
    key = jax.random.key(7)
    a = jitted[name](x, y, key)
    np.testing.assert_array_equal(a, jitted[name](x, y, key))
    np.testing.assert_allclose(fn(mlp, x, y, key), a, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_vmap_over_batches(name, data, mlp):
    x, y = data
    fn = functools.partial(ATTACKS[name][0], mlp)
    xs, ys = x.reshape(2, B // 2, H, W, C), y.reshape(2, B // 2)
    keys = jax.random.split(jax.random.key(5), 2)
    out = jax.jit(jax.vmap(fn))(xs, ys, keys)
    for i in range(2):
        np.testing.assert_allclose(out[i], jax.jit(fn)(xs[i], ys[i], keys[i]), atol=1e-5)


def test_vmap_per_example(data, mlp):
    x, y = data
    fn = functools.partial(attacks.pgd, mlp, eps=EPS, step_size=0.02, num_steps=4, random_start=False)
    per_ex = jax.vmap(lambda xi, yi: fn(xi[None], yi[None], jax.random.key(0))[0])(x, y)
    np.testing.assert_allclose(per_ex, fn(x, y, jax.random.key(0)), atol=1e-5)


def test_fgsm_closed_form_linear(data, linear):
    x, y = data
    w, b, f = linear
    p = jax.nn.softmax(f(x))
    grad = ((p - jax.nn.one_hot(y, K)) @ w.T).reshape(x.shape)
    expected = jnp.clip(x + EPS * jnp.sign(grad), 0.0, 1.0)
    np.testing.assert_allclose(attacks.fgsm(f, x, y, eps=EPS), expected, atol=1e-6)
    # targeted: step against the gradient of the target's loss
    t = (y + 1) % K
    grad_t = ((p - jax.nn.one_hot(t, K)) @ w.T).reshape(x.shape)
    np.testing.assert_allclose(attacks.fgsm(f, x, t, eps=EPS, targeted=True),
                               jnp.clip(x - EPS * jnp.sign(grad_t), 0.0, 1.0), atol=1e-6)


def test_fgm_l2_closed_form_linear(data, linear):
    x, y = data
    w, b, f = linear
    xi = jnp.full_like(x, 0.5)  # interior point: no clipping
    p = jax.nn.softmax(f(xi))
    grad = ((p - jax.nn.one_hot(y, K)) @ w.T).reshape(x.shape)
    unit = grad / jnp.linalg.norm(grad.reshape(B, -1), axis=1)[:, None, None, None]
    np.testing.assert_allclose(attacks.fgm(f, xi, y, eps=0.3, norm="l2"), xi + 0.3 * unit, atol=1e-6)
    np.testing.assert_allclose(attacks.lp_norm(attacks.fgm(f, xi, y, eps=0.3, norm="l2") - xi, "l2"), 0.3,
                               rtol=1e-5)


def _reference_pgd(f, x, y, eps, step, steps, norm):
    """Hand-written Python/NumPy PGD loop (no random start)."""
    g_fn = jax.grad(lambda z: jnp.sum(attacks.ce_loss(f(z), y)))
    x = np.asarray(x, np.float64)
    xa = x.copy()
    for _ in range(steps):
        g = np.asarray(g_fn(jnp.asarray(xa, jnp.float32)), np.float64)
        if norm == "linf":
            xa = xa + step * np.sign(g)
            xa = x + np.clip(xa - x, -eps, eps)
        else:
            gn = np.sqrt((g ** 2).reshape(len(g), -1).sum(1)).reshape(-1, 1, 1, 1)
            xa = xa + step * g / np.maximum(gn, 1e-12)
            d = xa - x
            dn = np.sqrt((d ** 2).reshape(len(d), -1).sum(1)).reshape(-1, 1, 1, 1)
            xa = x + d * np.minimum(1.0, eps / np.maximum(dn, 1e-12))
        xa = np.clip(xa, 0.0, 1.0)
    return xa


@pytest.mark.parametrize("norm, eps, step", [("linf", EPS, 0.03), ("l2", 0.5, 0.2)])
def test_pgd_matches_reference_loop(norm, eps, step, data, mlp):
    x, y = data
    out = attacks.pgd(mlp, x, y, jax.random.key(0), eps=eps, step_size=step, num_steps=5, norm=norm,
                      random_start=False)
    np.testing.assert_allclose(out, _reference_pgd(mlp, x, y, eps, step, 5, norm), atol=1e-5)


def test_bim_is_pgd_without_random_start_and_mim_without_momentum(data, mlp):
    x, y = data
    kw = dict(eps=EPS, step_size=0.02, num_steps=5)
    b = attacks.bim(mlp, x, y, **kw)
    np.testing.assert_array_equal(b, attacks.pgd(mlp, x, y, jax.random.key(3), random_start=False, **kw))
    np.testing.assert_allclose(attacks.mim(mlp, x, y, decay=0.0, **kw), b, atol=1e-6)


def test_restarts_keep_each_examples_worst_case(data, mlp):
    x, y = data
    key = jax.random.key(11)
    kw = dict(eps=0.3, step_size=0.02, num_steps=3, loss="margin")
    best = jax.jit(lambda k: attacks.pgd(mlp, x, y, k, restarts=4, **kw))(key)
    single = jax.jit(lambda k: attacks.pgd(mlp, x, y, k, **kw))
    runs = [single(jax.random.fold_in(key, i)) for i in range(4)]
    objs = np.stack([attacks.margin_loss(mlp(r), y) for r in runs])           # [R, B]
    fooled = np.stack([attacks.is_success(mlp(r), y) for r in runs])
    best_obj = attacks.margin_loss(mlp(best), y)
    for j in range(B):
        # prefer a fooling run, then the highest loss
        score = np.where(fooled[:, j], 1e6, 0.0) + objs[:, j]
        np.testing.assert_allclose(best_obj[j], objs[int(np.argmax(score)), j], rtol=1e-5)
    assert np.any(objs.max(0) > objs[0])  # restarts actually differ


def test_targeted_pgd_reaches_targets(data, linear):
    x, y = data
    f = linear[2]
    t = (y + 1) % K
    x_adv = attacks.pgd(f, x, t, jax.random.key(0), eps=1.0, step_size=0.1, num_steps=20, targeted=True)
    assert float(jnp.mean(attacks.ce_loss(f(x_adv), t))) < float(jnp.mean(attacks.ce_loss(f(x), t)))
    assert np.mean(np.asarray(jnp.argmax(f(x_adv), -1) == t)) >= 0.8


def test_eps_traced_one_compile_serves_a_grid_and_per_example_eps(data, mlp):
    x, y = data
    traces = []

    @jax.jit
    def run(eps):
        traces.append(1)
        return attacks.pgd(mlp, x, y, jax.random.key(0), eps=eps, step_size=eps / 4, num_steps=4)

    for e in (0.05, 0.1, 0.2):
        assert float(jnp.max(attacks.lp_norm(run(jnp.float32(e)) - x, "linf"))) <= e + 1e-6
    assert len(traces) == 1
    eps_vec = jnp.linspace(0.0, 0.25, B)
    out = attacks.pgd(mlp, x, y, jax.random.key(0), eps=eps_vec, step_size=0.05, num_steps=4)
    assert np.all(attacks.lp_norm(out - x, "linf") <= eps_vec + 1e-6)
    np.testing.assert_array_equal(out[0], x[0])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_unconstrained_eps_inf(norm, data, linear):
    x, y = data
    f = linear[2]
    out = attacks.pgd(f, x, y, jax.random.key(0), eps=jnp.inf, step_size=0.5, num_steps=10, norm=norm)
    assert np.all(np.isfinite(out)) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(jnp.max(attacks.lp_norm(out - x, "linf"))) > 0.3  # far beyond any usual budget
    assert np.all(np.asarray(jnp.argmax(f(out), -1) != y))


def test_pgd_inside_a_jitted_train_step_blocks_gradients(data):
    x, y = data
    params = jax.random.normal(jax.random.key(4), (D, K))

    @jax.jit
    def step(params, key):
        f = lambda z: z.reshape(z.shape[0], -1) @ params
        x_adv = attacks.pgd(f, x, y, key, eps=EPS, step_size=0.03, num_steps=3)
        return jax.grad(lambda p: jnp.mean(attacks.ce_loss(x_adv.reshape(B, -1) @ p, y)))(params), x_adv

    g, x_adv = step(params, jax.random.key(0))
    # gradient equals the one with x_adv frozen as a constant
    g_const = jax.grad(lambda p: jnp.mean(attacks.ce_loss(x_adv.reshape(B, -1) @ p, y)))(params)
    np.testing.assert_allclose(g, g_const, rtol=1e-5, atol=1e-6)


def test_rand_fgsm_rejects_alpha_above_eps(data, mlp):
    x, y = data
    with pytest.raises(ValueError, match="alpha must be <= eps"):
        attacks.rand_fgsm(mlp, x, y, jax.random.key(0), eps=0.1, alpha=0.2)
    with pytest.raises(ValueError, match=r"random_init must be one of \['sign', 'gaussian'\], got 'uniform'"):
        attacks.rand_fgsm(mlp, x, y, jax.random.key(0), eps=0.1, random_init="uniform")


def test_rand_fgsm_gaussian_is_clipped_gaussian_noise_then_fgsm_of_the_rest(data, mlp):
    """Zantedeschi et al.'s Random + FGSM against a hand computation: x' = clip(x + clip(a N, -a, a)),
    then FGSM of eps - a from x' (a = min(alpha, eps)); the sign variant differs from it."""
    x, y = data
    key = jax.random.key(5)
    eps, alpha = 0.1, 0.03
    got = attacks.rand_fgsm(mlp, x, y, key, eps=eps, alpha=alpha, random_init="gaussian")
    noise = jax.random.normal(key, x.shape, x.dtype)
    x_rand = jnp.clip(x + jnp.clip(alpha * noise, -alpha, alpha), 0.0, 1.0)
    g = jax.grad(lambda v: attacks.ce_loss(mlp(v), y).sum())(x_rand)
    want = jnp.clip(x_rand + (eps - alpha) * jnp.sign(g), 0.0, 1.0)
    np.testing.assert_allclose(got, want, atol=1e-6)
    sign = attacks.rand_fgsm(mlp, x, y, key, eps=eps, alpha=alpha)
    assert not np.allclose(got, sign)


def test_rand_fgsm_gaussian_caps_alpha_at_eps_so_small_eps_is_gaussian_noise(mlp):
    """alpha = 0.05 above eps = 0.02 (the paper's curve from eps 0.01): the example is noise of size eps,
    inside the ball; its coordinates are Gaussian (std eps) clipped at +-eps, not all +-eps as a sign step."""
    n = 400
    x = jnp.full((n, H, W, C), 0.5)
    y = jnp.zeros((n,), jnp.int32)
    eps = 0.02
    delta = np.asarray(attacks.rand_fgsm(mlp, x, y, jax.random.key(1), eps=eps, alpha=0.05,
                                         random_init="gaussian") - x).ravel()
    assert np.abs(delta).max() <= eps * (1 + 1e-5)
    saturated = np.mean(np.abs(delta) >= eps * (1 - 1e-5))
    assert 0.28 < saturated < 0.36  # P(|z| >= 1) = 0.317
    assert 0.34 < np.mean(np.abs(delta) < eps / 2) < 0.42  # P(|z| < 0.5) = 0.383
    np.testing.assert_allclose(delta.std(), eps * np.sqrt(0.516), rtol=0.05)  # E[min(z^2, 1)] = 0.516


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(norm="l1"), r"Unknown norm 'l1'; valid choices are \['linf', 'l2'\]"),
        (dict(loss="hinge"), "Unknown loss 'hinge'"),
        (dict(eps=-0.1), "eps must be >= 0"),
        (dict(step_size=-0.1), "step_size must be >= 0"),
        (dict(restarts=0), "restarts must be an integer >= 1, got 0"),
        (dict(bounds=(1.0, 0.0)), "lo < hi"),
    ],
)
def test_pgd_validation(kwargs, match, data, mlp):
    x, y = data
    args = dict(eps=EPS, step_size=0.01, num_steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        attacks.pgd(mlp, x, y, jax.random.key(0), **args)


def test_attack_validates_labels_against_logits(data, mlp):
    x, y = data
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        attacks.fgsm(mlp, x, y.at[0].set(K), eps=EPS)
    with pytest.raises(ValueError, match="non-finite"):
        attacks.pgd(mlp, x.at[0, 0, 0, 0].set(jnp.nan), y, jax.random.key(0), eps=EPS, step_size=0.01,
                    num_steps=1)
    with pytest.raises(ValueError, match=r"y must have shape \[batch\]"):
        attacks.fgsm(mlp, x, jax.nn.one_hot(y, K), eps=EPS)


# ---- minimal-epsilon searches ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_class():
    """A 2-class linear model on interior points, where the minimal FGSM step has a closed form."""
    v = jax.random.normal(jax.random.key(9), (D,))
    w = jnp.stack([jnp.zeros(D), v], axis=1)                     # z_1 - z_0 = v . x + c
    x = jnp.full((B, H, W, C), 0.5) + 0.01 * jax.random.normal(jax.random.key(10), (B, H, W, C))
    # margins m0 = v.x + c chosen so that the exact answers are -m0 / ||v||_1 in (0, 0.35)
    target = jnp.linspace(0.05, 0.35, B) * jnp.sum(jnp.abs(v))
    c = -target - x.reshape(B, -1) @ v                           # per-example offset via an extra input
    f = lambda z: (z.reshape(z.shape[0], -1) @ w) + jnp.stack([jnp.zeros(B), c], axis=1)[: z.shape[0]]
    return f, x, jnp.zeros(B, jnp.int32), jnp.linspace(0.05, 0.35, B)


def test_minimal_fgsm_matches_closed_form(two_class):
    f, x, y, exact = two_class
    eps = jax.jit(functools.partial(attacks.minimal_fgsm, f, eps_max=0.5, num_grid=8, num_bisection=12))(x, y)
    tol = 0.5 / 8 / 2 ** 12
    assert np.all(eps >= exact - 1e-5) and np.all(eps <= exact + tol + 1e-5), (eps, exact)


def test_minimal_fgsm_zero_when_misclassified_and_inf_when_out_of_reach(two_class):
    f, x, y, exact = two_class
    search = jax.jit(functools.partial(attacks.minimal_fgsm, f, eps_max=0.2, num_grid=4, num_bisection=4))
    eps = search(x, y)
    assert np.all(np.isinf(eps[exact > 0.2])) and np.all(np.isfinite(eps[exact <= 0.2]))
    np.testing.assert_array_equal(search(x, 1 - y), np.zeros(B))


def test_minimal_eps_with_fgsm_agrees_with_closed_form(two_class):
    f, x, y, exact = two_class
    search = jax.jit(functools.partial(attacks.minimal_eps, attacks.fgsm, f, eps_hi=0.5, num_steps=14,
                                       return_adv=True))
    eps, x_adv = search(x, y, jax.random.key(0))
    np.testing.assert_allclose(eps, exact, atol=0.5 / 2 ** 14 + 1e-5)
    assert np.all(np.asarray(jnp.argmax(f(x_adv), -1) != y))
    assert np.all(attacks.lp_norm(x_adv - x, "linf") <= eps + 1e-6)


def test_minimal_eps_with_pgd_inf_when_out_of_reach(two_class):
    f, x, y, exact = two_class
    pgd5 = lambda f_, x_, y_, k, eps: attacks.pgd(f_, x_, y_, k, eps=eps, step_size=eps / 2, num_steps=5)
    eps = attacks.minimal_eps(pgd5, f, x, y, jax.random.key(0), eps_hi=0.2, num_steps=8)
    assert np.all(np.isinf(eps[exact > 0.2 + 1e-3]))
    fin = np.asarray(exact < 0.2 - 1e-3)
    np.testing.assert_allclose(eps[fin], exact[fin], atol=0.2 / 2 ** 8 + 1e-5)
    with pytest.raises(ValueError, match="eps_lo < eps_hi"):
        attacks.minimal_eps(pgd5, f, x, y, jax.random.key(0), eps_hi=0.1, eps_lo=0.2)


def test_minimal_searches_under_vmap(two_class):
    f, x, y, exact = two_class
    lin = f  # its offsets follow the position in the batch: the same for both halves, which is all we need
    xs, ys = x.reshape(2, B // 2, H, W, C), y.reshape(2, B // 2)
    one = jax.jit(functools.partial(attacks.minimal_fgsm, lin, eps_max=0.5, num_grid=4, num_bisection=4))
    per_batch = jnp.stack([one(xs[0], ys[0]), one(xs[1], ys[1])])
    assert np.all(np.isfinite(per_batch)) and np.all(per_batch > 0)  # a non-trivial search
    np.testing.assert_allclose(jax.vmap(one)(xs, ys), per_batch)
    search = jax.jit(functools.partial(attacks.minimal_eps, attacks.fgsm, lin, eps_hi=0.5, num_steps=4))
    keys = jax.random.split(jax.random.key(0), 2)
    np.testing.assert_allclose(jax.vmap(search)(xs, ys, keys),
                               jnp.stack([search(xs[0], ys[0], keys[0]), search(xs[1], ys[1], keys[1])]))
