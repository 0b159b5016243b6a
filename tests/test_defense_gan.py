"""Defense-GAN: the WGAN-GP objectives against numpy from raw network outputs, which network each step
may change (the gan phase never touches the classifier and the classifier phase never touches G or D),
the projection (it lowers ||G(z) - x|| and keeps the best of R starts), the randomised deployed
classifier and what attackers differentiate, the networks, and config mistakes refused by
experiment.build naming the field."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import experiment
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import defense_gan
from robustjax.models.discriminators import WGANCritic
from robustjax.models.generators import LatentGenerator, upsamplings
from tests.test_config import load_config

NUM_CLASSES = 3
INFO = DataInfo(name="tiny", image_shape=(8, 8, 1), num_classes=NUM_CLASSES, num_train=16, num_test=8)
LATENT = 4


def tiny_config(**defense):
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25  # no BatchNorm or dropout
    c.defense.name = "defense_gan"
    c.defense.latent_dim = LATENT
    c.defense.generator_width = c.defense.critic_width = 0.125
    c.defense.gan_epochs = 2.0
    c.defense.critic_iters = 2
    c.defense.gp_weight = 10.0
    c.defense.L, c.defense.R = 20, 3
    c.defense.projection_lr = 0.1
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 3
    c.train.optimizer = optimizer("sgd", 1e-2, momentum=0.0)
    return c


class Tiny:
    def __init__(self, config, steps_per_epoch=2):
        self.parts = defense_gan.build(config, INFO, steps_per_epoch)
        self.defense = defense_gan.make(config, INFO, steps_per_epoch)
        rng = np.random.default_rng(0)
        self.x = jnp.asarray(rng.uniform(0, 1, (8, 8, 8, 1)), jnp.float32)
        self.y = jnp.asarray(rng.integers(0, NUM_CLASSES, 8), jnp.int32)
        self.batch = {"image": self.x, "label": self.y}
        self.z = jnp.asarray(rng.normal(size=(8, LATENT)), jnp.float32)
        self.mix = jnp.asarray(rng.uniform(0, 1, 8), jnp.float32)
        self.state = jax.jit(self.parts.init)(jax.random.PRNGKey(0), self.batch)
        self.critic_step = jax.jit(self.parts.critic_step)
        self.generator_step = jax.jit(self.parts.generator_step)
        self.gan_step = jax.jit(self.parts.gan_step)
        self.classifier_step = jax.jit(self.parts.classifier_step)
        self.project = jax.jit(self.parts.project)

    def fake(self, state, z):
        """G's raw output in train mode (batch statistics), as the gan steps run it."""
        g = state["generator"]
        out, _ = g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, z, train=True,
                            mutable=["batch_stats"])
        return out

    def scores(self, state, x):
        d = state["critic"]
        return d.apply_fn({"params": d.params}, x)


@pytest.fixture(scope="module")
def tiny():
    return Tiny(tiny_config())


def _np(a):
    return np.asarray(a, np.float64)


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _changed(a, b):
    return [not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


def _ce(logits, y):
    z = _np(logits)
    z = z - z.max(-1, keepdims=True)
    return -np.mean((z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(y)), np.asarray(y)])


# ----------------------------------------------------------------------------------------------
# Networks.


def test_generator_and_critic_shapes():
    assert [upsamplings(*s) for s in [(28, 28), (32, 32), (16, 16), (8, 8), (6, 6)]] == [2, 3, 2, 1, 1]
    with pytest.raises(ValueError, match="divisible by 2"):
        upsamplings(7, 7)
    z = jnp.zeros((3, 16))
    mnist = LatentGenerator(image_shape=(28, 28, 1), width=0.5)
    variables = jax.eval_shape(lambda: mnist.init(jax.random.PRNGKey(1), z))
    # Dense(z -> 7x7x64) (64 = 2 * 64 * width), TransConv 5x5 -> 14x14x32, TransConv 5x5 -> 28x28x1.
    assert variables["params"]["project"]["kernel"].shape == (16, 7 * 7 * 64)
    assert variables["params"]["ConvNormAct_0"]["ConvTranspose_0"]["kernel"].shape == (5, 5, 64, 32)
    assert variables["params"]["to_image"]["kernel"].shape == (5, 5, 32, 1)
    assert jax.eval_shape(lambda v: mnist.apply(v, z), variables).shape == (3, 28, 28, 1)
    g = LatentGenerator(image_shape=(8, 8, 2), width=0.125, bounds=(-1.0, 2.0))
    far = 30.0 * jax.random.normal(jax.random.PRNGKey(0), (3, 16))  # saturates the output sigmoid
    out = jax.jit(lambda k, z: g.apply(g.init(k, z), z))(jax.random.PRNGKey(1), far)
    assert out.shape == (3, 8, 8, 2) and float(out.min()) >= -1.0 and float(out.max()) <= 2.0
    critic = WGANCritic(width=0.125)
    cv = jax.eval_shape(lambda: critic.init(jax.random.PRNGKey(2), out))
    assert jax.eval_shape(lambda v: critic.apply(v, out), cv).shape == (3,) and "batch_stats" not in cv


