"""BCGAN: the KL-to-uniform term and the AC-GAN losses against numpy, which network each phase may change
(the AC-GAN phase never touches the classifier, the fine-tuning phase only the classifier), that the KL
steers G through the frozen classifier, the pool of boundary samples, the networks for images and for
2-D data, resuming after an interruption in each of the three phases, and config mistakes refused by
experiment.build naming the field."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import experiment, xla
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import bcgan
from robustjax.models.discriminators import ACGANBody
from robustjax.models.generators import ACGANGenerator, MLPGenerator, conditional_code
from robustjax.train import loop
from tests.test_config import load_config

K = 3
INFO = DataInfo(name="tiny", image_shape=(16, 16, 1), num_classes=K, num_train=16, num_test=8)
LATENT = 4


def tiny_config(**defense):
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25  # no BatchNorm or dropout
    c.defense.name = "bcgan"
    c.defense.pretrain_epochs = c.defense.gan_epochs = 1.0
    c.defense.latent_dim = LATENT
    c.defense.generator_width, c.defense.discriminator_width = 1 / 32, 0.25
    c.defense.discriminator_dropout = 0.0  # deterministic D: the hand computations below
    c.defense.beta = 1.0
    c.defense.boundary_fraction = 0.5
    c.defense.num_boundary_samples = 5
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 3
    c.train.optimizer = optimizer("sgd", 1e-2, momentum=0.0)
    return c


class Tiny:
    def __init__(self, config, steps_per_epoch=2):
        self.parts = bcgan.build(config, INFO, steps_per_epoch)
        self.defense = bcgan.make(config, INFO, steps_per_epoch)
        rng = np.random.default_rng(0)
        self.x = jnp.asarray(rng.uniform(0, 1, (8, 16, 16, 1)), jnp.float32)
        self.y = jnp.asarray(rng.integers(0, K, 8), jnp.int32)
        self.batch = {"image": self.x, "label": self.y}
        self.z = jnp.asarray(rng.normal(size=(8, LATENT)), jnp.float32)
        self.c = jnp.asarray(rng.integers(0, K, 8), jnp.int32)
        self.state = jax.jit(self.parts.init)(jax.random.PRNGKey(0), self.batch)
        self.d_step = jax.jit(self.parts.d_step)
        self.g_step = jax.jit(self.parts.g_step)
        self.gan_step = jax.jit(self.parts.gan_step)
        self.pretrain_step = jax.jit(self.parts.pretrain_step)
        self.finetune_step = jax.jit(self.parts.finetune_step)
        self.boundary_batch = jax.jit(self.parts.boundary_batch, static_argnums=2)


@pytest.fixture(scope="module")
def tiny():
    return Tiny(tiny_config())


def _np(a):
    return np.asarray(a, np.float64)


def _leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(la, lb))


def _changed(a, b):
    return [not np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


def _log_softmax(z):
    z = _np(z)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ce(logits, y):
    return -np.mean(_log_softmax(logits)[np.arange(len(y)), np.asarray(y)])


def _bce(logit, target):  # sigmoid cross-entropy, target 0 or 1
    p = 1.0 / (1.0 + np.exp(-_np(logit)))
    return -np.mean(np.log(p) if target else np.log(1.0 - p))


# ----------------------------------------------------------------------------------------------
# The objectives against numpy.


def test_kl_to_uniform_by_hand():
    logits = np.array([[2.0, -1.0, 0.5, 0.0], [0.3, 0.3, 0.3, 0.3], [10.0, 0.0, 0.0, -5.0]])
    p = np.exp(_log_softmax(logits))
    want = np.sum(0.25 * np.log(0.25 / p), axis=-1)  # KL(U || p) = sum_k u_k log(u_k / p_k)
    got = bcgan.kl_to_uniform(jnp.asarray(logits, jnp.float32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert abs(float(got[1])) < 1e-6 and float(got[2]) > float(got[0]) > 0  # 0 at uniform, grows with confidence
    two = bcgan.kl_to_uniform(jnp.array([[0.0, np.log(3.0)]]))  # p = (1/4, 3/4)
    np.testing.assert_allclose(two, [0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)], rtol=1e-5)


def test_acgan_losses_by_hand():
    rng = np.random.default_rng(1)
    rc, fc = rng.normal(size=(5, K)), rng.normal(size=(5, K))
    rs, fs = rng.normal(size=5), rng.normal(size=5)
    y, c = rng.integers(0, K, 5), rng.integers(0, K, 5)
    clf = rng.normal(size=(5, K))
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    d_want = _bce(rs, 1) + _bce(fs, 0) + _ce(rc, y) + _ce(fc, c)  # -(L_S + L_C)
    np.testing.assert_allclose(bcgan.discriminator_loss(f32(rc), f32(rs), f32(fc), f32(fs), y, c), d_want, rtol=1e-5)
    g_want = _bce(fs, 1) + _ce(fc, c)  # non-saturating source term + class term, minimised
    np.testing.assert_allclose(bcgan.acgan_generator_loss(f32(fc), f32(fs), c), g_want, rtol=1e-5)
    kl = np.mean(np.sum((1 / K) * (np.log(1 / K) - _log_softmax(clf)), -1))
    np.testing.assert_allclose(bcgan.generator_objective(f32(fc), f32(fs), c, f32(clf), 2.5), g_want + 2.5 * kl,
                               rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Networks.


def test_networks_for_images_and_for_flat_data():
    g = ACGANGenerator(image_shape=(32, 32, 3), width=1.0)
    code = jnp.zeros((2, 110))
    v = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), code))
    # Odena et al.'s CIFAR-10 generator: 110 -> 4x4x384 -> 8x8x192 -> 16x16x96 -> 32x32x3.
    assert v["params"]["project"]["kernel"].shape == (110, 4 * 4 * 384)
    assert v["params"]["ConvNormAct_0"]["ConvTranspose_0"]["kernel"].shape == (5, 5, 384, 192)
    assert v["params"]["ConvNormAct_1"]["ConvTranspose_0"]["kernel"].shape == (5, 5, 192, 96)
    assert v["params"]["to_image"]["kernel"].shape == (5, 5, 96, 3)
    body = ACGANBody()
    x = jnp.zeros((2, 32, 32, 3))
    bv = jax.eval_shape(lambda: body.init(jax.random.PRNGKey(0), x))
    assert [bv["params"][f"ConvNormAct_{i}"]["Conv_0"]["kernel"].shape[-1] for i in range(6)] == [16, 32, 64, 128,
                                                                                                  256, 512]
    assert jax.eval_shape(lambda v: body.apply(v, x), bv).shape == (2, 4 * 4 * 512)
    np.testing.assert_array_equal(conditional_code(jnp.ones((2, 3)), jnp.array([2, 0]), 4),
                                  [[1, 1, 1, 0, 0, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    info2 = DataInfo(name="two_gaussians", image_shape=(2,), num_classes=2, num_train=8, num_test=8)
    g2, d2 = bcgan.networks_for(info2, bcgan.read_config(tiny_config(mlp_hidden=[8, 8, 8])))
    assert isinstance(g2, MLPGenerator) and g2.hidden == (8, 8, 8) and d2.body.hidden == (8, 8, 8)
    far = 30.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    out = g2.apply(g2.init(jax.random.PRNGKey(0), far), far)
    assert out.shape == (4, 2) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_images_the_generator_cannot_make_are_refused():
    info = DataInfo(name="odd", image_shape=(7, 7, 1), num_classes=3, num_train=16, num_test=8)
    with pytest.raises(ValueError, match="config.data: a latent generator needs image sides divisible by 2"):
        bcgan.build(tiny_config(), info, 2)


# ----------------------------------------------------------------------------------------------
# Phase 2: the AC-GAN with the KL through the frozen classifier.


def test_g_step_is_eq8_through_the_frozen_classifier(tiny):
    t, s0 = tiny, tiny.state
    g, d, f = s0["generator"], s0["discriminator"], s0["classifier"]
    code = conditional_code(t.z, t.c, K)
    fake, _ = g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, code, train=True, mutable=["batch_stats"])
    (c_fake, s_fake), _ = d.apply_fn({"params": d.params, "batch_stats": d.batch_stats}, fake, train=True,
                                     mutable=["batch_stats"])
    clf = f.apply_fn({"params": f.params}, fake)
    kl = np.mean(np.sum((1 / K) * (np.log(1 / K) - _log_softmax(clf)), -1))
    _, m = t.g_step(s0, t.z, t.c, jax.random.PRNGKey(1))
    np.testing.assert_allclose(m["kl_uniform"], kl, rtol=1e-4)
    np.testing.assert_allclose(m["loss_g"], _bce(s_fake, 1) + _ce(c_fake, t.c) + 1.0 * kl, rtol=1e-4)


def test_the_kl_term_steers_g_towards_the_classifiers_boundary(tiny):
    t = tiny
    steer = Tiny(tiny_config(beta=50.0))
    plain = Tiny(tiny_config(beta=0.0))
    key = jax.random.PRNGKey(2)
    s_plain, _ = plain.g_step(t.state, t.z, t.c, key)
    s_steer, m0 = steer.g_step(t.state, t.z, t.c, key)
    assert any(_changed(s_steer["generator"].params, s_plain["generator"].params))  # the KL has a gradient in G
    for _ in range(4):
        s_steer, m = steer.g_step(s_steer, t.z, t.c, key)
    assert float(m["kl_uniform"]) < 0.5 * float(m0["kl_uniform"])  # G's samples move towards p = uniform
    assert _leaves_equal(s_steer["classifier"], t.state["classifier"])


def test_acgan_phase_never_changes_the_classifier(tiny):
    t, s0 = tiny, tiny.state
    s = s0
    for i in range(3):
        s, m = t.gan_step(s, t.batch, jax.random.PRNGKey(10 + i))
    assert _leaves_equal(s["classifier"], s0["classifier"])  # params, opt state, step: bit for bit
    assert int(s["generator"].step) == 3 and int(s["discriminator"].step) == 3
    assert all(_changed(s["generator"].params, s0["generator"].params))
    assert all(_changed(s["discriminator"].params, s0["discriminator"].params))
    assert {"loss_d", "loss_g", "kl_uniform", "loss_acgan", "classifier_agrees"} <= set(m)


def test_d_step_changes_only_d_and_reports_the_hand_computed_loss(tiny):
    t, s0 = tiny, tiny.state
    g, d = s0["generator"], s0["discriminator"]
    fake, _ = g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, conditional_code(t.z, t.c, K),
                         train=True, mutable=["batch_stats"])
    dv = {"params": d.params, "batch_stats": d.batch_stats}
    (rc, rs), upd = d.apply_fn(dv, t.x, train=True, mutable=["batch_stats"])
    (fc, fs), _ = d.apply_fn({"params": d.params, **upd}, fake, train=True, mutable=["batch_stats"])
    s1, m = t.d_step(s0, t.x, t.y, t.z, t.c, jax.random.PRNGKey(3))
    np.testing.assert_allclose(m["loss_d"], _bce(rs, 1) + _bce(fs, 0) + _ce(rc, t.y) + _ce(fc, t.c), rtol=1e-4)
    assert _leaves_equal(s1["generator"], s0["generator"]) and _leaves_equal(s1["classifier"], s0["classifier"])
    assert all(_changed(s1["discriminator"].params, s0["discriminator"].params))


# ----------------------------------------------------------------------------------------------
# Phases 1 and 3.


def test_pretrain_changes_only_the_classifier(tiny):
    t, s0 = tiny, tiny.state
    s1, m = t.pretrain_step(s0, t.batch, jax.random.PRNGKey(4))
    f = s0["classifier"]
    np.testing.assert_allclose(m["loss"], _ce(f.apply_fn({"params": f.params}, t.x), t.y), rtol=1e-5)
    assert _leaves_equal(s1["generator"], s0["generator"]) and _leaves_equal(s1["discriminator"], s0["discriminator"])
    assert all(_changed(s1["classifier"].params, s0["classifier"].params))


def test_finetune_trains_the_classifier_on_clean_and_boundary_samples_only(tiny):
    t = tiny
    s0, _ = t.gan_step(t.state, t.batch, jax.random.PRNGKey(5))  # a G whose BatchNorm statistics moved
    key = jax.random.PRNGKey(6)
    k_b, _ = jax.random.split(key)
    x_b, y_b = t.boundary_batch(s0, k_b, 4)  # boundary_fraction 0.5 of 8
    f = s0["classifier"]
    mixed_x, mixed_y = jnp.concatenate([t.x[:4], x_b]), np.concatenate([np.asarray(t.y[:4]), np.asarray(y_b)])
    want = _ce(f.apply_fn({"params": f.params}, mixed_x), mixed_y)
    s1, m = t.finetune_step(s0, t.batch, key)
    np.testing.assert_allclose(m["loss"], want, rtol=1e-5)
    assert {"accuracy_clean", "accuracy_boundary"} <= set(m)
    assert _leaves_equal(s1["generator"], s0["generator"]) and _leaves_equal(s1["discriminator"], s0["discriminator"])
    assert all(_changed(s1["classifier"].params, s0["classifier"].params))
    all_clean = Tiny(tiny_config(boundary_fraction=0.0))
    _, m0 = all_clean.finetune_step(s0, t.batch, key)
    np.testing.assert_allclose(m0["loss"], _ce(f.apply_fn({"params": f.params}, t.x), t.y), rtol=1e-5)


def test_boundary_samples_come_from_a_fixed_balanced_pool(tiny):
    t, s = tiny, tiny.state  # a pool of 5: sample i is G(z_i, i mod 3) in eval mode
    xs, cs = zip(*(t.boundary_batch(s, jax.random.PRNGKey(i), 8) for i in range(6)))
    x, c = np.concatenate([np.asarray(a) for a in xs]), np.concatenate([np.asarray(a) for a in cs])
    assert len(np.unique(x.reshape(len(x), -1), axis=0)) == 5  # 48 draws, 5 distinct samples
    assert set(c) == {0, 1, 2}
    # Every drawn sample is G(z_i, i mod K) in eval mode (G has BatchNorm: its running statistics).
    code_check = jax.jit(lambda s, z, c: t.parts.generate(s, z, c))
    pool_key = jax.random.fold_in(jax.random.PRNGKey(0), 0xBC)  # config.seed 0
    z = jnp.stack([jax.random.normal(jax.random.fold_in(pool_key, i), (LATENT,)) for i in range(5)])
    pool = np.asarray(code_check(s, z, jnp.arange(5) % K))
    for img, label in zip(x, c):
        i = [j for j in range(5) if np.allclose(pool[j], img, atol=1e-6)]
        assert len(i) == 1 and i[0] % K == label
    assert s["generator"].batch_stats
    fresh = Tiny(tiny_config(num_boundary_samples=0))
    xf = np.concatenate([np.asarray(fresh.boundary_batch(s, jax.random.PRNGKey(i), 8)[0]) for i in range(2)])
    assert len(np.unique(xf.reshape(len(xf), -1), axis=0)) == 16  # 0: a fresh sample every row


def test_defense_phases_samples_and_deployed_classifier(tiny):
    t, s = tiny, tiny.state
    assert [(p.name, p.num_steps) for p in t.defense.phases] == [("pretrain", 2), ("acgan", 2), ("finetune", 3)]
    assert t.defense.networks == ("classifier", "generator", "discriminator") and not t.defense.stochastic
    out = t.defense.samples(s, jax.random.PRNGKey(7), 5)
    assert out.shape == (5, 16, 16, 1) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    z = jax.random.normal(jax.random.PRNGKey(7), (5, LATENT))
    np.testing.assert_allclose(out, t.parts.generate(s, z, jnp.array([0, 1, 2, 0, 1])), rtol=1e-6)
    f = s["classifier"]
    np.testing.assert_allclose(t.defense.classifier(s)(t.x), f.apply_fn({"params": f.params}, t.x), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Resume through experiment.run, after an interruption in each phase.


class Crash(RuntimeError):
    pass


def _crash_at(n):
    def hook(global_step):
        if global_step == n:
            raise Crash(f"simulated failure at global step {n}")
    return hook


def resume_config():
    c = load_config("bcgan_toy2d.py", "smoke")  # 128 points, batch 32: 4 steps an epoch
    c.defense.pretrain_epochs = c.defense.gan_epochs = 1.0  # global steps 1-4, 5-8; finetune 9-12
    c.train.steps, c.train.checkpoint_every, c.train.log_every, c.train.progress = 4, 2, 1, False
    c.eval.attacks, c.eval.metrics, c.eval.figures = {}, {}, []
    c.eval.diagnostics.enabled = False
    c.eval.progress = False
    return c


def _final_state(workdir):
    c = resume_config()
    defense, train_ds, _, _, _ = experiment.build(c)
    template = xla.jit(defense.init)(jax.random.PRNGKey(0), train_ds.get(np.arange(c.data.batch_size)))
    state, meta = loop.restore_latest(str(workdir), template)
    assert meta is not None
    return state


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bcgan_unbroken")
    results = experiment.run(resume_config(), str(workdir))
    return _final_state(workdir), results


@pytest.mark.parametrize("crash_step", [3, 7, 11])  # inside pretrain, acgan, finetune (each after a checkpoint)
def test_resume_after_a_crash_in_each_phase_is_identical(unbroken, tmp_path, crash_step):
    with pytest.raises(Crash):
        experiment.run(resume_config(), str(tmp_path), on_step=_crash_at(crash_step))
    steps = []
    results = experiment.run(resume_config(), str(tmp_path), on_step=steps.append)
    assert steps == list(range(crash_step, 13))  # resumed from the checkpoint of the step before the crash
    state, (want, want_results) = _final_state(tmp_path), unbroken
    assert _leaves_equal(state, want)
    assert int(state["classifier"].step) == 8 and int(state["generator"].step) == 4
    assert results["clean_accuracy"] == want_results["clean_accuracy"]


# ----------------------------------------------------------------------------------------------
# The image smoke run and config errors.


def test_mnist_smoke_runs_and_draws_the_boundary_samples(tmp_path):
    c = load_config("bcgan_mnist.py", "smoke")
    c.eval.attacks = {"pgd": {"attack": "pgd", "eps": 0.4, "step_size": 0.2, "num_steps": 2}}
    c.eval.metrics, c.eval.figures = {}, ["samples"]
    c.eval.diagnostics.enabled, c.train.progress, c.eval.progress = False, False, False
    results = experiment.run(c, str(tmp_path))
    assert os.path.isfile(tmp_path / "samples.png")
    assert results["_figures"]["samples"]["samples"].shape == (16, 28, 28, 1)
    phases = [r["phase"] for r in loop.read_metrics(str(tmp_path))]
    assert phases[0] == "pretrain" and "acgan" in phases and phases[-1] == "finetune"


@pytest.mark.parametrize("change, message", [
    ({"beta": -1.0}, r"config.defense.beta: must be a number in \[0.0, inf\]"),
    ({"boundary_fraction": 1.5}, r"config.defense.boundary_fraction: must be a number in \[0.0, 1.0\]"),
    ({"num_boundary_samples": -1}, "config.defense.num_boundary_samples: must be an integer >= 0"),
    ({"latent_dim": 0}, "config.defense.latent_dim: must be an integer >= 1"),
    ({"pretrain_epochs": 0.0}, r"config.defense.pretrain_epochs: must be a number in \(0.0, inf\]"),
    ({"discriminator_dropout": 1.0}, r"config.defense.discriminator_dropout: must be a number in \[0.0, 1.0\)"),
    ({"mlp_hidden": []}, "config.defense.mlp_hidden: must be a non-empty list of layer sizes"),
    ({"generator_width": 0.0}, "config.defense.generator_width: must be a number"),
    ({"betta": 1.0}, r"config.defense.betta: unknown field \(did you mean 'beta'\?\)"),
])
def test_bad_config_fails_in_build_naming_the_field(change, message):
    c = load_config("bcgan_toy2d.py", "smoke")
    for k, v in change.items():
        if k in c.defense:
            del c.defense[k]
        c.defense[k] = v
    with pytest.raises(ValueError, match=message):
        experiment.build(c)


def test_missing_fields_and_wrong_networks_are_named():
    c = load_config("bcgan_toy2d.py", "smoke")
    del c.defense["gan_epochs"]
    with pytest.raises(ValueError, match="config.defense.gan_epochs: missing"):
        experiment.build(c)
    c = load_config("bcgan_toy2d.py", "smoke")
    c.train.optimizers.critic = optimizer("adam", 1e-4)
    with pytest.raises(ValueError, match=r"config.train.optimizers.critic: .*\['classifier', 'generator', "
                                         r"'discriminator'\]"):
        experiment.build(c)


def test_configs_hold_the_papers_radii_and_protocol():
    want = {"bcgan_mnist.py": (0.2, 0.4, 40), "bcgan_fashion_mnist.py": (0.05, 0.15, 40),
            "bcgan_cifar10.py": (0.01, 0.03, 8)}
    for name, (eps1, eps2, steps) in want.items():
        c = load_config(name)
        a = c.eval.attacks
        assert a[f"fgsm_{eps1:g}".replace(".", "p")].eps == eps1 and a[f"fgsm_{eps2:g}".replace(".", "p")].eps == eps2
        pgd = a[f"pgd{steps}_{eps2:g}".replace(".", "p")]
        assert pgd.num_steps == steps and pgd.eps == eps2
        assert a.cw_l2.attack == "cw_l2" and c.eval.num_examples == 1000
        assert any(s.attack == "autoattack" and s.eps == eps2 for s in a.values())
        assert c.eval.metrics.rho_adv.metric == "rho_adv"
        assert (c.eval.decision_plane.sigma, c.eval.decision_plane.m) == (1.0, 1000)
        assert c.model.name == ("resnet18" if name == "bcgan_cifar10.py" else "lenet")
        assert c.defense.name == "bcgan" and c.data.source == "tfds"
    assert load_config("bcgan_toy2d.py", "beta=0.1").defense.beta == 0.1


# ----------------------------------------------------------------------------------------------
# benchmarks/bcgan_table.py: the paper's Table 1 rows at one budget, one evaluation.


def _bench_table():
    from benchmarks import bcgan_table

    return bcgan_table


@pytest.mark.parametrize("dataset, e1, e2, pgd_at_eps", [("mnist", 0.2, 0.4, 0.3), ("fashion_mnist", 0.05, 0.15, 0.15)])
def test_table_script_gives_every_row_the_same_budget_and_bcgans_evaluation(dataset, e1, e2, pgd_at_eps):
    from robustjax.config import validate

    bench = _bench_table()
    data = ["--npz", "x.npz"] if dataset == "mnist" else ["--idx", "/data/fmnist"]
    a = bench.parse(["--dataset", dataset, *data, "--train", "1000", "--epochs", "2", "--gan_epochs", "1",
                     "--eval", "64", "--train_steps", "5", "--costly_eval", "48", "--costly_rho", "16"])
    assert a.out == f"runs/bcgan_{dataset}"
    t1, t2 = (f"{e:g}".replace(".", "p") for e in (e1, e2))
    for row in bench.ROWS:
        c, o, _ = bench.row_config(a, row)
        bench.add_cw(c, 2, 10)
        validate(c)
        costly = row == "defense_gan"  # the projection in every prediction: a CPU-sized evaluation
        assert (c.data.name, c.data.train_size, c.train.epochs) == (dataset, 1000, 2.0), row
        assert c.eval.num_examples == (48 if costly else 64), row
        assert c.data.path == ("x.npz" if dataset == "mnist" else "/data/fmnist"), row
        assert {f"fgsm_{t1}", f"fgsm_{t2}", f"pgd40_{t1}", f"pgd40_{t2}", "cw_l2"} <= set(c.eval.attacks), row
        assert ({f"pgd1000_{t2}", f"aa_{t2}"} <= set(c.eval.attacks)) is not costly, row
        assert c.eval.attacks[f"fgsm_{t2}"].eps == e2, row
        assert c.eval.metrics.rho_adv.num_examples == (16 if costly else 64), row
        assert c.eval.diagnostics.eps == (e2 if costly else 0.0), row  # 0: PGD-1000's radius
        if row.startswith("fgsm_at"):
            assert c.defense.attack.eps == (e1 if row.endswith("1") else e2)
        if row == "pgd_at":
            assert (c.defense.attack.eps, c.defense.attack.num_steps) == (pgd_at_eps, 5)
            assert c.defense.attack.step_size == pytest.approx(2.5 * pgd_at_eps / 5)
        if row == "bcgan":
            d = c.defense
            assert (d.pretrain_epochs, d.gan_epochs, d.num_boundary_samples) == (2.0, 1.0, 1000)
        if row == "defense_gan":
            assert c.defense.gan_epochs == 1.0
            assert c.eval.attacks[f"pgd40_{t2}_naive"].adaptive is False and f"apgd_eot_{t2}" in c.eval.attacks
        else:
            assert not any(k.endswith("_naive") or "eot" in k for k in c.eval.attacks), row
    with pytest.raises(SystemExit):
        bench.parse(["--npz", "x.npz", "--idx", "y"])


def test_table_script_reports_accuracy_on_adversarial_beside_the_papers_numbers():
    bench = _bench_table()
    cw = {"accuracy_on_adversarial": 0.0, "median_l2": 1.234,
          "at_radius": [{"radius": 1.5, "robust_accuracy": 0.4, "accuracy_on_adversarial": 0.5},
                        {"radius": 2.0, "robust_accuracy": 0.2, "accuracy_on_adversarial": 0.25}]}
    attacks = {"fgsm_0p2": {"accuracy_on_adversarial": 0.9, "robust_accuracy": 0.8},
               "aa_0p4": {"accuracy_on_adversarial": 0.011}, "cw_l2": cw}
    res = {"clean_accuracy": 0.977, "attacks": attacks,
           "metrics": {"rho_adv": {"value": 1.5, "not_flipped": 0.1}}}
    lines = bench.table({"bcgan": res}, "mnist").splitlines()
    assert lines[0].startswith("| defense | clean | FGSM 0.2 | FGSM 0.4 | PGD-40 0.2 | PGD-40 0.4 | C&W-L2 |")
    assert lines[2] == ("| bcgan | 97.7 | 90.0 | - | - | - | 0.0 | - | 1.1 | 50.0 | 25.0 | 1.23 | 1.50 (10%) "
                        "| 97.7 / 97.4 / 97.3 / 97.4 / 97.5 / 1.94 |")
    naive = {"clean_accuracy": 0.9, "attacks": {"pgd40_0p4": {"accuracy_on_adversarial": 0.1},
                                                "pgd40_0p4_naive": {"accuracy_on_adversarial": 0.8}}}
    lines = bench.table({"defense_gan": naive}, "mnist").splitlines()
    assert lines[2].startswith("| defense_gan (BPDA) | 90.0 | - | - | - | 10.0 |")
    assert lines[3].startswith("| defense_gan (naive attacker) | 90.0 | - | - | - | 80.0 |")
    assert lines[3].endswith("| - | - |")


def test_table_script_stacks_the_decision_planes_of_the_original_and_bcgan(tmp_path):
    import matplotlib.image

    bench = _bench_table()
    assert bench.planes(str(tmp_path)) is None  # no run has drawn its planes yet
    for row, value in (("original", 0.2), ("bcgan", 0.8)):
        os.makedirs(tmp_path / row)
        matplotlib.image.imsave(tmp_path / row / "decision_plane.png", np.full((40, 60), value), cmap="gray",
                                vmin=0.0, vmax=1.0)
    path = bench.planes(str(tmp_path))
    assert path == str(tmp_path / "fig4_planes.png")
    image = matplotlib.image.imread(path)[..., 0]
    top, bottom = image[: len(image) // 2], image[len(image) // 2:]
    assert np.isclose(np.median(top[top < 0.95]), 0.2, atol=0.05)  # the original above, BCGAN below
    assert np.isclose(np.median(bottom[bottom < 0.95]), 0.8, atol=0.05)
