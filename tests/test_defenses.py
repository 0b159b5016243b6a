"""The defense kit: the supervised skeleton's steps against hand computations, each defense owning its
config section, and every config mistake failing in experiment.build, before any training, naming the
field and the valid choices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import experiment, models
from robustjax.config import base_config, optimizer
from robustjax.data.core import DataInfo
from robustjax.defenses import fields, pgd_at, standard, supervised
from robustjax.defenses.base import cross_entropy

INFO = DataInfo(name="tiny", image_shape=(6, 6, 1), num_classes=3, num_train=32, num_test=8)


def tiny_config(name="standard", **defense):
    c = base_config()
    c.model.name, c.model.width = "small_cnn", 0.25
    c.defense.name = name
    for k, v in defense.items():
        c.defense[k] = v
    c.train.steps = 4
    c.train.optimizer = optimizer("sgd", 0.1, momentum=0.0)
    return c


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.uniform(0, 1, (n, 6, 6, 1)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 3, n), jnp.int32)}


def _leaves_close(a, b, **kw):
    return all(np.allclose(x, y, **kw) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ----------------------------------------------------------------------------------------------
# fields.read


SCHEMA = {"name": fields.Field(), "beta": fields.Field(6.0, fields.number(0.0)),
          "steps": fields.Field(3, fields.integer(1)), "kind": fields.Field("a", fields.choice("a", "b"))}


def test_fields_fill_defaults_and_clean_values():
    out = fields.read({"name": "x", "steps": 5.0}, SCHEMA, "config.defense")
    assert out == {"name": "x", "beta": 6.0, "steps": 5, "kind": "a"} and isinstance(out["steps"], int)


@pytest.mark.parametrize("section, message", [
    ({"name": "x", "betta": 1.0}, r"config.defense.betta: unknown field \(did you mean 'beta'\?\); valid fields "
                                  r"here are \['beta', 'kind', 'name', 'steps'\]"),
    ({"beta": 1.0}, "config.defense.name: missing"),
    ({"name": "x", "beta": -1.0}, r"config.defense.beta: must be a number in \[0.0, inf\], got -1.0"),
    ({"name": "x", "beta": float("nan")}, "config.defense.beta: must be a number"),
    ({"name": "x", "beta": True}, "config.defense.beta: must be a number"),
    ({"name": "x", "steps": 2.5}, "config.defense.steps: must be an integer >= 1, got 2.5"),
    ({"name": "x", "kind": "c"}, r"config.defense.kind: 'c' is not one of \['a', 'b'\]"),
])
def test_fields_errors_name_the_field_and_the_choices(section, message):
    with pytest.raises(ValueError, match=message):
        fields.read(section, SCHEMA, "config.defense")


def test_fields_hint_says_where_a_field_moved():
    with pytest.raises(ValueError, match="config.defense.eps: unknown field: .*config.defense.attack"):
        fields.read({"name": "pgd_at", "eps": 0.3}, pgd_at.FIELDS, "config.defense", pgd_at.MOVED)


# ----------------------------------------------------------------------------------------------
# The supervised skeleton's steps.


@pytest.fixture(scope="module")
def standard_parts():
    c = tiny_config("standard", label_smoothing=0.2)
    defense = standard.make(c, INFO, 4)
    batch = _batch()
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    step = jax.jit(defense.phases[0].train_step)
    return c, defense, state, step, batch


def test_standard_step_is_one_sgd_step_on_smoothed_cross_entropy(standard_parts):
    c, defense, state, step, batch = standard_parts
    module = models.make(c.model, INFO.num_classes)

    def hand_loss(params):  # small_cnn has no BatchNorm or dropout: train mode = eval mode
        logits = module.apply({"params": params}, batch["image"], train=True)
        onehot = jax.nn.one_hot(batch["label"], 3)
        target = onehot * 0.8 + 0.2 / 3
        return -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits), -1))

    params = state["classifier"].params
    loss, grads = jax.value_and_grad(hand_loss)(params)
    new, metrics = step(state, batch, jax.random.PRNGKey(1))
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    assert _leaves_close(new["classifier"].params, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    assert int(new["classifier"].step) == 1


def test_standard_has_no_train_attack_and_its_classifier_is_the_network(standard_parts):
    _, defense, state, _, batch = standard_parts
    _, metrics = jax.jit(defense.phases[0].train_step)(state, batch, jax.random.PRNGKey(1))
    assert "eps" not in metrics
    assert defense.networks == ("classifier",) and defense.surrogate is None and defense.detector is None
    assert defense.classifier(state)(batch["image"]).shape == (8, 3)


def _recording_objective():
    """CE on x_adv, reporting how far x_adv is from the clean batch (per row) as metrics."""

    def objective(apply, params, batch_stats, batch, x_adv, key):
        logits, batch_stats = apply(params, batch_stats, x_adv, key)
        dist = jnp.max(jnp.abs(x_adv - batch["image"]).reshape(x_adv.shape[0], -1), axis=1)
        return cross_entropy(logits, batch["label"]), batch_stats, {"dist_first": dist[0], "dist_last": dist[-1]}

    return objective


@pytest.mark.parametrize("fraction, ramp", [(1.0, 0.0), (0.5, 0.0), (1.0, 2.0)])
def test_train_attack_feeds_the_objective_within_eps_with_fracat_and_ramp(fraction, ramp):
    eps = 0.2
    c = tiny_config("pgd_at", attack={"attack": "pgd", "eps": eps, "step_size": 0.1, "num_steps": 3},
                    adv_fraction=fraction, eps_ramp_epochs=ramp)
    hp = fields.read(c.defense, pgd_at.FIELDS, "config.defense")
    defense = supervised.make(c, INFO, 4, name="t", hp=hp, objective=_recording_objective())
    batch = _batch()
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    _, m = jax.jit(defense.phases[0].train_step)(state, batch, jax.random.PRNGKey(1))
    eps_now = eps / (ramp * 4) if ramp else eps  # the ramp is linear over ramp * steps_per_epoch steps
    np.testing.assert_allclose(m["eps"], eps_now, rtol=1e-6)
    assert 0.0 < float(m["dist_first"]) <= eps_now + 1e-6
    if fraction < 1.0:
        assert float(m["dist_last"]) == 0.0  # FracAT: the rows after round(fraction * B) stay clean
    else:
        assert float(m["dist_last"]) > 0.0


def test_pgd_at_step_raises_the_adversarial_loss_it_then_lowers():
    c = tiny_config("pgd_at", attack={"attack": "pgd", "eps": 0.3, "step_size": 0.1, "num_steps": 5})
    defense = pgd_at.make(c, INFO, 4)
    batch = _batch(1)
    state = jax.jit(defense.init)(jax.random.PRNGKey(0), batch)
    step = jax.jit(defense.phases[0].train_step)
    new, m = step(state, batch, jax.random.PRNGKey(2))
    clean = float(cross_entropy(defense.classifier(state)(batch["image"]), batch["label"]))
    assert float(m["loss"]) > clean  # trained on examples worse than the clean ones
    assert not _leaves_close(new["classifier"].params, state["classifier"].params)


# ----------------------------------------------------------------------------------------------
# Every config mistake fails in experiment.build, naming the field and the choices.


def _quick():
    from tests.test_config import load_config

    return load_config("quickstart.py", "smoke")


def _set(path, value):
    def mutate(c):
        node = c
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        if last in node:
            del node[last]
        node[last] = value

    return mutate


BUILD_MISTAKES = [
    (_set("eval.attacks.x", {"attack": "pgdd", "eps": 0.1}),
     r"config.eval.attacks.x.attack: 'pgdd' is not an attack.*did you mean 'pgd'"),
    (_set("eval.attacks.x", {"attack": "pgd", "eps": 0.1, "step_size": 0.01, "num_step": 3}),
     r"config.eval.attacks.x.num_step: unknown keyword.*did you mean 'num_steps'"),
    (_set("eval.attacks.x", {"attack": "pgd", "eps": 0.1, "num_steps": 3}), r"config.eval.attacks.x.step_size: missing"),
    (_set("eval.attacks.x", {"attack": "pgd", "eps": 0.1, "step_size": 0.01, "num_steps": 3, "norm": "l3"}),
     r"config.eval.attacks.x.norm: 'l3' is not a norm pgd supports; valid: \['linf', 'l2'\]"),
    (_set("eval.attacks.x", {"attack": "pgd", "eps": 0.1, "step_size": 0.01, "num_steps": -1}),
     r"config.eval.attacks.x.num_steps: must be an integer >= 1"),
    (_set("eval.attacks.x", {"attack": "fgsm"}), r"config.eval.attacks.x.eps: missing"),
    (_set("eval.curves.x", {"attack": "pgd", "rel_step_size": 0.25, "num_steps": 3}),
     r"config.eval.curves.x.eps_grid: missing"),
    (_set("defense.epsilon", 0.3), r"config.defense.epsilon: unknown field"),
    (_set("defense.attack.num_stepz", 3), r"config.defense.attack.num_stepz: unknown keyword.*did you mean 'num_steps'"),
    (_set("defense.attack.eps", -0.1), r"config.defense.attack.eps: must be a number >= 0"),
    (_set("defense.adv_fraction", 1.5), r"config.defense.adv_fraction: must be a number in \[0.0, 1.0\]"),
    (_set("defense.name", "pgd-at"), r"config.defense.name: 'pgd-at' is not a known defense \(did you mean 'pgd_at'\?\)"),
    (_set("train.optimizers.generater", {"learning_rate": 1e-3}),
     r"config.train.optimizers.generater: pgd_at has no network 'generater'; its networks are \['classifier'\]"),
    (_set("train.optimizers.classifier", {"learning_rte": 1e-3}),
     r"config.train.optimizers.classifier.learning_rte: unknown optimizer field \(did you mean 'learning_rate'\?\)"),
    (_set("model.widht", 0.5), r"config.model.widht: .*did you mean 'width'.*its fields are"),
]


@pytest.mark.parametrize("mutate, message", BUILD_MISTAKES)
def test_config_mistakes_fail_in_build_naming_the_field(mutate, message):
    c = _quick()
    mutate(c)
    with pytest.raises(ValueError, match=message):
        experiment.build(c)


def test_npz_with_a_stray_label_is_refused_not_trained_as_256_classes(tmp_path):
    rng = np.random.default_rng(0)
    y_train = rng.integers(0, 10, 200)
    y_train[17] = 255
    path = tmp_path / "stray.npz"
    np.savez(path, x_train=rng.integers(0, 255, (200, 8, 8, 1), dtype=np.uint8), y_train=y_train,
             x_test=rng.integers(0, 255, (50, 8, 8, 1), dtype=np.uint8), y_test=rng.integers(0, 10, 50))
    c = _quick()
    c.data.source, c.data.path, c.data.name = "npz", str(path), "stray"
    with pytest.raises(ValueError, match=r"label 255.*example 17.*config.data.num_classes"):
        experiment.build(c)
    c.data.num_classes = 10
    with pytest.raises(ValueError, match=r"example 17 has label 255, outside \[0, 10\)"):
        experiment.build(c)


def test_ema_warms_up_then_decays_at_the_configured_rate():
    """The EMA of the deployed weights: update t mixes at min(ema_decay, (1 + t) / (10 + t)), so a short run
    does not deploy a share of its random initial weights (0.998 ** 780 = 21% without the warm-up).
    With ema_decay 0.5 the warm-up rules updates 1-7 and the configured decay the rest."""
    import optax

    from robustjax.defenses.base import create_train_state

    module = models.make(tiny_config().model, 3)
    state = create_train_state(module, jax.random.PRNGKey(0), _batch()["image"], optax.sgd(1.0), ema_decay=0.5)
    expected = [np.asarray(p, np.float64) for p in jax.tree.leaves(state.ema_params)]
    for t in range(1, 13):
        grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1 * t), state.params)
        state = state.apply_gradients(grads=grads)
        d = min(0.5, (1 + t) / (10 + t))
        params = [np.asarray(p, np.float64) for p in jax.tree.leaves(state.params)]
        expected = [d * e + (1 - d) * p for e, p in zip(expected, params)]
        for got, want in zip(jax.tree.leaves(state.ema_params), expected):
            assert got.dtype == jnp.float32
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"update {t}")
