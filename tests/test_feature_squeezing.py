"""Feature squeezing: the quantiser and the median filter by hand (and against scipy), what the
classifier trains on, what an attacker differentiates (BPDA through the identity, or nothing for the
naive attacker), config mistakes refused by experiment.build, and on a tiny trained run the naive
attack far weaker than the BPDA one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from robustjax import experiment
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import feature_squeezing as fs
from tests.test_config import load_config

INFO = DataInfo(name="tiny", image_shape=(8, 8, 1), num_classes=3, num_train=16, num_test=8)


# ----------------------------------------------------------------------------------------------
# The squeezer.


def test_one_bit_is_a_threshold_at_one_half():
    x = jnp.array([0.0, 0.2, 0.49, 0.5, 0.51, 0.8, 1.0])
    np.testing.assert_array_equal(fs.reduce_bit_depth(x, 1), [0, 0, 0, 0, 1, 1, 1])  # 0.5: ties to even


def test_three_bits_round_to_the_nearest_of_eight_levels():
    x = jnp.array([0.0, 0.07, 0.0715, 0.3, 0.5, 0.93, 1.0])
    # x * 7 = 0, 0.49, 0.5005, 2.1, 3.5, 6.51, 7 -> levels 0, 0, 1, 2, 4 (tie to even), 7, 7
    np.testing.assert_allclose(fs.reduce_bit_depth(x, 3), np.array([0, 0, 1, 2, 4, 7, 7]) / 7, rtol=1e-6)
    assert len(np.unique(np.asarray(fs.reduce_bit_depth(jnp.linspace(0, 1, 1001), 3)))) == 8


def test_bit_depth_follows_the_bounds_and_clips():
    x = jnp.array([-1.0, -0.2, 0.1, 0.9, 3.0])
    np.testing.assert_allclose(fs.reduce_bit_depth(x, 1, bounds=(-1.0, 1.0)), [-1, -1, 1, 1, 1])
    np.testing.assert_allclose(fs.reduce_bit_depth(jnp.array([-0.3, 1.4]), 2), [0.0, 1.0])
    np.testing.assert_allclose(fs.reduce_bit_depth(x, 8, bounds=(-1.0, 1.0))[1:4], [-0.2, 0.1, 0.9], atol=1 / 255)


def test_median_filter_2x2_by_hand():
    img = np.array([[1.0, 2.0, 3.0],
                    [4.0, 5.0, 6.0],
                    [7.0, 8.0, 9.0]])
    # A 2x2 window covers rows i-1, i and columns j-1, j, mirrored at the top and left edges (row -1 is
    # row 0); the median of four values is the upper middle one (the third smallest). E.g. (1, 1):
    # {1, 2, 4, 5} -> 4; (0, 1): {1, 2, 1, 2} -> 2; (2, 0): {4, 4, 7, 7} -> 7.
    want = np.array([[1.0, 2.0, 3.0],
                     [4.0, 4.0, 5.0],
                     [7.0, 7.0, 8.0]])
    got = fs.median_filter(jnp.asarray(img)[None, :, :, None], 2)[0, :, :, 0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("size", [2, 3, 4])
def test_median_filter_matches_scipy(size):
    x = np.random.default_rng(size).random((2, 7, 6, 3)).astype(np.float32)
    want = scipy.ndimage.median_filter(x, size=(1, size, size, 1), mode="reflect")
    np.testing.assert_array_equal(fs.median_filter(jnp.asarray(x), size), want)
    np.testing.assert_array_equal(fs.median_filter(jnp.asarray(x), 1), x)


def test_squeeze_filters_then_quantises():
    x = jnp.asarray(np.random.default_rng(0).random((1, 6, 6, 1)), jnp.float32)
    out = fs.squeeze(x, bit_depth=1, median_size=2)
    np.testing.assert_array_equal(out, fs.reduce_bit_depth(fs.median_filter(x, 2), 1))
    assert set(np.unique(np.asarray(out))) <= {0.0, 1.0}


# ----------------------------------------------------------------------------------------------
# The defense.


def tiny_config(**defense):
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25
    c.defense.name = "feature_squeezing"
    c.defense.bit_depth = 1
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 3
    c.train.optimizer = optimizer("sgd", 0.1, momentum=0.0)
    return c


def _batch():
    rng = np.random.default_rng(0)
    return {"image": jnp.asarray(rng.uniform(0, 1, (8, 8, 8, 1)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 3, 8), jnp.int32)}


def _ce(logits, y):
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    return -np.mean((z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(y)), np.asarray(y)])


@pytest.mark.parametrize("on_squeezed", [True, False])
def test_the_classifier_trains_on_squeezed_inputs_only_when_asked(on_squeezed):
    defense = fs.make(tiny_config(train_on_squeezed=on_squeezed), INFO, 4)
    batch = _batch()
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    net = state["classifier"]
    seen = fs.reduce_bit_depth(batch["image"], 1) if on_squeezed else batch["image"]
    want = _ce(net.apply_fn({"params": net.params}, seen), batch["label"])
    _, m = jax.jit(defense.phases[0].train_step)(state, batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["loss"], want, rtol=1e-5)


def test_deployed_classifier_squeezes_and_the_attacker_gets_bpda():
    defense = fs.make(tiny_config(median_size=2), INFO, 4)
    batch = _batch()
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    net, x = state["classifier"], batch["image"]
    raw = lambda v: net.apply_fn({"params": net.params}, v)  # noqa: E731
    squeezed = fs.squeeze(x, bit_depth=1, median_size=2)
    np.testing.assert_allclose(defense.classifier(state)(x), raw(squeezed), rtol=1e-6)

    def grad(f):
        return jax.grad(lambda v: jnp.sum(f(v)[:, 0]))(x)

    assert float(jnp.abs(grad(defense.attack_model(state, adaptive=False))).max()) == 0.0  # naive: nothing
    adaptive = defense.attack_model(state)  # BPDA: squeezed values, gradient of the network at x itself
    np.testing.assert_allclose(adaptive(x), raw(squeezed), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad(adaptive), grad(raw), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("change, message", [
    ({"bit_depth": 0}, r"config.defense.bit_depth: must be an integer in \[1, 8\], got 0"),
    ({"bit_depth": 9}, r"config.defense.bit_depth: must be an integer in \[1, 8\]"),
    ({"bit_depth": 2.5}, "config.defense.bit_depth: must be an integer"),
    ({"median_size": -1}, "config.defense.median_size: must be an integer"),
    ({"train_on_squeezed": "yes"}, "config.defense.train_on_squeezed: must be True or False"),
    ({"bitdepth": 1}, r"config.defense.bitdepth: unknown field \(did you mean 'bit_depth'\?\)"),
    ({"attack": {"attack": "pgd", "eps": -0.3}}, "config.defense.attack.eps"),
])
def test_bad_config_fails_in_build_naming_the_field(change, message):
    c = load_config("feature_squeezing_mnist.py", "smoke")
    for k, v in change.items():
        if k in c.defense:
            del c.defense[k]
        c.defense[k] = v
    with pytest.raises(ValueError, match=message):
        experiment.build(c)


def test_missing_bit_depth_is_named():
    c = load_config("feature_squeezing_mnist.py", "smoke")
    del c.defense["bit_depth"]
    with pytest.raises(ValueError, match="config.defense.bit_depth: missing"):
        experiment.build(c)


# ----------------------------------------------------------------------------------------------
# A tiny trained run: the naive attacker is stopped by the zero gradient, BPDA is not.


def test_naive_attack_is_much_weaker_than_bpda_on_a_trained_run(tmp_path):
    c = load_config("quickstart.py", "smoke")  # digits 16x16: grey levels, so 1-bit squeezing is not trivial
    c.defense = {"name": "feature_squeezing", "bit_depth": 1}
    c.data.train_size, c.data.test_size = 512, 64
    c.train.steps = 60
    c.eval.num_examples = c.eval.batch_size = 64
    pgd = {"attack": "pgd", "eps": 0.3, "step_size": 0.05, "num_steps": 10, "random_start": False}
    c.eval.attacks = {"bpda": dict(pgd), "naive": {**pgd, "adaptive": False}}
    c.eval.curves = {}
    results = experiment.run(c, str(tmp_path))
    clean, naive, bpda = (results["clean_accuracy"], results["attacks"]["naive"],
                          results["attacks"]["bpda"])
    assert clean > 0.4  # it learned something (chance: 0.1)
    assert naive["adaptive"] is False and naive["robust_accuracy"] == clean  # a zero gradient moves nothing
    assert bpda["robust_accuracy"] < 0.5 * clean  # through BPDA the same budget breaks most of it
    assert bpda["budget_violations"] == naive["budget_violations"] == 0
