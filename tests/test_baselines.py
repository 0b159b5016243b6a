"""The baseline defenses on the supervised skeleton: FGSM/FGM-AT, mixed-minibatch PGD, adversarial logit
pairing, TRADES, label smoothing, Gaussian data augmentation and VAT. Each loss against a numpy computation
from the network's raw outputs, what one step changes, the parts each paper specifies (TRADES' KL-ascending
attack, GDA's copies, VAT's r_adv), config mistakes refused in experiment.build naming the field, the MNIST
configs comparable row by row, and every config's smoke variant trained end to end."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax import attacks, defenses, experiment, models
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import common, gda, label_smoothing, supervised, trades, vat
from robustjax.defenses.base import create_train_state
from tests.test_config import CONFIGS, load_config

K = 3
INFO = DataInfo(name="tiny", image_shape=(6, 6, 1), num_classes=K, num_train=32, num_test=8)
LR = 0.1


def tiny_config(name, **defense):
    """small_cnn at width 0.25 on 6x6x1 images, plain SGD (a step is ``params - LR * grad``)."""
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25
    c.defense.name = name
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 4
    c.train.optimizer = optimizer("sgd", LR, momentum=0.0)
    return c


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.uniform(0, 1, (n, 6, 6, 1)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, K, n), jnp.int32)}


class Tiny:
    """One defense built on the tiny config: its initial state, its jitted step, the raw network."""

    def __init__(self, name, **defense):
        self.config = tiny_config(name, **defense)
        self.defense = defenses.make(self.config, INFO, 4)
        self.module = models.make(self.config.model, K)
        self.batch = _batch()
        self.state = jax.jit(self.defense.init)(jax.random.PRNGKey(0), self.batch)
        self.params = self.state["classifier"].params
        self.step = jax.jit(self.defense.phases[0].train_step)
        self._apply = jax.jit(lambda p, x: self.module.apply({"params": p}, x))

    def logits(self, x, params=None):
        """The network's raw outputs (small_cnn has no BatchNorm or dropout: train mode = eval mode)."""
        return self._apply(self.params if params is None else params, x)

    def run(self, seed=1):
        new, metrics = self.step(self.state, self.batch, jax.random.PRNGKey(seed))
        return new, {k: float(v) for k, v in metrics.items()}


_BUILT: dict = {}


@pytest.fixture(scope="module")
def built():
    """``built(name, **defense)``: one :class:`Tiny` per distinct config, shared by the module's tests."""

    def get(name, **defense):
        key = (name, repr(sorted(defense.items())))
        if key not in _BUILT:
            _BUILT[key] = Tiny(name, **defense)
        return _BUILT[key]

    yield get
    _BUILT.clear()


# ----------------------------------------------------------------------------------------------
# numpy references, from raw logits


def _np(a):
    return np.asarray(a, np.float64)


def _log_softmax(z):
    z = _np(z)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ce(z, y, target=None):
    """Mean cross-entropy against ``target`` [B, K] (default one-hot of ``y``)."""
    if target is None:
        target = np.eye(z.shape[-1])[np.asarray(y)]
    return float(-np.mean(np.sum(target * _log_softmax(z), -1)))


def _kl(p_logits, q_logits):
    """Per-example KL(softmax(p) || softmax(q))."""
    lp, lq = _log_softmax(p_logits), _log_softmax(q_logits)
    return np.sum(np.exp(lp) * (lp - lq), -1)


def _changed_leaves(old, new):
    return [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new))]


