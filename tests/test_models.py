"""Tests of robustjax.models: shapes, hand-counted parameters, activations, BN/dropout modes, pooling.

    python -m pytest -q tests/test_models.py

Every model is initialised once (module-scoped cache, jitted init/apply); the large ones at a small
width on small inputs. Full-size parameter counts use jax.eval_shape (tracing only, no compute).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from robustjax import models
from robustjax.models import layers

jax.config.update("jax_disable_most_optimizations", True)

B = 2

# name -> (config overrides, input shape, feature dim F, first_conv shape) at test size.
CASES = {
    "cw_mnist": ({}, (28, 28, 1), 200, (26, 26, 32)),
    "lenet": ({}, (28, 28, 1), 1024, (28, 28, 32)),
    "small_cnn": ({}, (16, 16, 1), 64, (16, 16, 16)),
    "zantedeschi_cnn": ({}, (28, 28, 1), 128, (14, 14, 64)),
    "zantedeschi_resnet": ({"batch_norm": True}, (28, 28, 1), 128, (14, 14, 64)),
    # width 0.25: 96 -> 24, 192 -> 48, 10 -> 3 (2.5 rounds half up); 16 -> 8 -> 4 -> VALID 2.
    "allcnn": ({"width": 0.25}, (16, 16, 3), 3, (16, 16, 24)),
    "convpool_cnn": ({"width": 0.25}, (16, 16, 3), 48, (16, 16, 24)),
    # width 0.125: 64/128/256/512 -> 8/16/32/64; three 2x2 average pools: 16 -> 8 -> 4 -> 2.
    "pgn_convpool_cnn": ({"width": 0.125}, (16, 16, 3), 64, (16, 16, 8)),
    # width 0.125: 64/128/256/512 -> 8/16/32/64.
    "resnet18": ({"width": 0.125}, (8, 8, 3), 64, (8, 8, 8)),
    # width 0.25: growth 12 -> 3, first conv 16 -> 4; depth 10 = 2 layers a block (full depth: the
    # eval_shape count below): channels 4 + 3 * 2 * 3 = 22.
    "densenet40": ({"width": 0.25, "depth": 10}, (8, 8, 3), 22, (8, 8, 4)),
    "mlp": ({"hidden": [16, 16]}, (2,), 16, (16,)),
}
NUM_CLASSES = 7

_CACHE: dict = {}


def built(name):
    """(model, variables, x) for CASES[name], initialised once per test session."""
    if name not in _CACHE:
        overrides, shape, _, _ = CASES[name]
        model = models.make({"name": name, **overrides}, NUM_CLASSES)
        x = jax.random.uniform(jax.random.key(1), (B, *shape))
        variables = jax.jit(model.init)({"params": jax.random.key(0), "dropout": jax.random.key(0)}, x)
        _CACHE[name] = (model, variables, x)
    return _CACHE[name]


def shape_params(model, shape):
    """Parameter count by eval_shape: no compute, no compile."""
    v = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, *shape))), jax.random.key(0))
    return models.param_count(v["params"])


# Hand counts. conv(k, cin, cout) has k*k*cin*cout weights (+ cout biases); BN has scale and bias.
def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def dense(i, o):
    return i * o + o


def bn(c):
    return 2 * c


def cw_mnist_count(c1=32, c2=64, fc=200, k=10):
    # 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4
    convs = conv(3, 1, c1) + conv(3, c1, c1) + conv(3, c1, c2) + conv(3, c2, c2)
    return convs + dense(16 * c2, fc) + dense(fc, fc) + dense(fc, k)


def allcnn_count(k=10):
    return (
        conv(3, 3, 96) + 2 * conv(3, 96, 96) + conv(3, 96, 192) + 3 * conv(3, 192, 192)
        + conv(1, 192, 192) + conv(1, 192, 10) + dense(10, k)
    )


def resnet18_count(k=10):
    total = conv(3, 3, 64, bias=False) + bn(64)
    cin = 64
    for c in (64, 128, 256, 512):
        for b in range(2):
            total += conv(3, cin, c, False) + bn(c) + conv(3, c, c, False) + bn(c)
            if cin != c:
                total += conv(1, cin, c, False) + bn(c)
            cin = c
    return total + dense(512, k)


def preact_resnet18_count(k=10):
    """He et al.'s pre-activation ResNet-18: no BN after the stem, each block's first BN sees its input's
    channels, projections without BN, a final BN before the pool."""
    total = conv(3, 3, 64, bias=False)
    cin = 64
    for c in (64, 128, 256, 512):
        for b in range(2):
            total += bn(cin) + conv(3, cin, c, False) + bn(c) + conv(3, c, c, False)
            if cin != c:
                total += conv(1, cin, c, False)
            cin = c
    return total + bn(512) + dense(512, k)


def test_preact_resnet18_has_the_identity_mappings_layout():
    model = models.make({"name": "resnet18", "preact": True}, 10)
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
    assert sum(v.size for v in jax.tree.leaves(variables["params"])) == preact_resnet18_count() == 11_172_170
    assert "final_bn" in variables["params"] and "stem_bn" not in variables["params"]
    block = variables["params"]["stage2_block1"]  # 64 -> 128: first BN on the 64 input channels, plain 1x1 proj
    assert block["BatchNorm_0"]["scale"].shape == (64,) and "bias" not in block["proj"]
    assert set(block) == {"BatchNorm_0", "BatchNorm_1", "Conv_0", "Conv_1", "proj"}


def densenet40_count(k=10, growth=12):
    total, c = conv(3, 3, 16, False), 16
    for block in range(3):
        for _ in range(12):
            total += bn(c) + conv(3, c, growth, False)
            c += growth
        if block < 2:
            total += bn(c) + conv(1, c, c, False)
    return total + bn(c) + dense(c, k)


FULL_SIZE = {  # name -> (config, input shape, hand count for 10 classes)
    "cw_mnist": ({}, (28, 28, 1), cw_mnist_count()),
    "lenet": (
        {}, (28, 28, 1), conv(5, 1, 32) + conv(5, 32, 64) + dense(7 * 7 * 64, 1024) + dense(1024, 10)
    ),
    "small_cnn": (
        {}, (16, 16, 1), conv(3, 1, 16) + conv(3, 16, 32) + dense(4 * 4 * 32, 64) + dense(64, 10)
    ),
    # 28 -> SAME/2 14 -> VALID 6x6/2 5 -> VALID 5x5 1
    "zantedeschi_cnn": (
        {}, (28, 28, 1), conv(8, 1, 64) + conv(6, 64, 128) + conv(5, 128, 128) + dense(128, 10)
    ),
    "zantedeschi_resnet": (
        {}, (28, 28, 1),
        conv(8, 1, 64) + conv(6, 64, 128)
        + conv(1, 128, 128) + conv(1, 128, 128)  # the two 1x1 convs the identity shortcut skips
        + dense(128, 10),  # 28 -> 14 -> 5 -> 5 -> 5 -> maxpool 3x3/3 -> 1
    ),
    "allcnn": ({}, (32, 32, 3), allcnn_count()),
    "convpool_cnn": ({}, (32, 32, 3), allcnn_count() - dense(10, 10)),
    "pgn_convpool_cnn": (
        {}, (32, 32, 3),
        conv(3, 3, 64) + conv(3, 64, 128) + conv(3, 128, 128) + conv(3, 128, 256) + conv(3, 256, 256)
        + conv(3, 256, 512) + conv(3, 512, 10),
    ),
    "resnet18": ({}, (32, 32, 3), resnet18_count()),
    "densenet40": ({}, (32, 32, 3), densenet40_count()),
    "mlp": ({"hidden": [64, 64]}, (2,), dense(2, 64) + dense(64, 64) + dense(64, 10)),
}


def test_registry_is_complete():
    assert set(models.MODELS) == set(CASES) == set(FULL_SIZE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_shapes_and_features(name):
    model, variables, x = built(name)
    logits = jax.jit(model.apply)(variables, x)
    assert logits.shape == (B, NUM_CLASSES)
    assert logits.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(logits)))
    # num_classes=0: the penultimate features, from the same parameters (the head is simply unused).
    overrides, shape, feat_dim, _ = CASES[name]
    body = models.make({"name": name, **overrides}, 0)
    feats = jax.jit(body.apply)(variables, x)
    assert feats.shape == (B, feat_dim)
    body_params = jax.eval_shape(lambda k: body.init(k, x), jax.random.key(0))["params"]
    assert "head" not in body_params and "head" in variables["params"]


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_param_counts_match_hand_counts(name):
    cfg, shape, expected = FULL_SIZE[name]
    assert shape_params(models.make({"name": name, **cfg}, 10), shape) == expected


def test_known_published_sizes():
    assert FULL_SIZE["resnet18"][2] == 11_173_962  # the usual CIFAR ResNet-18 figure (~11.17M)
    assert FULL_SIZE["densenet40"][2] == 1_019_722  # Huang et al. Table 2: 1.0M
    assert FULL_SIZE["cw_mnist"][2] == 312_202
    assert FULL_SIZE["pgn_convpool_cnn"][2] == 2_334_730  # the PGN paper's Table 1 ConvPool-CNN
    # Zantedeschi et al.'s networks (28x28x1), recomputed by hand:
    # CNN: 8*8*1*64+64 = 4,160; 6*6*64*128+128 = 295,040; 5*5*128*128+128 = 409,728; 128*10+10 = 1,290.
    assert FULL_SIZE["zantedeschi_cnn"][2] == 4_160 + 295_040 + 409_728 + 1_290 == 710_218
    # ResNet: the same first two convs, two 1x1 convs 128*128+128 = 16,512 each, the head on 1x1x128.
    assert FULL_SIZE["zantedeschi_resnet"][2] == 4_160 + 295_040 + 2 * 16_512 + 1_290 == 333_514


def test_allcnn_downsample_variants_have_equal_size():
    a = shape_params(models.make({"name": "allcnn", "downsample": "conv"}, 10), (32, 32, 3))
    assert a == allcnn_count()


def test_width_multiplier_scales_params():
    half = shape_params(models.make({"name": "cw_mnist", "width": 0.5}, 10), (28, 28, 1))
    assert half == cw_mnist_count(c1=16, c2=32, fc=100)
    for name, (cfg, shape, full) in FULL_SIZE.items():
        narrow = shape_params(models.make({"name": name, **cfg, "width": 0.5}, 10), shape)
        wide = shape_params(models.make({"name": name, **cfg, "width": 2.0}, 10), shape)
        assert narrow < full < wide, name
    assert models.scale_width(10, 0.25) == 3 and models.scale_width(3, 0.01) == 1


def test_brelu_is_bounded_and_has_the_right_gradient():
    x = 3.0 * jax.random.normal(jax.random.key(0), (1000,))
    for t in (0.5, 1.0, 2.0):
        y = layers.brelu(x, t)
        assert float(y.min()) == 0.0 and float(y.max()) == t
        np.testing.assert_allclose(y, np.minimum(np.maximum(np.asarray(x), 0), t))
        g = jax.grad(lambda v: layers.brelu(v, t).sum())(x)
        np.testing.assert_array_equal(g, ((x > 0) & (x < t)).astype(g.dtype))
        np.testing.assert_array_equal(layers.BoundedReLU(t).apply({}, x), y)
        np.testing.assert_array_equal(layers.activation_fn("brelu", t)(x), y)
    assert float(layers.activation_fn("leaky_relu")(jnp.array(-1.0))) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="unknown activation"):
        layers.activation_fn("tanhh")
    with pytest.raises(ValueError, match="brelu_t"):
        layers.activation_fn("brelu", 0.0)


def test_activation_switch_changes_the_network():
    model, variables, x = built("cw_mnist")
    first = {}
    logits = {}
    for act in ("relu", "brelu", "leaky_relu", "elu"):
        m = models.make({"name": "cw_mnist", "activation": act, "brelu_t": 0.05}, NUM_CLASSES)
        logits[act] = m.apply(variables, x)
        first[act] = models.first_conv_activations(m, variables, x)
    assert float(first["relu"].min()) == 0.0 and float(first["relu"].max()) > 0.05
    assert float(first["brelu"].min()) == 0.0 and float(first["brelu"].max()) == pytest.approx(0.05)
    assert float(first["leaky_relu"].min()) < 0.0 and float(first["elu"].min()) < 0.0
    for a in ("brelu", "leaky_relu", "elu"):
        assert not np.allclose(logits["relu"], logits[a]), a


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_conv_is_sown(name):
    model, variables, x = built(name)
    assert set(variables) <= {"params", "batch_stats"}  # nothing sown at init
    _, state = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(variables, x)
    assert list(state["intermediates"]) == ["first_conv"]
    h = jax.jit(lambda v, x: models.first_conv_activations(model, v, x))(variables, x)
    assert h.shape == (B, *CASES[name][3])
    np.testing.assert_array_equal(h, state["intermediates"]["first_conv"][0])


def test_first_conv_in_train_mode():
    model, variables, x = built("resnet18")
    h_train = models.first_conv_activations(model, variables, x, train=True)
    h_eval = models.first_conv_activations(model, variables, x, train=False)
    assert h_train.shape == h_eval.shape and not np.allclose(h_train, h_eval)


@pytest.mark.parametrize("name", ["resnet18", "zantedeschi_resnet", "densenet40"])
def test_batchnorm_updates_stats_only_in_train_mode(name):
    model, variables, x = built(name)
    assert "batch_stats" in variables
    apply = jax.jit(model.apply, static_argnames=("train", "mutable"))
    out_train, upd_train = apply(variables, x, train=True, mutable=("batch_stats",))
    out_eval, upd_eval = apply(variables, x, train=False, mutable=("batch_stats",))
    old = variables["batch_stats"]
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), old, upd_train["batch_stats"])
    assert all(jax.tree.leaves(changed))
    same = jax.tree.map(np.array_equal, old, upd_eval["batch_stats"])
    assert all(jax.tree.leaves(same))
    assert not np.allclose(out_train, out_eval)
    # momentum 0.9: new mean = 0.9 * old + 0.1 * batch mean, with the old mean 0 at init.
    m = next(iter(jax.tree.leaves(upd_train["batch_stats"])))
    assert float(jnp.abs(m).max()) > 0


def test_no_batch_stats_without_batchnorm():
    for name in ("cw_mnist", "lenet", "small_cnn", "zantedeschi_cnn", "allcnn", "convpool_cnn", "pgn_convpool_cnn",
                 "mlp"):
        assert "batch_stats" not in built(name)[1], name
    m = models.make({"name": "zantedeschi_resnet"}, 10)
    v = jax.eval_shape(lambda k: m.init(k, jnp.zeros((1, 28, 28, 1))), jax.random.key(0))
    assert "batch_stats" not in v


@pytest.mark.parametrize("name", ["cw_mnist", "allcnn"])
def test_dropout_only_in_train_mode(name):
    model, variables, x = built(name)
    apply = jax.jit(model.apply, static_argnames="train")
    a = apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    c = apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)
    e1 = apply(variables, x, train=False)  # no dropout rng needed in eval mode
    e2 = apply(variables, x, train=False)
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(a, e1)


def test_zero_dropout_train_equals_eval():
    _, variables, x = built("cw_mnist")
    m = models.make({"name": "cw_mnist", "dropout": 0.0}, NUM_CLASSES)
    np.testing.assert_allclose(m.apply(variables, x, train=True), m.apply(variables, x), rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 8, 6, 5), (2, 7, 9, 3), (4, 4, 2)])
def test_max_pool_2x2_equals_nn_max_pool(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (*shape[:-3], shape[-3] // 2, shape[-2] // 2, shape[-1]))
    ref = lambda v: nn.max_pool(v, (2, 2), strides=(2, 2), padding="VALID")  # noqa: E731
    np.testing.assert_array_equal(jax.jit(layers.max_pool_2x2)(x), ref(x))
    g = jax.jit(jax.grad(lambda v: jnp.sum(w * layers.max_pool_2x2(v))))(x)
    g_ref = jax.jit(jax.grad(lambda v: jnp.sum(w * ref(v))))(x)
    np.testing.assert_allclose(g, g_ref, rtol=1e-6)
    np.testing.assert_allclose(layers.avg_pool_2x2(x), nn.avg_pool(x, (2, 2), strides=(2, 2)), rtol=1e-6)


def test_max_pool_nonoverlapping_equals_nn_max_pool():
    x = jax.random.normal(jax.random.key(0), (2, 7, 8, 3))
    ref = nn.max_pool(x, (3, 3), strides=(3, 3))
    np.testing.assert_array_equal(layers.max_pool_nonoverlapping(x, 3), ref)
    with pytest.raises(ValueError, match="pooling"):
        layers.max_pool_2x2(jnp.zeros((1, 1, 5, 3)))


def test_resblock_variants():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
    key = jax.random.key(0)
    post = layers.ResBlock(8, strides=2)
    v = post.init(key, x)
    assert post.apply(v, x).shape == (2, 4, 4, 8) and "proj" in v["params"]
    assert float(post.apply(v, x).min()) >= 0.0  # activated output
    ident = layers.ResBlock(4, activate_output=False)
    vi = ident.init(key, x)
    assert "proj" not in vi["params"] and float(ident.apply(vi, x).min()) < 0.0
    pre = layers.ResBlock(8, preact=True, batch_norm=False, activation="leaky_relu")
    vp = pre.init(key, x)
    assert pre.apply(vp, x).shape == (2, 8, 8, 8) and "batch_stats" not in vp
    with pytest.raises(ValueError, match="projection"):
        layers.ResBlock(8, projection=False).init(key, x)


def test_conv_norm_act_transpose_doubles_resolution():
    x = jnp.ones((1, 7, 7, 4))
    up = layers.ConvNormAct(16, 3, 2, transpose=True)
    assert up.apply(up.init(jax.random.key(0), x), x).shape == (1, 14, 14, 16)
    down = layers.ConvNormAct(8, 3, 2, batch_norm=False, activation=None)
    v = down.init(jax.random.key(0), x)
    assert down.apply(v, x).shape == (1, 4, 4, 8) and "bias" in v["params"]["Conv_0"]


def test_normalization_happens_inside():
    mean, std = (0.5,), (0.25,)
    plain = models.make({"name": "small_cnn"}, NUM_CLASSES)
    normed = models.make({"name": "small_cnn", "mean": [0.5], "std": [0.25]}, NUM_CLASSES)
    assert normed.mean == mean and normed.std == std
    _, variables, x = built("small_cnn")
    expected = plain.apply(variables, (x - 0.5) / 0.25)
    np.testing.assert_allclose(normed.apply(variables, x), expected, rtol=1e-5, atol=1e-6)
    bad = models.make({"name": "small_cnn", "mean": [0.1, 0.2, 0.3]}, NUM_CLASSES)
    with pytest.raises(ValueError, match="channels"):
        bad.apply(variables, x)


def test_wrong_input_rank_is_reported():
    model, variables, x = built("lenet")
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        model.apply(variables, x.reshape(B, -1))


def test_make_accepts_configdict_and_converts_lists():
    cfg = ml_collections.ConfigDict(
        {"name": "mlp", "width": 2, "activation": "brelu", "brelu_t": 0.5, "hidden": [3, 4]}
    )
    m = models.make(cfg, 2)
    assert isinstance(m, models.MLP)
    assert (m.width, m.activation, m.brelu_t, m.hidden, m.num_classes) == (2.0, "brelu", 0.5, (3, 4), 2)
    assert models.make({"name": "lenet", "mean": None}, 10).mean is None
    assert models.make({"name": "cw_mnist", "dropout": None}, 10).dropout == 0.5  # None = the default
    assert "dropout" in models.model_fields("cw_mnist") and "hidden" in models.model_fields("mlp")


@pytest.mark.parametrize(
    "cfg, num_classes, match",
    [
        ({"name": "resnet50"}, 10, r"config.model.name: unknown model name 'resnet50'.*; valid names: \[.*'cw_mnist'.*\]"),
        ({"width": 1.0}, 10, "needs a 'name'"),
        ({"name": "lenet", "dropout": 0.5}, 10, r"config.model.dropout: model 'lenet' has no field\(s\) \['dropout'\]"),
        ({"name": "lenet", "widht": 2}, 10, r"config.model.widht: .*has no field.*did you mean 'width'"),
        ({"name": "lenet", "width": 0}, 10, "config.model.width: must be a number > 0"),
        ({"name": "lenet", "width": "wide"}, 10, "config.model.width: must be a number > 0"),
        ({"name": "lenet", "activation": "tanh"}, 10, "config.model.activation: must be one of"),
        ({"name": "lenet", "activation": "brelu", "brelu_t": -1}, 10, "config.model.brelu_t: must be"),
        ({"name": "cw_mnist", "dropout": 1.0}, 10, r"dropout rate in \[0, 1\)"),
        ({"name": "mlp", "hidden": []}, 2, "config.model.hidden: must be a non-empty list"),
        ({"name": "mlp", "hidden": 64}, 2, "config.model.hidden: must be a list"),
        ({"name": "densenet40", "depth": 41}, 10, "3n \\+ 4"),
        ({"name": "allcnn", "downsample": "avg"}, 10, "config.model.downsample: must be one of"),
        ({"name": "zantedeschi_resnet", "batch_norm": "yes"}, 10, "True or False"),
        ({"name": "small_cnn", "std": [0.0]}, 10, "config.model.std: values must be > 0"),
        ({"name": "lenet"}, -1, "num_classes must be an int >= 0"),
        ({"name": "lenet", "num_classes": 100}, 10, "disagrees"),
    ],
)
def test_make_rejects_bad_configs(cfg, num_classes, match):
    with pytest.raises(ValueError, match=match):
        models.make(cfg, num_classes)


def _conv(h, p, stride, padding):
    out = jax.lax.conv_general_dilated(h, p["kernel"], (stride, stride), padding,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out + p["bias"]


@pytest.mark.parametrize("activation, t", [("relu", 1.0), ("brelu", 0.05)])
def test_zantedeschi_resnet_is_the_papers_listing_with_its_identity_shortcut(activation, t):
    """A hand-written forward of Zantedeschi et al.'s ResNet (conv8x8-64/2 SAME, conv6x6-128/2 VALID, then
    the identity shortcut around conv1x1-128, conv1x1-128, act after the sum, maxpool 3x3/3, dense)
    equals the module's; without the shortcut it would not; with the residual branch's last conv zeroed
    only the identity path is left. A small BReLU bound makes the bound bite inside the block."""
    model = models.make({"name": "zantedeschi_resnet", "activation": activation, "brelu_t": t}, NUM_CLASSES)
    x = jax.random.uniform(jax.random.key(3), (B, 28, 28, 1))
    variables = jax.jit(model.init)(jax.random.key(4), x)
    p = variables["params"]
    assert set(p) == {"conv1", "conv2", "conv3", "conv4", "head"}
    act = layers.activation_fn(activation, t)

    def forward(p, shortcut=True):
        h1 = act(_conv(x, p["conv1"], 2, "SAME"))
        h2 = act(_conv(h1, p["conv2"], 2, "VALID"))
        assert h2.shape == (B, 5, 5, 128)
        r = _conv(act(_conv(h2, p["conv3"], 1, "VALID")), p["conv4"], 1, "VALID")
        h = act(h2 + r) if shortcut else act(r)
        pooled = h[:, :3, :3, :].max(axis=(1, 2))  # 5x5 -> one VALID 3x3 window of stride 3
        return pooled @ p["head"]["kernel"] + p["head"]["bias"], h2

    apply = jax.jit(model.apply)
    logits = apply(variables, x)
    want, h2 = forward(p)
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(logits, forward(p, shortcut=False)[0], rtol=1e-3, atol=1e-4)
    # Residual branch zeroed at its last conv: act(h2 + 0) = h2 (ReLU and BReLU are idempotent), so the
    # output is the head on the pooled layer-2 features alone, whatever conv3 holds.
    zero = jax.tree_util.tree_map(jnp.zeros_like, p["conv4"])
    only_identity = {**p, "conv4": zero}
    pooled_h2 = h2[:, :3, :3, :].max(axis=(1, 2))
    np.testing.assert_allclose(apply({"params": only_identity}, x),
                               pooled_h2 @ p["head"]["kernel"] + p["head"]["bias"], rtol=1e-4, atol=1e-5)
    scrambled = {**only_identity, "conv3": jax.tree_util.tree_map(lambda a: a + 1.0, p["conv3"])}
    np.testing.assert_allclose(apply({"params": scrambled}, x), apply({"params": only_identity}, x), rtol=1e-6)
    if activation == "brelu":
        assert float(h2.max()) == pytest.approx(t)  # the bound reached: BReLU is in the block
