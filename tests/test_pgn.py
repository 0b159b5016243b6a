"""PGN: Eq. 5's tanh-space mapping, the true-class probability gradient against a hand computation, the
Table 1 generator's shapes, Eq. 4's objective by hand, which network each step changes (and that the G
step raises its objective), config errors named by experiment.build, the comparison-row configs, and
smoke runs of configs/pgn_cifar10.py and configs/pgn_cifar100.py end to end (offline)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import errors, experiment, models
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import pgn
from robustjax.models import pgn_generator
from robustjax.models.pgn_generator import PerturbationGenerator
from tests.test_config import load_config

NUM_CLASSES = 3
INFO = DataInfo(name="tiny", image_shape=(8, 8, 3), num_classes=NUM_CLASSES, num_train=16, num_test=8)


def tiny_config(**defense):
    """Table 1's classifier and generator at width 0.125 on 8x8x3 images, plain SGD (so a step is a small
    gradient step; 1e-3 for G, whose penalty term is steep), EMA on."""
    c = base_config()
    c.model.name, c.model.width = "pgn_convpool_cnn", 0.125
    c.defense.name = "pgn"
    c.defense.c_l = 2.0
    c.defense.generator_width = 0.125
    for k, v in defense.items():
        if k in c.defense:
            del c.defense[k]  # ConfigDict keeps a field's type; tests also set wrongly typed values
        c.defense[k] = v
    c.train.steps = 10
    c.train.ema_decay = 0.9
    c.train.optimizer = optimizer("sgd", 0.05, momentum=0.0)
    c.train.optimizers.generator = optimizer("sgd", 1e-3, momentum=0.0)
    return c


class Tiny:
    """One build of a tiny PGN with jitted steps (shared by the tests through a module-scoped fixture)."""

    def __init__(self, config):
        self.parts = pgn.build(config, INFO, 2)
        self.defense = pgn.make(config, INFO, 2)
        rng = np.random.default_rng(0)
        x = rng.uniform(0.0, 1.0, (8, 8, 8, 3))
        x[0, :2] = 0.0  # saturated pixels, where atanh needs its clip
        x[1, :2] = 1.0
        self.x = jnp.asarray(x, jnp.float32)
        self.y = jnp.asarray(rng.integers(0, NUM_CLASSES, 8), jnp.int32)
        self.batch = {"image": self.x, "label": self.y}
        self.state = jax.jit(self.parts.init)(jax.random.PRNGKey(0), self.batch)
        self.grad_image = jax.jit(self.parts.gradient_image)
        self.objective = jax.jit(self.parts.objective)
        self.generate = jax.jit(self.parts.generate)
        self.g_step = jax.jit(self.parts.g_step)
        self.f_step = jax.jit(self.parts.f_step)
        self.pgn_step = jax.jit(self.parts.pgn_step)


@pytest.fixture(scope="module")
def tiny():
    return Tiny(tiny_config())


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _changed_leaves(a, b):
    return [not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


def _np_ce(logits, y):
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), np.asarray(y)])


# ----------------------------------------------------------------------------------------------
# Eq. 5: the tanh-space mapping.


def test_tanh_mapping_is_the_identity_at_zero_and_stays_in_the_box():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, (4, 6, 6, 3)).astype(np.float32)
    x[0, 0], x[0, 1], x[1, 2] = 0.0, 1.0, 0.5  # the ends of the box, where atanh is infinite
    x = jnp.asarray(x)
    np.testing.assert_array_equal(pgn.to_adversarial(x, jnp.zeros_like(x)), x)  # exactly, ends included
    for scale in (0.1, 3.0, 1e3):
        g = scale * jnp.asarray(rng.normal(size=x.shape), jnp.float32)
        x_adv = pgn.to_adversarial(x, g)
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
        assert np.all(np.isfinite(np.asarray(x_adv)))
    # Large G pushes every pixel to the end it points at.
    big = pgn.to_adversarial(x, jnp.full_like(x, 50.0))
    np.testing.assert_allclose(big, 1.0, atol=1e-5)
    # Eq. 5 written literally, away from the clipped ends; and its derivative dx_adv/dG = 2x(1 - x) at G = 0.
    xi = jnp.clip(x, 0.01, 0.99)
    g = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    literal = (np.tanh(np.arctanh(2.0 * np.asarray(xi, np.float64) - 1.0) + np.asarray(g, np.float64)) + 1.0) / 2.0
    np.testing.assert_allclose(pgn.to_adversarial(xi, g), literal, atol=2e-6)
    slope = jax.grad(lambda t: jnp.sum(pgn.to_adversarial(xi, t)))(jnp.zeros_like(xi))
    np.testing.assert_allclose(slope, 2.0 * xi * (1.0 - xi), rtol=1e-4)
    # Another pixel box: the same map, scaled.
    x2 = -1.0 + 3.0 * xi
    np.testing.assert_allclose(pgn.to_adversarial(x2, g, (-1.0, 2.0)), -1.0 + 3.0 * literal, atol=1e-5)
    np.testing.assert_array_equal(pgn.to_adversarial(x2, jnp.zeros_like(g), (-1.0, 2.0)), x2)


# ----------------------------------------------------------------------------------------------
# The gradient input.


def test_gradient_input_is_the_true_class_probability_gradient_by_hand():
    """For logits z = x W + b: d softmax(z)_y / dx = p_y (W[:, y] - sum_k p_k W[:, k])."""
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 1.0, (5, 2, 2, 3))
    w = rng.normal(size=(12, 4))
    b = rng.normal(size=4)
    y = np.array([0, 3, 1, 2, 3])
    w32, b32 = jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)
    logits_fn = lambda v: v.reshape(v.shape[0], -1) @ w32 + b32  # noqa: E731
    grad, logits = pgn.true_class_probability_grad(logits_fn, jnp.asarray(x, jnp.float32), jnp.asarray(y))
    z = x.reshape(5, -1) @ w + b
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    py = p[np.arange(5), y]
    want = py[:, None] * (w[:, y].T - p @ w.T)
    np.testing.assert_allclose(np.asarray(grad).reshape(5, -1), want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logits, z, rtol=1e-5, atol=1e-5)
    # Not the loss gradient: that one is -1/p_y times this.
    ce_grad = jax.grad(lambda v: _np_ce_jax(logits_fn(v), y))(jnp.asarray(x, jnp.float32))
    assert not np.allclose(np.asarray(ce_grad), np.asarray(grad), atol=1e-4)
    np.testing.assert_allclose(np.asarray(ce_grad).reshape(5, -1), -want / py[:, None] / 5, rtol=1e-3, atol=1e-6)


def _np_ce_jax(logits, y):
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), jnp.asarray(y)])


def test_gradient_image_uses_the_current_classifier_not_its_ema(tiny):
    state, _ = tiny.pgn_step(tiny.state, tiny.batch, jax.random.PRNGKey(3))  # EMA now differs from params
    f = state["classifier"]
    assert any(_changed_leaves(f.params, f.ema_params))
    grad, logits = tiny.grad_image(state, tiny.x, tiny.y)
    apply = lambda params: lambda v: tiny.parts.classifier_module.apply({"params": params}, v)  # noqa: E731
    want, _ = pgn.true_class_probability_grad(apply(f.params), tiny.x, tiny.y)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-8)
    assert float(jnp.abs(grad).max()) > 0
    # ... while the deployed classifier is F alone with the EMA weights.
    np.testing.assert_allclose(tiny.defense.classifier(state)(tiny.x), apply(f.ema_params)(tiny.x), rtol=1e-5,
                               atol=1e-6)


# ----------------------------------------------------------------------------------------------
# The generator of Table 1.


def _conv_t(cin, cout):
    return 9 * cin * cout + cout


@pytest.mark.parametrize("k", [10, 100])
def test_generator_matches_table1(k):
    g = PerturbationGenerator(num_classes=k)
    x = jnp.zeros((2, 32, 32, 3))
    y = jnp.zeros((2,), jnp.int32)
    variables = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), x, x, y))
    p = variables["params"]
    kernels = {name: p[name]["kernel"].shape for name in p}
    assert kernels == {
        "dense1": (k, 1024),                 # y -> Dense 1024
        "dense2": (1024 + k, 8192),          # concat y -> Dense 8192
        "upconv1": (3, 3, 128 + k, 128),     # reshape 8x8x128, concat y -> Upconv 128 s2
        "upconv2": (3, 3, 128 + k, 128),     # concat y -> Upconv 128 s2
        "upconv3": (3, 3, 128 + 3 + 3, 128),  # concat [x, grad] -> Upconv 128 s1
        "upconv4": (3, 3, 128, 3),           # Upconv 3 s1, linear
    }
    total = ((k * 1024 + 1024) + ((1024 + k) * 8192 + 8192) + 2 * _conv_t(128 + k, 128) + _conv_t(134, 128)
             + _conv_t(128, 3))
    assert models.param_count(p) == total
    if k == 10:
        assert total == 8_966_147
    _, inter = jax.eval_shape(lambda v: g.apply(v, x, x, y, capture_intermediates=True, mutable=["intermediates"]),
                              variables)
    shapes = {name: inter["intermediates"][name]["__call__"][0].shape for name in kernels}
    assert shapes == {"dense1": (2, 1024), "dense2": (2, 8192), "upconv1": (2, 16, 16, 128),
                      "upconv2": (2, 32, 32, 128), "upconv3": (2, 32, 32, 128), "upconv4": (2, 32, 32, 3)}


@pytest.mark.parametrize("stride", [1, 2])
def test_upconv_is_flax_conv_transpose(stride):
    """The generator's upconvs compute nn.ConvTranspose(3x3, SAME) exactly, from the same parameters."""
    import flax.linen as nn

    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 5, 6, 4)), jnp.float32)
    ours = pgn_generator.Upconv(7, stride)
    flax_t = nn.ConvTranspose(7, (3, 3), strides=(stride, stride), padding="SAME")
    v = ours.init(jax.random.PRNGKey(0), x)
    v_flax = flax_t.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, v_flax)
    np.testing.assert_allclose(v["params"]["kernel"], v_flax["params"]["kernel"])  # same initialiser
    v = {"params": {"kernel": v["params"]["kernel"], "bias": jnp.arange(7.0)}}
    y = ours.apply(v, x)
    assert y.shape == (2, 5 * stride, 6 * stride, 7)
    np.testing.assert_allclose(y, flax_t.apply(v, x), rtol=1e-5, atol=1e-5)