def _assert_one_sgd_step_on(t: Tiny, new, hand_loss):
    """``new``'s classifier is one SGD step from ``t.state`` on ``hand_loss(params)`` (a jnp function of the
    parameters only), every parameter changed, and the state holds the classifier alone."""
    grads = jax.jit(jax.grad(hand_loss))(t.params)
    expected = jax.tree.map(lambda p, g: p - LR * g, t.params, grads)
    for a, b in zip(jax.tree.leaves(new["classifier"].params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert all(_changed_leaves(t.params, new["classifier"].params))
    assert set(new) == {"classifier"} and int(new["classifier"].step) == 1


# ----------------------------------------------------------------------------------------------
# Goodfellow's objective: fgsm_at (and fgm_at), mix_pgd, logit_pairing


FGSM = {"attack": "fgsm", "eps": 0.1}
PGD_FIXED = {"attack": "pgd", "eps": 0.2, "step_size": 0.1, "num_steps": 3, "random_start": False}


def _pgd_fixed(t):
    """The deterministic PGD of PGD_FIXED against the network (what the step's attack computes)."""
    return jax.jit(lambda x, y: attacks.pgd(t.logits, x, y, jax.random.PRNGKey(0), eps=0.2, step_size=0.1,
                                            num_steps=3, random_start=False))(t.batch["image"], t.batch["label"])


def test_fgsm_at_loss_is_alpha_clean_plus_one_minus_alpha_fgsm(built):
    t = built("fgsm_at", attack=FGSM, alpha=0.3)
    x, y = t.batch["image"], t.batch["label"]
    x_adv = jax.jit(lambda a, b: attacks.fgsm(t.logits, a, b, eps=0.1))(x, y)
    _, m = t.run()
    expected = 0.3 * _ce(t.logits(x), y) + 0.7 * _ce(t.logits(x_adv), y)
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(m["ce_adv"], _ce(t.logits(x_adv), y), rtol=1e-5)
    assert t.defense.name == "fgsm_at"


def test_fgm_at_is_the_fgsm_at_module_with_an_l2_spec_and_its_own_name(built):
    t = built("fgm_at", attack={"attack": "fgm", "norm": "l2", "eps": 0.5}, alpha=0.0)
    assert defenses.DEFENSES["fgm_at"] is defenses.DEFENSES["fgsm_at"] and t.defense.name == "fgm_at"
    x, y = t.batch["image"], t.batch["label"]
    x_adv = jax.jit(lambda a, b: attacks.fgm(t.logits, a, b, eps=0.5, norm="l2"))(x, y)
    dist = np.linalg.norm(_np(x_adv - x).reshape(len(x), -1), axis=1)
    assert np.all(dist <= 0.5 + 1e-5) and dist.max() > 0.4
    new, m = t.run()
    np.testing.assert_allclose(m["loss"], _ce(t.logits(x_adv), y), rtol=1e-5)  # alpha 0: adversarial only
    assert "ce_clean" not in m
    _assert_one_sgd_step_on(t, new, lambda p: optax.softmax_cross_entropy_with_integer_labels(
        t.module.apply({"params": p}, x_adv), y).mean())


def test_mix_pgd_trains_on_each_clean_example_and_its_pgd_example(built):
    t = built("mix_pgd", attack=PGD_FIXED)
    x, y = t.batch["image"], t.batch["label"]
    x_adv = _pgd_fixed(t)
    new, m = t.run()
    np.testing.assert_allclose(m["loss"], 0.5 * _ce(t.logits(x), y) + 0.5 * _ce(t.logits(x_adv), y), rtol=1e-5)
    assert "pairing" not in m

    def hand(p):
        z = t.module.apply({"params": p}, jnp.concatenate([x, x_adv]))
        return optax.softmax_cross_entropy_with_integer_labels(z, jnp.concatenate([y, y])).mean()

    _assert_one_sgd_step_on(t, new, hand)


def test_logit_pairing_adds_the_mean_squared_logit_difference(built):
    t = built("logit_pairing", attack=PGD_FIXED, pairing_weight=2.0)
    x, y = t.batch["image"], t.batch["label"]
    x_adv = _pgd_fixed(t)
    new, m = t.run()
    z, z_adv = _np(t.logits(x)), _np(t.logits(x_adv))
    pairing = np.mean((z - z_adv) ** 2)  # over examples and classes
    assert pairing > 1e-4
    np.testing.assert_allclose(m["pairing"], pairing, rtol=1e-5)
    np.testing.assert_allclose(m["loss"], 0.5 * _ce(z, y) + 0.5 * _ce(z_adv, y) + 2.0 * pairing, rtol=1e-5)

    def hand(p):
        zc, za = t.module.apply({"params": p}, x), t.module.apply({"params": p}, x_adv)
        ce = lambda v: optax.softmax_cross_entropy_with_integer_labels(v, y).mean()  # noqa: E731
        return 0.5 * ce(zc) + 0.5 * ce(za) + 2.0 * jnp.mean(jnp.square(zc - za))

    _assert_one_sgd_step_on(t, new, hand)


# ----------------------------------------------------------------------------------------------
# TRADES


TRADES_PGD = {"attack": "pgd", "eps": 0.3, "step_size": 0.1, "num_steps": 5, "random_start": True}


def test_trades_objective_is_ce_plus_beta_kl_from_raw_outputs(built):
    t = built("trades", attack=TRADES_PGD, beta=6.0)
    x, y = t.batch["image"], t.batch["label"]
    x_adv = jnp.clip(x + 0.2 * jax.random.normal(jax.random.PRNGKey(3), x.shape), 0.0, 1.0)
    apply = supervised.network_apply(t.state["classifier"])
    loss, _, m = jax.jit(lambda p: trades.objective(6.0)(apply, p, {}, t.batch, x_adv, jax.random.PRNGKey(0)))(
        t.params)
    z, z_adv = t.logits(x), t.logits(x_adv)
    kl = np.mean(_kl(z, z_adv))
    assert kl > 1e-4
    np.testing.assert_allclose(m["kl"], kl, rtol=1e-4)
    np.testing.assert_allclose(loss, _ce(z, y) + 6.0 * kl, rtol=1e-5)


def test_trades_inner_attack_raises_the_kl_it_maximises(built):
    t = built("trades", attack=TRADES_PGD, beta=6.0)
    x, y = t.batch["image"], t.batch["label"]
    atk = supervised.TrainAttack(TRADES_PGD, INFO.bounds)
    step = jnp.asarray(0)
    f = t.logits
    x_kl, x_ce = jax.jit(lambda a, b, k: (atk(f, a, b, k, step, loss=trades.kl_loss(f, a)), atk(f, a, b, k, step)))(
        x, y, jax.random.PRNGKey(5))
    assert np.max(np.abs(_np(x_kl - x))) <= 0.3 + 1e-6 and _np(x_kl).min() >= 0.0 and _np(x_kl).max() <= 1.0
    noise = jax.random.uniform(jax.random.PRNGKey(6), (20,) + x.shape, minval=-0.3, maxval=0.3)
    kl_rand = [np.mean(_kl(f(x), f(jnp.clip(x + n, 0.0, 1.0)))) for n in noise]
    kl_attack, kl_ce_attack = np.mean(_kl(f(x), f(x_kl))), np.mean(_kl(f(x), f(x_ce)))
    assert kl_attack > 2 * max(kl_rand)       # well above any random point of the ball
    assert kl_attack > kl_ce_attack           # and above what the cross-entropy attack reaches
    # The training step uses it: the KL it reports is that of a KL-ascending attack.
    _, m = t.run()
    assert m["kl"] > 2 * max(kl_rand)


def test_a_train_attack_that_takes_no_loss_function_says_so():
    atk = supervised.TrainAttack({"attack": "autoattack", "eps": 0.1}, INFO.bounds, where="config.defense.attack")
    x, y = _batch()["image"], _batch()["label"]
    with pytest.raises(ValueError, match=r"config.defense.attack.attack: autoattack takes no loss function; "
                                         r"these do: \['apgd', 'bim', 'fgm', 'fgsm', 'mim', 'pgd', 'rand_fgsm'\]"):
        atk(lambda v: v.reshape(len(v), -1)[:, :K], x, y, jax.random.PRNGKey(0), jnp.asarray(0),
            loss=lambda z, labels: z[:, 0])


def test_trades_step_changes_only_the_classifier(built):
    t = built("trades", attack=TRADES_PGD, beta=6.0)
    new, m = t.run()
    assert set(new) == {"classifier"} and int(new["classifier"].step) == 1
    assert all(_changed_leaves(t.params, new["classifier"].params))
    np.testing.assert_allclose(m["loss"], m["ce"] + 6.0 * m["kl"], rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Label smoothing


@pytest.mark.parametrize("num_classes", [2, 3, 10, 100])
def test_label_smoothing_alpha_leaves_the_true_label_exactly_its_weight(num_classes):
    alpha = label_smoothing.smoothing_alpha(0.9, num_classes)
    target = np.asarray(optax.smooth_labels(jax.nn.one_hot(jnp.array([1]), num_classes), alpha), np.float64)[0]
    np.testing.assert_allclose(target[1], 0.9, atol=1e-7)
    np.testing.assert_allclose(np.delete(target, 1), 0.1 / (num_classes - 1), atol=1e-7)
    if num_classes == 10:
        np.testing.assert_allclose(alpha, 1.0 / 9.0)


def test_label_smoothing_step_is_cross_entropy_against_the_soft_targets(built):
    t = built("label_smoothing", true_label_weight=0.8)
    x, y = t.batch["image"], t.batch["label"]
    target = np.full((len(y), K), 0.1)  # 0.8 on the true class, (1 - 0.8) / 2 on the other two
    target[np.arange(len(y)), np.asarray(y)] = 0.8
    new, m = t.run()
    np.testing.assert_allclose(m["loss"], _ce(t.logits(x), y, target), rtol=1e-5)
    _assert_one_sgd_step_on(t, new, lambda p: -jnp.mean(jnp.sum(
        jnp.asarray(target, jnp.float32) * jax.nn.log_softmax(t.module.apply({"params": p}, x)), -1)))


# ----------------------------------------------------------------------------------------------
# Gaussian data augmentation


def test_gda_copies_have_the_configured_count_and_sigma():
    x = jnp.full((8, 6, 6, 1), 0.5)
    y = jnp.arange(8, dtype=jnp.int32) % K
    out = gda.augment_fn(copies=10, sigma=0.3, keep_clean=True, bounds=None)(jax.random.PRNGKey(0),
                                                                             {"image": x, "label": y})
    images, labels = _np(out["image"]), np.asarray(out["label"])
    assert images.shape == (88, 6, 6, 1) and labels.shape == (88,)
    np.testing.assert_array_equal(images[:8], _np(x))           # the clean examples stay, first
    np.testing.assert_array_equal(labels, np.tile(np.asarray(y), 11))
    noise = images[8:] - 0.5                                     # copy c of example i is row 8 + 8 c + i
    np.testing.assert_allclose(noise.std(), 0.3, rtol=0.04)
    assert abs(noise.mean()) < 0.02
    per_copy = noise.reshape(10, 8, -1)
    assert np.all(np.abs(per_copy[1:] - per_copy[:1]).max(-1) > 0)  # ten different draws per example

    clipped = gda.augment_fn(copies=3, sigma=0.3, keep_clean=False, bounds=(0.0, 1.0))(
        jax.random.PRNGKey(0), {"image": x, "label": y})
    assert clipped["image"].shape == (24, 6, 6, 1)              # no clean rows
    assert float(clipped["image"].min()) == 0.0 and float(clipped["image"].max()) == 1.0  # some clipped


def test_gda_step_is_cross_entropy_over_the_clean_rows_and_their_copies(built):
    t = built("gda", copies=4, sigma=0.1)
    x = t.batch["image"]
    key = jax.random.PRNGKey(1)
    k_aug = jax.random.split(key, 3)[0]  # the skeleton draws the augmentation key first
    aug = jax.jit(gda.augment_fn(copies=4, sigma=0.1, keep_clean=True, bounds=INFO.bounds))(k_aug, t.batch)
    assert aug["image"].shape[0] == 5 * len(x)
    new, m = t.run(seed=1)
    np.testing.assert_allclose(m["loss"], _ce(t.logits(aug["image"]), aug["label"]), rtol=1e-5)
    _assert_one_sgd_step_on(t, new, lambda p: optax.softmax_cross_entropy_with_integer_labels(
        t.module.apply({"params": p}, aug["image"]), aug["label"]).mean())


# ----------------------------------------------------------------------------------------------
# VAT


def _norms(r):
    return np.linalg.norm(_np(r).reshape(r.shape[0], -1), axis=1)


def test_vat_r_adv_has_norm_eps_and_raises_the_kl_more_than_a_random_direction(built):
    t = built("vat", eps=1.5, xi=1e-3)
    x = t.batch["image"]
    z = t.logits(x)
    perturbation = jax.jit(lambda k, eps: vat.virtual_adversarial_perturbation(
        t.logits, x, z, k, eps=eps, xi=1e-3, power_iterations=2))
    np.testing.assert_allclose(_norms(perturbation(jax.random.PRNGKey(2), 0.2)), 0.2, rtol=1e-5)
    r = perturbation(jax.random.PRNGKey(2), 1.5)
    np.testing.assert_allclose(_norms(r), 1.5, rtol=1e-5)
    rand = 1.5 * jax.jit(jax.vmap(vat.l2_normalize))(jax.random.normal(jax.random.PRNGKey(3), (10,) + x.shape))
    kl_rand = max(np.mean(_kl(z, t.logits(x + q))) for q in rand)
    assert np.mean(_kl(z, t.logits(x + r))) > 2 * kl_rand


def test_vat_power_iteration_is_a_hessian_vector_product_of_the_kl():
    """One power-iteration step from ``d`` points along H d, H the Hessian of KL(p(x) || p(x + r)) at r = 0
    (computed exactly here by forward-over-reverse differentiation)."""
    module = models.make({"name": "mlp", "hidden": [16]}, K)
    x = jax.random.uniform(jax.random.PRNGKey(0), (6, 5))
    params = module.init(jax.random.PRNGKey(1), x)
    f = lambda v: module.apply(params, v)  # noqa: E731
    z = f(x)
    key = jax.random.PRNGKey(2)

    @jax.jit
    def both():
        r = vat.virtual_adversarial_perturbation(f, x, z, key, eps=1.0, xi=1e-3, power_iterations=1)
        d0 = vat.l2_normalize(jax.random.normal(key, x.shape, x.dtype))
        grad_kl = jax.grad(lambda q: jnp.sum(common.kl_divergence(z, f(x + q))))
        return r, jax.jvp(grad_kl, (jnp.zeros_like(x),), (d0,))[1]

    r, hd = both()
    cos = np.sum(_np(r) * _np(hd), 1) / (_norms(r) * _norms(hd))
    assert np.all(cos > 0.999), cos


class _BNNet(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nn.Dense(8)(x.reshape(x.shape[0], -1))
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        return nn.Dense(K)(nn.relu(h))


def test_vat_objective_from_raw_outputs_and_only_the_clean_pass_updates_batchnorm():
    module = _BNNet()
    batch = _batch(2)
    x, y = batch["image"], batch["label"]
    state = create_train_state(module, jax.random.PRNGKey(0), x, optax.sgd(LR))
    apply = supervised.network_apply(state)
    key = jax.random.PRNGKey(4)
    obj = vat.objective(eps=1.0, xi=1e-3, power_iterations=1, alpha=0.5)
    loss, stats, m = jax.jit(lambda p: obj(apply, p, state.batch_stats, batch, None, key))(state.params)
    k_net, k_dir = jax.random.split(key)

    def train_logits(v):
        out, new_stats = module.apply({"params": state.params, "batch_stats": state.batch_stats}, v, train=True,
                                      mutable=["batch_stats"])
        return out, new_stats["batch_stats"]

    @jax.jit
    def reference():
        z, clean_stats = train_logits(x)
        r = vat.virtual_adversarial_perturbation(lambda v: train_logits(v)[0], x, z, k_dir, eps=1.0, xi=1e-3,
                                                 power_iterations=1)
        return z, clean_stats, train_logits(x + r)[0]

    z, clean_stats, z_adv = reference()
    kl = np.mean(_kl(z, z_adv))
    assert kl > 1e-5
    np.testing.assert_allclose(m["vat"], kl, rtol=1e-4)
    np.testing.assert_allclose(loss, _ce(z, y) + 0.5 * kl, rtol=1e-5)
    np.testing.assert_allclose(m["r_adv_norm"], 1.0, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(clean_stats)):  # the clean pass's statistics
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_vat_step_changes_only_the_classifier(built):
    t = built("vat", eps=1.5, xi=1e-3)
    new, m = t.run()
    assert set(new) == {"classifier"} and int(new["classifier"].step) == 1
    assert all(_changed_leaves(t.params, new["classifier"].params))
    np.testing.assert_allclose(m["r_adv_norm"], 1.5, rtol=1e-5)
    np.testing.assert_allclose(m["loss"], m["ce"] + m["vat"], rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Config mistakes fail in experiment.build, naming the field


def _quick(defense):
    c = load_config("quickstart.py", "smoke")
    c.defense = defense
    return c


PGD = {"attack": "pgd", "eps": 0.1, "step_size": 0.03, "num_steps": 2, "random_start": True}
BUILD_MISTAKES = [
    ({"name": "fgsm_at"}, r"config.defense.attack: missing"),
    ({"name": "fgsm_at", "attack": {"attack": "fgsm", "eps": 0.1}, "alpha": 1.5},
     r"config.defense.alpha: must be a number in \[0.0, 1.0\], got 1.5"),
    ({"name": "fgm_at", "attack": {"attack": "fgm", "norm": "l3", "eps": 0.1}},
     r"config.defense.attack.norm: 'l3' is not a norm fgm supports"),
    ({"name": "mix_pgd", "attack": PGD, "alpha": -0.1}, r"config.defense.alpha: must be a number in \[0.0, 1.0\]"),
    ({"name": "logit_pairing", "attack": PGD, "pairing_weight": 0.0},
     r"config.defense.pairing_weight: must be a number in \(0.0, inf\], got 0.0"),
    ({"name": "logit_pairing", "attack": PGD, "pairing": 0.5},
     r"config.defense.pairing: unknown field \(did you mean 'pairing_weight'\?\)"),
    ({"name": "trades", "attack": {"attack": "fgsm", "eps": 0.1}},
     r"config.defense.attack.attack: TRADES' inner maximisation is PGD .*use 'pgd'"),
    ({"name": "trades", "attack": {**PGD, "random_start": False}},
     r"config.defense.attack.random_start: must be True for TRADES"),
    ({"name": "trades", "attack": {**PGD, "loss": "ce"}}, r"config.defense.attack.loss: TRADES' attack ascends"),
    ({"name": "trades", "attack": PGD, "beta": -1.0}, r"config.defense.beta: must be a number in \[0.0, inf\]"),
    ({"name": "label_smoothing", "true_label_weight": 0.05},
     r"config.defense.true_label_weight: must be at least 1/K = 0.1 for the 10 classes"),
    ({"name": "label_smoothing", "true_label_weight": 1.5}, r"config.defense.true_label_weight: must be a number in"),
    ({"name": "label_smoothing", "label_smoothing": 0.1},
     r"config.defense.label_smoothing: unknown field; valid fields here are \['name', 'true_label_weight'\]"),
    ({"name": "gda", "copies": 0}, r"config.defense.copies: must be an integer >= 1, got 0"),
    ({"name": "gda", "sigma": 0.0}, r"config.defense.sigma: must be a number in \(0.0, inf\], got 0.0"),
    ({"name": "gda", "keep_clean": "yes"}, r"config.defense.keep_clean: must be True or False, got 'yes'"),
    ({"name": "vat", "eps": -2.1}, r"config.defense.eps: must be a number in \(0.0, inf\]"),
    ({"name": "vat", "power_iterations": 0}, r"config.defense.power_iterations: must be an integer >= 1"),
    ({"name": "vat", "power_iteration": 2},
     r"config.defense.power_iteration: unknown field \(did you mean 'power_iterations'\?\)"),
    ({"name": "vat", "xi": 0.0}, r"config.defense.xi: must be a number in \(0.0, inf\]"),
]


@pytest.mark.parametrize("defense, message", BUILD_MISTAKES)
def test_config_mistakes_fail_in_build_naming_the_field(defense, message):
    with pytest.raises(ValueError, match=message):
        experiment.build(_quick(defense))


# ----------------------------------------------------------------------------------------------
# Configs: the MNIST rows compare, every smoke variant trains


MNIST = ["fgsm_at_mnist.py", "fgm_at_mnist.py", "pgd_at_l2_mnist.py", "mix_pgd_mnist.py", "logit_pairing_mnist.py",
         "trades_mnist.py", "label_smoothing_mnist.py", "gda_mnist.py", "vat_mnist.py"]
OTHER = ["fgsm_at_cifar10.py", "fgsm_at_fashion_mnist.py", "fgm_at_cifar10.py", "fgm_at_cifar100.py",
         "pgd_at_l2_cifar10.py", "pgd_at_l2_cifar100.py", "mix_pgd_cifar10.py", "logit_pairing_cifar10.py",
         "label_smoothing_cifar10.py", "gda_cifar10.py", "vat_cifar10.py"]


def test_the_configs_exist_and_name_their_defense():
    assert set(MNIST + OTHER) <= set(CONFIGS)
    for name in MNIST + OTHER:
        defense = load_config(name).defense.name
        assert defense in defenses.DEFENSES and name.startswith(defense if defense != "pgd_at" else "pgd_at_l2")


@pytest.mark.parametrize("name", MNIST + ["gda_mnist.py:brelu", "standard_mnist.py"])
def test_mnist_configs_share_model_optimizer_budget_and_evaluation_with_pgd_at(name):
    name, _, arg = name.partition(":")
    ref, c = load_config("pgd_at_mnist.py"), load_config(name, arg or None)
    assert (c.data.name, c.data.source, c.data.batch_size) == (ref.data.name, ref.data.source, ref.data.batch_size)
    assert c.model.name == ref.model.name == "lenet" and c.model.width == ref.model.width
    assert c.train.optimizer.to_dict() == ref.train.optimizer.to_dict()
    assert (c.train.epochs, c.train.steps) == (ref.train.epochs, ref.train.steps)
    assert c.eval.to_dict() == ref.eval.to_dict()
    assert {"fgsm_0p3", "pgd40_0p3"} <= set(c.eval.attacks)
    if "attack" in c.defense:
        assert c.defense.eps_ramp_epochs == ref.defense.eps_ramp_epochs
    assert c.model.activation == ("brelu" if arg == "brelu" else "relu")


# A metric each defense's step logs (its own terms where it has any).
LOGGED = {"fgsm_at": "ce_adv", "fgm_at": "ce_adv", "pgd_at": "accuracy", "mix_pgd": "ce_clean",
              "logit_pairing": "pairing", "trades": "kl", "label_smoothing": "accuracy", "gda": "accuracy",
              "vat": "vat"}


@pytest.mark.parametrize("name", MNIST)
def test_mnist_smoke_variant_trains_and_evaluates_end_to_end(name, tmp_path):
    import json

    c = load_config(name, "smoke")
    c.train.progress = False
    results = experiment.run(c, str(tmp_path))
    assert results["info"]["steps"] == c.train.steps and results["info"]["dataset"] == "mnist-standin"
    assert 0.0 <= results["clean_accuracy"] <= 1.0
    for label, r in results["attacks"].items():
        assert r["budget_violations"] == 0 and r["robust_accuracy"] <= results["clean_accuracy"] + 1e-9, label
    logged = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert logged and all(LOGGED[c.defense.name] in row and np.isfinite(row["loss"]) for row in logged)
    assert "SMOKE RUN" in open(tmp_path / "report.md").read()


@pytest.mark.parametrize("name", OTHER + ["gda_mnist.py:brelu", "gda_cifar10.py:brelu"])
def test_other_smoke_variants_build_and_trace_a_training_step(name):
    """The other datasets' smoke variants: the config builds (data, model, defense) and the defense's init
    and training step trace on that model and data (``jax.eval_shape``: every shape and dtype checked,
    nothing compiled); the compiled path of each defense is the MNIST runs' above."""
    name, _, arg = name.partition(":")
    c = load_config(name, f"{arg},smoke" if arg else "smoke")
    defense, train_ds, _, info, _ = experiment.build(c)
    batch = {k: jnp.asarray(v) for k, v in train_ds.get(np.arange(c.data.batch_size)).items()}
    state = jax.eval_shape(defense.init, jax.random.PRNGKey(0), batch)
    new, metrics = jax.eval_shape(defense.phases[0].train_step, state, batch, jax.random.PRNGKey(1))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(state)))
    assert metrics["loss"].shape == () and LOGGED[c.defense.name] in metrics
    logits = jax.eval_shape(lambda st, x: defense.classifier(st)(x), state, batch["image"])
    assert logits.shape == (len(batch["label"]), info.num_classes)


def _bench_baselines():
    from benchmarks import baselines_mnist

    return baselines_mnist


def test_baselines_table_script_gives_every_row_the_same_budget_and_a_valid_config():
    """benchmarks/baselines_mnist.py: every row's config validates with the budget and C&W added; the
    budget reaches each row the same way; naive C&W only where the row has naive attacks; Defense-GAN
    (COSTLY: a projection in every prediction) gets the cut evaluation and its own GAN epochs."""
    from robustjax.config import validate

    bench = _bench_baselines()

    class A:  # the parsed arguments row_config() reads
        npz, paper, train, epochs, eval, train_steps, ramp = "x.npz", False, 1000, 3.0, 64, 5, 1.0
        gan_epochs, cw_search, cw_steps, costly_eval, costly_cw, preset = 7.0, 2, 10, 32, (1, 5), "full"

    naive_rows = set()
    for name in bench.ROWS:
        c, o, labels, dropped = bench.row_config(A, name)
        validate(c)
        costly = name in bench.COSTLY
        assert (c.data.train_size, c.train.epochs, c.data.path) == (1000, 3.0, "x.npz"), name
        assert c.eval.num_examples == (32 if costly else 64) == o["eval.num_examples"], name
        assert c.eval.attacks.cw_l2.radii == [1.5, 2.0]
        assert c.eval.attacks.cw_l2.num_steps == (5 if costly else 10), name
        assert {"fgsm_0p3", "pgd40_0p3"} <= set(c.eval.attacks), name
        assert c.eval.preset == "full" and "eval.preset" not in o, name
        assert ({"pgd1000_0p3", "aa_0p3"} <= set(c.eval.attacks)) is not costly, name
        assert dropped == (["aa_0p3", "pgd1000_0p3"] if costly else []), name
        if c.defense.get("attack") is not None and c.defense.attack.get("attack") == "pgd":
            assert (c.defense.attack.num_steps, c.defense.attack.step_size) == (5, pytest.approx(2.5 * 0.3 / 5))
        if "cw_l2_naive" in labels:
            naive_rows.add(name)
            assert c.eval.attacks.cw_l2_naive.adaptive is False
    assert naive_rows == {"feature_squeezing", "defense_gan"}
    assert bench.COSTLY == ("defense_gan",)
    c, o, _, _ = bench.row_config(A, "defense_gan")
    assert c.defense.gan_epochs == 7.0 == o["defense.gan_epochs"]
    assert (c.eval.diagnostics.num_examples, c.eval.diagnostics.square_queries) == (64, 200)
    assert o["eval.diagnostics.many_steps"] == 100 and c.eval.diagnostics.eps == 0.3  # the main radius
    A.preset = "quick"  # --preset reaches the config and the printed main.py command
    c, o, _, _ = bench.row_config(A, "pgd_at")
    assert c.eval.preset == "quick" == o["eval.preset"]
    validate(c)
    A.preset = "full"
    A.paper = True  # the configs' own evaluation, nothing cut
    c, _, _, dropped = bench.row_config(A, "defense_gan")
    assert dropped == [] and {"pgd1000_0p3", "aa_0p3"} <= set(c.eval.attacks) and c.eval.num_examples == 200


def test_baselines_table_reads_robust_accuracy_and_the_cw_radii():
    bench = _bench_baselines()
    cw = {"robust_accuracy": 0.0, "median_l2": 1.234,
          "at_radius": [{"radius": 1.5, "robust_accuracy": 0.5}, {"radius": 2.0, "robust_accuracy": 0.25}]}
    attacks = {"fgsm_0p3": {"robust_accuracy": 0.8}, "pgd40_0p3": {"robust_accuracy": 0.7}, "cw_l2": cw,
               "pgd40_0p3_naive": {"robust_accuracy": 0.9}, "apgd_eot_0p3": {"robust_accuracy": 0.6}}
    checks = {"autoattack": [{"flagged": True}], "pgd_steps": [{"flagged": False}], "gradients": {"flagged": True},
              "randomness": {"flagged": False}}
    res = {"clean_accuracy": 0.99, "attacks": attacks, "diagnostics": {"checks": checks}}
    plain = {"clean_accuracy": 0.98, "attacks": {"fgsm_0p3": {"robust_accuracy": 0.1}},
             "diagnostics": {"checks": {"autoattack": [{"flagged": False}]}}}
    lines = bench.table({"fs": res, "std": plain, "bare": {"clean_accuracy": 0.5, "attacks": {}}}).splitlines()
    assert lines[0].count("|") == lines[2].count("|") == 12
    assert lines[2] == ("| fs (adaptive) | 0.990 | 0.800 | 0.700 | - | - | 0.600 | 0.500 | 0.250 | 1.234 | "
                        "autoattack, gradients |")
    assert lines[3] == "| fs (naive attacker) | 0.990 | - | 0.900 | - | - | - | - | - | - | - |"
    assert lines[4] == "| std | 0.980 | 0.100 | - | - | - | - | - | - | - | none |"
    assert lines[5] == "| bare | 0.500 | - | - | - | - | - | - | - | - | - |"