# ----------------------------------------------------------------------------------------------
# WGAN-GP.


def test_objectives_by_hand():
    real, fake, norms = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.5]), jnp.array([1.0, 3.0])
    np.testing.assert_allclose(defense_gan.gradient_penalty(norms), (0.0 + 4.0) / 2)
    np.testing.assert_allclose(defense_gan.critic_objective(real, fake, norms, 10.0), -0.25 - 2.0 + 10.0 * 2.0)
    np.testing.assert_allclose(defense_gan.generator_objective(fake), 0.25)


def test_critic_step_reports_the_hand_computed_terms(tiny):
    t, s0 = tiny, tiny.state
    fake = t.fake(s0, t.z)
    mix = _np(t.mix).reshape(-1, 1, 1, 1)
    x_hat = jnp.asarray(mix * _np(t.x) + (1 - mix) * _np(fake), jnp.float32)
    real_s, fake_s = _np(t.scores(s0, t.x)), _np(t.scores(s0, fake))
    # Per-example input gradients, one example at a time (an independent path from the step's).
    grads = jax.vmap(jax.grad(lambda v: t.scores(s0, v[None])[0]))(x_hat)
    norms = np.sqrt((_np(grads) ** 2).reshape(8, -1).sum(-1))
    gp = np.mean((norms - 1.0) ** 2)
    _, m = t.critic_step(s0, t.x, t.z, t.mix, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["wasserstein"], real_s.mean() - fake_s.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m["gradient_penalty"], gp, rtol=1e-4)
    np.testing.assert_allclose(m["loss_critic"], fake_s.mean() - real_s.mean() + 10.0 * gp, rtol=1e-4)


def test_generator_step_reports_the_hand_computed_loss(tiny):
    t, s0 = tiny, tiny.state
    want = -np.mean(_np(t.scores(s0, t.fake(s0, t.z))))
    _, m = t.generator_step(s0, t.z, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["loss_generator"], want, rtol=1e-4, atol=1e-6)


def test_critic_step_changes_only_the_critic_and_lowers_its_loss(tiny):
    t, s0 = tiny, tiny.state
    s1, m0 = t.critic_step(s0, t.x, t.z, t.mix, jax.random.PRNGKey(1))
    assert _leaves_equal(s1["generator"], s0["generator"]) and _leaves_equal(s1["classifier"], s0["classifier"])
    new, old = s1["critic"].params, s0["critic"].params
    assert all(_changed({k: v["kernel"] for k, v in new.items()}, {k: v["kernel"] for k, v in old.items()}))
    # The output bias gets no gradient: L_D is invariant to adding a constant to every score.
    np.testing.assert_array_equal(new["score"]["bias"], old["score"]["bias"])
    _, m1 = t.critic_step(s1, t.x, t.z, t.mix, jax.random.PRNGKey(1))  # same z, mix: the same L_D
    assert float(m1["loss_critic"]) < float(m0["loss_critic"])


def test_generator_step_changes_only_the_generator_and_lowers_its_loss(tiny):
    t, s0 = tiny, tiny.state
    s1, m0 = t.generator_step(s0, t.z, jax.random.PRNGKey(1))
    assert _leaves_equal(s1["critic"], s0["critic"]) and _leaves_equal(s1["classifier"], s0["classifier"])
    changed = _changed(s1["generator"].params, s0["generator"].params)
    assert sum(changed) >= 0.9 * len(changed)
    assert not _leaves_equal(s1["generator"].batch_stats, s0["generator"].batch_stats)  # G ran in train mode
    _, m1 = t.generator_step(s1, t.z, jax.random.PRNGKey(1))
    assert float(m1["loss_generator"]) < float(m0["loss_generator"])