def test_generator_reads_all_three_inputs_and_refuses_bad_sizes(tiny):
    gen = tiny.state["generator"]
    rng = np.random.default_rng(4)
    grad = jnp.asarray(rng.normal(size=tiny.x.shape), jnp.float32)
    out = lambda gr, x, y: gen.apply_fn({"params": gen.params}, gr, x, y)  # noqa: E731
    base = out(grad, tiny.x, tiny.y)
    assert base.shape == tiny.x.shape
    assert not np.allclose(out(2.0 * grad, tiny.x, tiny.y), base)
    assert not np.allclose(out(grad, 1.0 - tiny.x, tiny.y), base)
    assert not np.allclose(out(grad, tiny.x, (tiny.y + 1) % NUM_CLASSES), base)
    g = PerturbationGenerator(num_classes=3, width=0.125)
    with pytest.raises(ValueError, match="multiples of 4"):
        jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((1, 10, 10, 3)), jnp.zeros((1, 10, 10, 3)),
                                      jnp.zeros((1,), jnp.int32)))


# ----------------------------------------------------------------------------------------------
# Eq. 4's objective.


def test_generator_objective_by_hand():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    y = jnp.array([0, 1])
    x = jnp.zeros((2, 1, 2, 1))
    x_adv = jnp.array([[[[0.3], [0.4]]], [[[0.0], [0.1]]]])  # ||x_adv - x||^2: 0.25 and 0.01
    g = jnp.array([[[[1.0], [2.0]]], [[[0.0], [-1.0]]]])      # ||g||^2: 5 and 1
    ce = _np_ce(logits, y)
    value, parts = pgn.generator_objective(logits, y, x, x_adv, g, c_l=50.0, penalty="pixel")
    np.testing.assert_allclose(value, ce - 50.0 * (0.25 + 0.01) / 2, rtol=1e-6)
    np.testing.assert_allclose(parts["ce_adv_g"], ce, rtol=1e-6)
    value, _ = pgn.generator_objective(logits, y, x, x_adv, g, c_l=50.0, penalty="tanh")
    np.testing.assert_allclose(value, ce - 50.0 * (5.0 + 1.0) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="penalty"):
        pgn.generator_objective(logits, y, x, x_adv, g, c_l=1.0, penalty="l1")
    np.testing.assert_allclose(pgn.classifier_objective(None, logits, y, 1.0), ce, rtol=1e-6)
    clean = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(pgn.classifier_objective(clean, logits, y, 0.25),
                               0.75 * _np_ce(clean, y) + 0.25 * ce, rtol=1e-6)


