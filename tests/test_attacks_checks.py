"""Input checks of every attack under ``jax.jit``: static errors at trace time, value errors via checkify,
outputs in the box whatever the input, one rule for loop counts, and no cost when checks are off.

Tiny pure-jax MLP on 6x6x1 "images" with 5 classes, 4 examples, every attack at a minimal budget; each
compiled function is built once per module and shared.
"""

import collections
import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from robustjax import attacks
from robustjax.attacks import core

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 4, 6, 6, 1, 5
D = H * W * C
EPS = 0.05


@pytest.fixture(scope="module")
def mlp():
    k1, k2 = jax.random.split(jax.random.key(3))
    w1 = jax.random.normal(k1, (D, 16)) / 3
    w2 = jax.random.normal(k2, (16, K))
    return lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w1 * 3) @ w2


@pytest.fixture(scope="module")
def data(mlp):
    x = jax.random.uniform(jax.random.key(1), (B, H, W, C), minval=0.05, maxval=0.95)
    return x, jnp.argmax(mlp(x), -1).astype(jnp.int32)


# Every attack, hyperparameters bound, at a budget that only has to compile and run.
ATTACKS = {
    "fgsm": functools.partial(attacks.fgsm, eps=EPS),
    "fgm": functools.partial(attacks.fgm, eps=0.3),
    "rand_fgsm": functools.partial(attacks.rand_fgsm, eps=EPS),
    "bim": functools.partial(attacks.bim, eps=EPS, step_size=0.02, num_steps=2),
    "pgd": functools.partial(attacks.pgd, eps=EPS, step_size=0.02, num_steps=2),
    "mim": functools.partial(attacks.mim, eps=EPS, step_size=0.02, num_steps=2),
    "apgd": functools.partial(attacks.apgd, eps=EPS, num_steps=2),
    "square": functools.partial(attacks.square, eps=EPS, num_queries=3),
    "fab": functools.partial(attacks.fab, eps=EPS, num_steps=2),
    "jsma": functools.partial(attacks.jsma, gamma=0.1, target="next"),
    "deepfool": functools.partial(attacks.deepfool, num_steps=2, num_candidates=3),
    "cw_l2": functools.partial(attacks.cw_l2, binary_search_steps=1, num_steps=2),
    "autoattack": functools.partial(attacks.autoattack, eps=EPS, num_steps=2, num_queries=3, num_targets=1),
    "minimal_fgsm": functools.partial(attacks.minimal_fgsm, eps_max=0.3, num_grid=2, num_bisection=1),
    "minimal_eps": functools.partial(attacks.minimal_eps, attacks.fgsm, eps_hi=0.3, num_steps=2, return_adv=True),
}


# ---- static checks: wrong rank / shape / dtype raise at trace time under jit ------------------------------


def _bad_inputs(x, y):
    return {
        "rank1": (x.reshape(-1), y[0], r"at least 2 dimensions|looks like one HWC image|NHWC"),
        "one_hwc_image": (x[0], y[0], r"x \(6, 6, 1\) looks like one HWC image.*add a batch axis: x\[None\]"),
        "uint8_pixels": ((x * 255).astype(jnp.uint8), y, r"x must be floating point images .*x.astype"),
        "float_labels": (x, y.astype(jnp.float32), "y must be integer class labels"),
        "one_hot_labels": (x, jax.nn.one_hot(y, K), r"y must have shape \[batch\] = \[4\].*not one-hot"),
        "short_labels": (x, y[:2], r"y must have shape \[batch\] = \[4\]"),
    }


@pytest.mark.parametrize("case", ["rank1", "one_hwc_image", "uint8_pixels", "float_labels", "one_hot_labels",
                                  "short_labels"])
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_jit_rejects_bad_rank_shape_dtype_at_trace_time(name, case, mlp, data):
    x_bad, y_bad, match = _bad_inputs(*data)[case]
    fn = jax.jit(functools.partial(ATTACKS[name], mlp))
    with pytest.raises(ValueError, match=match):
        fn.trace(x_bad, y_bad, jax.random.key(0))  # tracing alone raises: nothing is compiled


def test_nchw_input_gets_a_hint_where_the_model_fails():
    w = jax.random.normal(jax.random.key(0), (3, 3, 1, 4))
    v = jax.random.normal(jax.random.key(1), (8 * 8 * 4, K))

    def conv_net(x):  # NHWC, one input channel
        h = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return h.reshape(x.shape[0], -1) @ v

    x_nchw = jnp.full((2, 1, 8, 8), 0.5)
    with pytest.raises(ValueError, match=r"looks like NCHW.*x.transpose\(0, 2, 3, 1\)"):
        jax.jit(lambda x, y, k: attacks.pgd(conv_net, x, y, k, eps=EPS, step_size=0.01, num_steps=1)).trace(
            x_nchw, jnp.zeros(2, jnp.int32), jax.random.key(0))
    # the NHWC batch is fine
    jax.jit(lambda x, y, k: attacks.fgsm(conv_net, x, y, k, eps=EPS)).trace(
        x_nchw.transpose(0, 2, 3, 1), jnp.zeros(2, jnp.int32), jax.random.key(0))