def test_gan_phase_steps_the_generator_every_critic_iters_and_never_the_classifier(tiny):
    t, s0 = tiny, tiny.state  # critic_iters = 2
    s1, m = t.gan_step(s0, t.batch, jax.random.PRNGKey(3))
    assert int(s1["critic"].step) == 1 and _leaves_equal(s1["generator"], s0["generator"])
    assert set(m) == {"loss_critic", "wasserstein", "gradient_penalty", "loss_generator"}
    s2, _ = t.gan_step(s1, t.batch, jax.random.PRNGKey(4))
    assert int(s2["critic"].step) == 2 and int(s2["generator"].step) == 1
    assert any(_changed(s2["generator"].params, s1["generator"].params))
    assert _leaves_equal(s2["classifier"], s0["classifier"])
    assert [p.name for p in t.defense.phases] == ["gan", "classifier"]
    assert [p.num_steps for p in t.defense.phases] == [4, 3]  # gan_epochs 2 x 2 steps; train.steps 3


def test_classifier_phase_changes_only_the_classifier(tiny):
    t, s0 = tiny, tiny.state
    c = s0["classifier"]
    want = _ce(c.apply_fn({"params": c.params}, t.x), t.y)
    s1, m = t.classifier_step(s0, t.batch, jax.random.PRNGKey(5))
    np.testing.assert_allclose(m["loss"], want, rtol=1e-5)  # classifier_data="clean": the images themselves
    assert _leaves_equal(s1["generator"], s0["generator"]) and _leaves_equal(s1["critic"], s0["critic"])
    assert any(_changed(s1["classifier"].params, s0["classifier"].params))


def test_classifier_can_train_on_reconstructions(tiny):
    t = tiny
    parts = defense_gan.build(tiny_config(classifier_data="reconstructions"), INFO, 2)
    key = jax.random.PRNGKey(5)
    k_proj, _ = jax.random.split(key)
    rec = t.project(t.state, t.x, k_proj).reconstruction  # the same L, R and learning rate
    c = t.state["classifier"]
    _, m = jax.jit(parts.classifier_step)(t.state, t.batch, key)
    np.testing.assert_allclose(m["loss"], _ce(c.apply_fn({"params": c.params}, rec), t.y), rtol=1e-5)
    assert abs(float(m["loss"]) - _ce(c.apply_fn({"params": c.params}, t.x), t.y)) > 1e-4


# ----------------------------------------------------------------------------------------------
# The projection.


def test_projection_lowers_the_reconstruction_error_and_keeps_the_best_of_r_starts(tiny):
    t = tiny
    p = t.project(t.state, t.x, jax.random.PRNGKey(7))
    assert p.errors.shape == p.initial_errors.shape == (3, 8)  # R = 3 starts for each of 8 images
    assert np.all(_np(p.errors) < _np(p.initial_errors))  # L Adam steps lower every start's ||G(z) - x||^2
    assert len(np.unique(_np(p.initial_errors))) == 24  # 24 different starting codes
    np.testing.assert_array_equal(p.best, np.argmin(_np(p.errors), axis=0))
    g = t.state["generator"]
    g_of_z = g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, p.z, train=False)
    np.testing.assert_allclose(p.reconstruction, g_of_z, rtol=1e-5, atol=1e-6)  # G(z*) in eval mode
    err = ((_np(g_of_z) - _np(t.x)) ** 2).reshape(8, -1).sum(-1)
    np.testing.assert_allclose(err, _np(p.errors).min(axis=0), rtol=1e-4)  # the best start's error
    fewer = jax.jit(lambda s, x, k: defense_gan.project(
        lambda z: g.apply_fn({"params": s["generator"].params, "batch_stats": s["generator"].batch_stats}, z),
        x, k, latent_dim=LATENT, num_steps=2, restarts=1, lr=0.1))(t.state, t.x, jax.random.PRNGKey(7))
    assert np.mean(_np(fewer.errors)) > np.mean(_np(p.errors))  # 2 steps from 1 start: a worse projection