def test_objective_value_is_eq4_on_the_generated_batch(tiny):
    s = tiny.state
    grad, _ = tiny.grad_image(s, tiny.x, tiny.y)
    value, parts = tiny.objective(s, s["generator"].params, tiny.x, tiny.y, grad)
    x_adv, g = tiny.generate(s["generator"].params, s, tiny.x, tiny.y, grad)
    logits = tiny.parts.classifier_module.apply({"params": s["classifier"].params}, x_adv)
    sq = np.sum(np.square(np.asarray(x_adv, np.float64) - np.asarray(tiny.x, np.float64)).reshape(8, -1), -1)
    np.testing.assert_allclose(value, _np_ce(logits, tiny.y) - 2.0 * sq.mean(), rtol=1e-4)
    assert sq.mean() > 0 and float(parts["l2_pixel"]) > 0
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


# ----------------------------------------------------------------------------------------------
# Which network each step changes.


def test_g_step_changes_only_g_and_raises_its_objective(tiny):
    s0 = tiny.state
    grad, _ = tiny.grad_image(s0, tiny.x, tiny.y)
    before, _ = tiny.objective(s0, s0["generator"].params, tiny.x, tiny.y, grad)
    s1, m = tiny.g_step(s0, tiny.x, tiny.y, grad, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["objective_g"], before, rtol=1e-5)  # the metric is J before the step
    assert _leaves_equal(s1["classifier"], s0["classifier"])  # params, EMA, optimizer state, step
    changed = _changed_leaves(s1["generator"].params, s0["generator"].params)
    assert sum(changed) >= 0.9 * len(changed)
    assert int(s1["generator"].step) == int(s0["generator"].step) + 1
    after, _ = tiny.objective(s1, s1["generator"].params, tiny.x, tiny.y, grad)
    assert float(after) > float(before)  # G ascends Eq. 4 (same batch, same F, same gradient image)