# ---- outputs stay in the box, whatever the input ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_output_in_the_box_for_pixels_in_0_255_under_jit(name, mlp, data):
    x, y = data
    x255 = x * 255.0  # the classic mistake: uint8-scaled float pixels with bounds (0, 1)
    out = jax.jit(functools.partial(ATTACKS[name], mlp))(x255, y, jax.random.key(0))
    if name == "minimal_fgsm":  # returns eps [B]: 0, a value in (0, eps_max], or inf
        chex.assert_shape(out, (B,))
        assert np.all((np.asarray(out) >= 0) & ((np.asarray(out) <= 0.3) | np.isinf(out)))
        return
    if name == "minimal_eps":
        eps, out = out
        chex.assert_shape(eps, (B,))
    chex.assert_shape(out, x.shape)
    chex.assert_tree_all_finite(out)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, (float(out.min()), float(out.max()))


# ---- value checks: checkify reports them under jit ------------------------------------------------------


# Representative attacks, each compiled once under checkify with its value-checked hyperparameter traced.
CHECKED = {
    "pgd": ("eps", lambda f, x, y, k, v: attacks.pgd(f, x, y, k, eps=v, step_size=0.02, num_steps=2)),
    "fgsm": ("eps", lambda f, x, y, k, v: attacks.fgsm(f, x, y, k, eps=v)),
    "apgd": ("eps", lambda f, x, y, k, v: attacks.apgd(f, x, y, k, eps=v, num_steps=2)),
    "square": ("eps", lambda f, x, y, k, v: attacks.square(f, x, y, k, eps=v, num_queries=3)),
    "autoattack": ("eps", lambda f, x, y, k, v: attacks.autoattack(f, x, y, k, eps=v, num_steps=2, num_queries=3,
                                                                   num_targets=1)),
    "deepfool": ("overshoot", lambda f, x, y, k, v: attacks.deepfool(f, x, y, k, num_steps=2, overshoot=v)),
    "cw_l2": ("confidence", lambda f, x, y, k, v: attacks.cw_l2(f, x, y, k, binary_search_steps=1, num_steps=2,
                                                                confidence=v)),
}


@pytest.fixture(scope="module")
def checked(mlp):
    return {name: jax.jit(checkify.checkify(functools.partial(fn, mlp), errors=checkify.user_checks))
            for name, (_, fn) in CHECKED.items()}


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_checkify_reports_bad_values_under_jit(name, checked, data):
    x, y = data
    param = CHECKED[name][0]
    run = checked[name]
    key, good = jax.random.key(0), jnp.float32(0.02)

    err, out = run(x, y, key, good)
    assert err.get() is None  # clean inputs: nothing reported
    chex.assert_shape(out, x.shape)

    cases = [
        ((x.at[1, 2, 3, 0].set(jnp.nan), y, good), rf"{name}: x has 1 non-finite pixel"),
        ((x, y.at[0].set(999), good), rf"{name}: labels must be in \[0, 5\) .*got values in \[\d, 999\]"),
        ((x, y.at[2].set(-1), good), rf"{name}: labels must be in \[0, 5\) .*got values in \[-1, \d\]"),
        ((x, y, jnp.float32(-0.1)), rf"{name}: {param} must be >= 0.*got -0.1"),
        ((x, y, jnp.float32(jnp.nan)), rf"{name}: {param} must be >= 0.*got nan"),
        ((x * 255.0, y, good), rf"{name}: pixels of x lie in \[[\d.e-]+, [\d.]+\], outside bounds=\(0, 1\)"),
    ]
    for args, match in cases:
        err, out = run(args[0], args[1], key, args[2])
        assert err.get() is not None, match
        assert re.search(match, err.get()), (err.get(), match)
        with pytest.raises(checkify.JaxRuntimeError, match=match):
            err.throw()
    assert run._cache_size() == 1  # one compiled function served every case


def test_eager_calls_raise_value_errors(mlp, data):
    x, y = data
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        attacks.pgd(mlp, x, y.at[0].set(999), jax.random.key(0), eps=EPS, step_size=0.01, num_steps=1)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.apgd(mlp, x, y, jax.random.key(0), eps=-0.1, num_steps=1)
    with pytest.raises(ValueError, match="outside bounds"):
        attacks.square(mlp, x * 255.0, y, jax.random.key(0), eps=EPS, num_queries=2)