def test_deployed_classifier_is_randomised_and_classifies_the_projection(tiny):
    t = tiny
    f = jax.jit(lambda s, x, k: t.defense.classifier(s)(x, k))
    k1, k2 = jax.random.PRNGKey(11), jax.random.PRNGKey(12)
    c = t.state["classifier"]
    rec = t.project(t.state, t.x, k1).reconstruction
    np.testing.assert_allclose(f(t.state, t.x, k1), c.apply_fn({"params": c.params}, rec), rtol=1e-5, atol=1e-6)
    assert not np.allclose(f(t.state, t.x, k1), f(t.state, t.x, k2))  # fresh starts, other reconstructions
    assert t.defense.stochastic and t.defense.networks == ("generator", "critic", "classifier")


def _input_grad(fn, x, key):
    return jax.jit(jax.grad(lambda v: jnp.sum(fn(v, key)[:, 0])))(x)


def test_attackers_gradients(tiny):
    t, s, key = tiny, tiny.state, jax.random.PRNGKey(13)
    c = s["classifier"]
    raw = lambda v: c.apply_fn({"params": c.params}, v)  # noqa: E731
    naive = _input_grad(t.defense.attack_model(s, adaptive=False), t.x, key)
    assert float(jnp.abs(naive).max()) == 0.0  # the projection gives the naive attacker nothing
    bpda = _input_grad(t.defense.attack_model(s), t.x, key)  # default: the gradient of C at the input
    np.testing.assert_allclose(bpda, jax.grad(lambda v: jnp.sum(raw(v)[:, 0]))(t.x), rtol=1e-5, atol=1e-7)
    straight = defense_gan.make(tiny_config(bpda_gradient_at="reconstruction"), INFO, 2)
    rec = t.project(s, t.x, key).reconstruction
    got = _input_grad(straight.attack_model(s), t.x, key)
    np.testing.assert_allclose(got, jax.grad(lambda v: jnp.sum(raw(v)[:, 0]))(rec), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# Config errors.


@pytest.mark.parametrize("change, message", [
    ({"L": 0}, "config.defense.L: must be an integer >= 1, got 0"),
    ({"R": 2.5}, "config.defense.R: must be an integer >= 1"),
    ({"latent_dim": 0}, "config.defense.latent_dim: must be an integer >= 1"),
    ({"gan_epochs": 0.0}, r"config.defense.gan_epochs: must be a number in \(0.0, inf\]"),
    ({"critic_iters": 0}, "config.defense.critic_iters: must be an integer >= 1"),
    ({"gp_weight": -1.0}, "config.defense.gp_weight: must be a number"),
    ({"projection_lr": 0.0}, "config.defense.projection_lr: must be a number"),
    ({"generator_width": 0.0}, "config.defense.generator_width: must be a number"),
    ({"classifier_data": "recon"}, r"config.defense.classifier_data: 'recon' is not one of \['clean', "
                                   r"'reconstructions'\]"),
    ({"bpda_gradient_at": "x"}, "config.defense.bpda_gradient_at: 'x' is not one of"),
    ({"restarts": 4}, "config.defense.restarts: unknown field"),
])
def test_bad_config_fails_in_build_naming_the_field(change, message):
    c = load_config("defense_gan_mnist.py", "smoke")
    for k, v in change.items():
        if k in c.defense:
            del c.defense[k]
        c.defense[k] = v
    with pytest.raises(ValueError, match=message):
        experiment.build(c)


def test_missing_fields_and_wrong_networks_are_named():
    c = load_config("defense_gan_mnist.py", "smoke")
    del c.defense["L"]
    with pytest.raises(ValueError, match="config.defense.L: missing"):
        experiment.build(c)
    c = load_config("defense_gan_mnist.py", "smoke")
    c.train.optimizers.discriminator = optimizer("adam", 1e-4)
    with pytest.raises(ValueError, match=r"config.train.optimizers.discriminator: .*\['generator', 'critic', "
                                         r"'classifier'\]"):
        experiment.build(c)


def test_images_the_generator_cannot_make_are_refused():
    info = DataInfo(name="odd", image_shape=(7, 7, 1), num_classes=3, num_train=16, num_test=8)
    with pytest.raises(ValueError, match="config.data: a latent generator needs image sides divisible by 2"):
        defense_gan.build(tiny_config(), info, 2)