@pytest.fixture(scope="module")
def free():
    """A tiny PGN without the penalty (c_L = 0), three G steps per F step, and Adam (1e-2 for F, 1e-3 for G),
    whose classifier first fits the batch (20 F steps on clean images) so that its loss responds to its
    input."""
    c = tiny_config(c_l=0.0, g_steps=3)
    c.train.optimizers.classifier = optimizer("adam", 1e-2)
    c.train.optimizers.generator = optimizer("adam", 1e-3)
    t = Tiny(c)
    state = t.state
    for i in range(20):
        state, _ = t.f_step(state, t.x, t.y, t.x, jax.random.PRNGKey(i))
    t.state = state
    return t


def test_without_the_penalty_the_g_step_raises_the_classifiers_loss(free):
    s0 = free.state
    grad, _ = free.grad_image(s0, free.x, free.y)
    _, before = free.objective(s0, s0["generator"].params, free.x, free.y, grad)
    s1, _ = free.g_step(s0, free.x, free.y, grad, jax.random.PRNGKey(1))
    _, after = free.objective(s1, s1["generator"].params, free.x, free.y, grad)
    assert float(after["ce_adv_g"]) > float(before["ce_adv_g"]) + 1e-3
    assert float(after["penalty"]) != float(before["penalty"])


def test_f_step_changes_only_f_and_lowers_its_loss_on_the_generated_batch(tiny):
    s0 = tiny.state
    grad, _ = tiny.grad_image(s0, tiny.x, tiny.y)
    x_adv, _ = tiny.generate(s0["generator"].params, s0, tiny.x, tiny.y, grad)
    s1, m = tiny.f_step(s0, tiny.x, tiny.y, x_adv, jax.random.PRNGKey(2))
    assert _leaves_equal(s1["generator"], s0["generator"])
    assert all(_changed_leaves(s1["classifier"].params, s0["classifier"].params))
    assert int(s1["classifier"].step) == int(s0["classifier"].step) + 1
    apply = lambda st: tiny.parts.classifier_module.apply({"params": st["classifier"].params}, x_adv)  # noqa: E731
    np.testing.assert_allclose(m["loss_f"], _np_ce(apply(s0), tiny.y), rtol=1e-5)  # adv_coeff 1: x_adv only
    assert _np_ce(apply(s1), tiny.y) < _np_ce(apply(s0), tiny.y)