def test_traced_rand_fgsm_alpha_and_minimal_eps_interval_are_checked(mlp, data):
    x, y = data
    rf = jax.jit(checkify.checkify(lambda a: attacks.rand_fgsm(mlp, x, y, jax.random.key(0), eps=0.1, alpha=a)))
    assert rf(jnp.float32(0.05))[0].get() is None
    assert "alpha must be <= eps" in rf(jnp.float32(0.2))[0].get()
    me = jax.jit(checkify.checkify(lambda lo: attacks.minimal_eps(attacks.fgsm, mlp, x, y, jax.random.key(0),
                                                                  eps_hi=0.2, eps_lo=lo, num_steps=1)))
    assert me(jnp.float32(0.0))[0].get() is None
    assert "need eps_lo < eps_hi" in me(jnp.float32(0.3))[0].get()


# ---- checks cost nothing without checkify ----------------------------------------------------------------


def _opcodes(hlo_text):
    return collections.Counter(m.group(1) for m in re.finditer(r"= \S+ (\w[\w-]*)\(", hlo_text))


def test_plain_jit_compiles_the_checks_away(mlp, data, monkeypatch):
    """The compiled pgd is the same program with and without the value checks (they only feed
    ``debug_check``, which a plain jit drops; XLA removes the dead predicates)."""
    x, y = data
    args = (x, y, jax.random.key(0), jnp.float32(EPS))

    def compiled():
        fn = lambda x, y, k, e: attacks.pgd(mlp, x, y, k, eps=e, step_size=e / 4, num_steps=2)  # noqa: E731
        return jax.make_jaxpr(fn)(*args), jax.jit(fn).lower(*args).compile().as_text()

    jaxpr_on, hlo_on = compiled()
    monkeypatch.setattr(core, "require", lambda *a, **k: None)
    jaxpr_off, hlo_off = compiled()
    checks = [e for e in jaxpr_on.jaxpr.eqns if e.primitive.name == "check"]
    assert len(checks) >= 4 and all(e.params.get("debug") for e in checks)  # the checks are there ...
    assert not any(e.primitive.name == "check" for e in jaxpr_off.jaxpr.eqns)
    assert _opcodes(hlo_on) == _opcodes(hlo_off)  # ... and compile to nothing
    assert sum(_opcodes(hlo_on).values()) > 50


# ---- one rule for loop counts ------------------------------------------------------------------------------


COUNTS = [
    ("pgd", "num_steps"), ("pgd", "restarts"), ("bim", "num_steps"), ("mim", "num_steps"),
    ("apgd", "num_steps"), ("apgd", "restarts"), ("apgd", "num_targets"), ("apgd", "eot_iter"),
    ("apgd", "chunk_size"), ("square", "num_queries"), ("square", "restarts"), ("fab", "num_steps"),
    ("fab", "restarts"), ("fab", "num_targets"), ("deepfool", "num_steps"), ("cw_l2", "num_steps"),
    ("cw_l2", "binary_search_steps"), ("jsma", "pair_chunk"), ("autoattack", "num_steps"),
    ("autoattack", "num_queries"), ("autoattack", "num_targets"), ("autoattack", "restarts"),
    ("autoattack", "chunk_size"), ("minimal_fgsm", "num_grid"), ("minimal_eps", "num_steps"),
]


@pytest.mark.parametrize("bad", [0, -1, 2.5, 2.0, True, "3"])
@pytest.mark.parametrize("name, count", COUNTS)
def test_every_loop_count_is_an_integer_at_least_one(name, count, bad, mlp, data):
    x, y = data
    with pytest.raises(ValueError, match=rf"{name}: {count} must be an integer >= 1.*, got {re.escape(repr(bad))}"):
        jax.jit(functools.partial(ATTACKS[name], mlp, **{count: bad})).trace(x, y, jax.random.key(0))


def test_loop_counts_refuse_arrays_and_accept_numpy_ints(mlp, data):
    x, y = data
    with pytest.raises(ValueError, match=r"pgd: num_steps must be an integer >= 1 known at trace time"):
        jax.jit(lambda n: ATTACKS["pgd"](mlp, x, y, jax.random.key(0), num_steps=n)).trace(3)
    fn = functools.partial(ATTACKS["pgd"], mlp, num_steps=np.int64(2))
    jax.jit(fn).trace(x, y, jax.random.key(0))
    # the documented exception: minimal_fgsm's num_bisection may be 0 (no refinement of the grid's answer)
    jax.jit(functools.partial(ATTACKS["minimal_fgsm"], mlp, num_bisection=0)).trace(x, y, None)
    with pytest.raises(ValueError, match=r"num_bisection must be an integer >= 0, got -1"):
        jax.jit(functools.partial(ATTACKS["minimal_fgsm"], mlp, num_bisection=-1)).trace(x, y, None)