def test_pgn_step_trains_f_on_the_updated_generators_examples(tiny):
    s0 = tiny.state
    s1, m = tiny.pgn_step(s0, tiny.batch, jax.random.PRNGKey(5))
    grad, logits = tiny.grad_image(s0, tiny.x, tiny.y)
    s_g, _ = tiny.g_step(s0, tiny.x, tiny.y, grad, jax.random.PRNGKey(0))
    for a, b in zip(jax.tree.leaves(s1["generator"].params), jax.tree.leaves(s_g["generator"].params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # one G step (g_steps = 1) ...
    assert int(s1["generator"].step) == 1
    x_new, _ = tiny.generate(s_g["generator"].params, s0, tiny.x, tiny.y, grad)
    x_old, _ = tiny.generate(s0["generator"].params, s0, tiny.x, tiny.y, grad)
    f0 = lambda v: tiny.parts.classifier_module.apply({"params": s0["classifier"].params}, v)  # noqa: E731
    np.testing.assert_allclose(m["loss_f"], _np_ce(f0(x_new), tiny.y), rtol=1e-5)  # ... then F on its output
    assert abs(float(m["loss_f"]) - _np_ce(f0(x_old), tiny.y)) > 1e-6
    np.testing.assert_allclose(m["acc_clean"], np.mean(np.argmax(logits, -1) == np.asarray(tiny.y)))
    assert all(np.isfinite(float(v)) for v in m.values())
    assert [p.name for p in tiny.defense.phases] == ["pgn"] and tiny.defense.networks == ("classifier", "generator")


def test_g_steps_runs_several_generator_updates_per_classifier_update(free):
    s0 = free.state
    s1, _ = free.pgn_step(s0, free.batch, jax.random.PRNGKey(5))
    assert int(s1["generator"].step) == int(s0["generator"].step) + 3
    assert int(s1["classifier"].step) == int(s0["classifier"].step) + 1


# ----------------------------------------------------------------------------------------------
# Config errors, through experiment.build.


def _digits_config(**defense):
    c = tiny_config(**defense)
    c.data.name, c.data.source, c.data.image_size = "digits", "digits", 16
    c.data.train_size, c.data.test_size, c.data.batch_size = 64, 16, 16
    return c


@pytest.mark.parametrize(
    "change, message",
    [
        ({"c_L": 50.0}, r"config.defense.c_L: unknown field \(did you mean 'c_l'\?\)"),
        ({"c_l": -1.0}, r"config.defense.c_l: must be a number in \[0.0, inf\]"),
        ({"penalty": "l2"}, "config.defense.penalty: 'l2' is not one of"),
        ({"adv_coeff": 1.5}, r"config.defense.adv_coeff: must be a number in \[0.0, 1.0\]"),
        ({"g_steps": 0}, "config.defense.g_steps: must be an integer >= 1"),
        ({"generator_width": 0.0}, "config.defense.generator_width: must be a number"),
        ({"attack": {"attack": "fgm", "eps": 0.1}}, "config.defense.attack: unknown field"),
    ],
)
def test_bad_config_fails_in_build_naming_the_field(change, message):
    with pytest.raises(errors.ConfigError, match=message):
        experiment.build(_digits_config(**change))


def test_bad_optimizer_name_and_image_size_fail_in_build():
    c = _digits_config()
    c.train.optimizers.discriminator = optimizer("adam", 1e-3)
    with pytest.raises(ValueError, match="config.train.optimizers.discriminator: pgn has no network"):
        experiment.build(c)
    c = _digits_config()
    c.data.image_size = 18
    with pytest.raises(ValueError, match="config.data: PGN's generator .* multiples of 4"):
        experiment.build(c)


# ----------------------------------------------------------------------------------------------
# The comparison rows, and smoke runs of both configs end to end.


@pytest.mark.parametrize("dataset, eps", [("cifar10", 0.1), ("cifar100", 0.02)])
def test_baseline_configs_change_only_the_training_method(dataset, eps):
    ours = load_config(f"pgn_{dataset}.py")
    for method, name in (("naive", "standard"), ("fgm_at", "fgm_at"), ("pgd_at", "pgd_at")):
        c = load_config(f"pgn_baseline_{dataset}.py", f"method={method}")
        assert c.defense.name == name
        for section in ("data", "model", "eval"):
            assert c[section].to_dict() == ours[section].to_dict(), section
        assert c.train.optimizer.to_dict() == ours.train.optimizer.to_dict() and c.train.ema_decay == 0.998
        assert c.train.epochs == ours.train.epochs == 200
    fgm = load_config(f"pgn_baseline_{dataset}.py", "method=fgm_at").defense
    assert fgm.attack.to_dict() == {"attack": "fgm", "eps": eps, "norm": "l2"} and fgm.adv_fraction == 1.0
    pgd = load_config(f"pgn_baseline_{dataset}.py", "method=pgd_at").defense.attack
    assert (pgd.attack, pgd.norm, pgd.eps, pgd.num_steps, pgd.random_start) == ("pgd", "l2", eps, 10, True)
    assert ours.model.name == "pgn_convpool_cnn" and ours.defense.c_l == 50.0
    assert ours.train.optimizer.learning_rate == 5e-4 and ours.data.batch_size == 128


def _check_run(workdir, results, num_classes):
    for name in ("config.json", "results.json", "report.md", "metrics.jsonl"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert results["info"]["steps"] == 2
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert {r["phase"] for r in records} == {"pgn"}
    for key in ("objective_g", "loss_f", "l2_pixel", "acc_clean", "grad_norm"):
        assert np.isfinite(records[-1][key]), key
    assert 0.0 <= results["clean_accuracy"] <= 1.0
    return records


@pytest.fixture(scope="module")
def cifar10_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("pgn_cifar10"))
    c = load_config("pgn_cifar10.py", "smoke")
    assert c.data.source == "synthetic"
    assert c.eval.attacks.autoattack_l2_0p5.version == "standard"
    c.eval.attacks.autoattack_l2_0p5.attacks = ["apgd-ce"]  # AutoAttack's own tests run the rest; saves time
    assert c.eval.curves.mim_l2.norm == "l2"
    c.eval.curves = {}  # the MIM curve is MIM again: its attack runs above
    return workdir, experiment.run(c, workdir)


def test_cifar10_smoke_runs_every_attack_of_the_papers_table(cifar10_run):
    workdir, results = cifar10_run
    _check_run(workdir, results, 10)
    assert set(results["attacks"]) == {"fgm_l2_0p5", "mim_l2_0p5", "deepfool_l2", "cw_l2", "autoattack_l2_0p5"}
    for label in ("fgm_l2_0p5", "mim_l2_0p5", "autoattack_l2_0p5"):
        r = results["attacks"][label]
        assert r["norm"] == "l2" and r["eps"] == 0.5 and r["budget_violations"] == 0, label


def test_cifar100_smoke_on_the_standin(tmp_path):
    c = load_config("pgn_cifar100.py", "smoke")
    assert c.data.name == "cifar100" and c.data.source == "synthetic"
    c.eval.attacks = {"fgm_l2_0p5": c.eval.attacks.fgm_l2_0p5.to_dict()}  # the attacks ran in the CIFAR-10 test
    c.eval.curves = {}
    results = experiment.run(c, str(tmp_path))
    _check_run(str(tmp_path), results, 100)
    assert results["info"]["dataset"] == "cifar100-standin"
    params = json.load(open(os.path.join(str(tmp_path), "config.json")))
    assert params["defense"]["name"] == "pgn"


def test_results_script_balances_benign_accuracy_by_early_stopping():
    """benchmarks/pgn.py's protocol: each defended row takes its checkpoint closest to the naive network's
    final accuracy; if one never gets there, every row (the naive one too) is early-stopped to the lowest
    best accuracy among them."""
    from benchmarks import pgn as bench

    rows = {"naive": "n", "fgm": "f", "pgn": "p"}
    traj = {"n": [(10, 0.50), (20, 0.60), (30, 0.70)], "f": [(10, 0.55), (20, 0.69), (30, 0.74)],
            "p": [(10, 0.40), (20, 0.71), (30, 0.72)]}
    b = bench.balance(traj, rows, tolerance=0.01)
    assert b["target"] == 0.70 and b["rule"].startswith("naive")
    assert {k: v["step"] for k, v in b["rows"].items()} == {"naive": 30, "fgm": 20, "pgn": 20}
    traj["p"] = [(10, 0.40), (20, 0.55), (30, 0.62)]  # PGN never reaches 0.70: everyone meets at 0.62
    b = bench.balance(traj, rows, tolerance=0.01)
    assert b["target"] == 0.62 and "lowest best" in b["rule"]
    assert {k: v["step"] for k, v in b["rows"].items()} == {"naive": 20, "fgm": 20, "pgn": 30}
