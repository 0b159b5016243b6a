"""Tests for robustjax.attacks.spec: attack specs resolved and checked without a model, then called.

Messages start with the field path and name the valid choices; a resolved spec runs exactly the direct
call (same jaxpr, bitwise-equal output); rel_step_size follows a traced eps; budget attacks need eps unless
the caller supplies it later. Tiny pure-jax MLP on 6x6x1 "images", 5 classes.
"""

import dataclasses
import functools
import inspect
import re

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from robustjax import attacks
from robustjax import data as data_lib
from robustjax.attacks import spec as spec_lib
from robustjax.evaluate import suite

jax.config.update("jax_disable_most_optimizations", True)

B, H, W, C, K = 4, 6, 6, 1, 5
D = H * W * C
WHERE = "config.eval.attacks.pgd40"
PGD = {"attack": "pgd", "eps": 0.3, "step_size": 0.01, "num_steps": 40}


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


# ---- each kind of mistake gives its message, prefixed by the field path ----------------------------------


def _with(**changes):
    out = dict(PGD)
    for k, v in changes.items():
        if v is _DROP:
            out.pop(k)
        else:
            out[k] = v
    return out


_DROP = object()

MISTAKES = [
    # (spec, field, message after "<where>.<field>: ")
    (_with(attack="pgdd"), "attack",
     r"'pgdd' is not an attack; valid attacks are \['apgd', .*'pgd', .*\] \(did you mean 'pgd'\?\)"),
    (_with(attack=_DROP), "attack", r"missing: name the attack, e.g. 'pgd'; valid attacks are \["),
    (_with(num_steps=_DROP, num_step=40), "num_step",
     r"unknown keyword for pgd; valid keywords are \['eps', 'loss', 'norm', 'num_steps', .*\] "
     r"\(did you mean 'num_steps'\?\)"),
    (_with(step_size=_DROP), "step_size", r"missing: pgd needs step_size \(or rel_step_size\)"),
    (_with(num_steps=_DROP), "num_steps", r"missing: pgd needs num_steps"),
    (_with(norm="l3"), "norm", r"'l3' is not a norm pgd supports; valid: \['linf', 'l2'\]"),
    (_with(norm="l1"), "norm", r"'l1' is not a norm pgd supports; valid: \['linf', 'l2'\]"),
    (_with(num_steps=-1), "num_steps", r"must be an integer >= 1, got -1"),
    (_with(num_steps=0), "num_steps", r"must be an integer >= 1, got 0"),
    (_with(num_steps=2.5), "num_steps", r"must be an integer >= 1, got 2.5"),
    (_with(num_steps=True), "num_steps", r"must be an integer >= 1, got True"),
    (_with(restarts=0), "restarts", r"must be an integer >= 1, got 0"),
    (_with(eps=-0.1), "eps", r"must be a number >= 0 \(inf allowed\), got -0.1"),
    (_with(eps=float("nan")), "eps", r"must be a number >= 0 \(inf allowed\), got nan"),
    (_with(eps="0.3"), "eps", r"must be a number >= 0 \(inf allowed\), got '0.3'"),
    (_with(step_size=-0.01), "step_size", r"must be a finite number >= 0, got -0.01"),
    (_with(eps=_DROP), "eps", r"missing: pgd is a budget attack and needs eps .* require_eps=False"),
    (_with(loss="xent"), "loss", r"'xent' is not a loss pgd supports; valid: \['ce', 'dlr', 'margin'\]"),
    (_with(targeted="yes"), "targeted", r"must be True or False, got 'yes'"),
    (_with(bounds=(0.0, 1.0)), "bounds", r"not a spec key: the pixel range comes from the dataset"),
    (_with(key=0), "key", r"not a spec key: the PRNG key is an argument of the call"),
    (_with(step_size=_DROP, rel_step_size=-1.0), "rel_step_size", r"must be a finite number >= 0, got -1.0"),
    (_with(rel_step_size=0.25), "rel_step_size", r"give step_size or rel_step_size, not both"),
    (_with(step_size=_DROP, rel_step_size=0.25, eps=float("inf")), "rel_step_size", r"needs a finite eps"),
    (_with(eps_grid=[0.1]), "eps_grid", r"unknown keyword for pgd; .*evaluation suite's curves"),
    ({"attack": "fgsm", "eps": 0.1, "rel_step_size": 0.5}, "rel_step_size",
     r"unknown keyword for fgsm; valid keywords are \['eps', 'loss', 'targeted'\]"),
    ({"attack": "apgd", "eps": float("inf")}, "eps",
     r"must be a finite number >= 0, got inf \(apgd needs a finite eps\)"),
    ({"attack": "apgd", "eps": 0.1, "loss": "dlr_target"}, "loss",
     r"'dlr_target' is not a loss apgd supports; valid: \['ce', 'margin', 'dlr', 'dlr_targeted'\].*"
     r"\(did you mean 'dlr_targeted'\?\)"),
    ({"attack": "square", "eps": 0.1, "loss": "dlr"}, "loss", r"'dlr' is not a loss square supports; valid: \["),
    ({"attack": "square", "eps": 0.1, "p_init": 0.0}, "p_init", r"must be a finite number in \(0, 1\], got 0.0"),
    ({"attack": "deepfool", "eps": 0.1}, "eps", r"unknown keyword for deepfool.*it takes no eps"),
    ({"attack": "deepfool", "num_candidates": 1}, "num_candidates", r"must be an integer >= 2, got 1"),
    ({"attack": "cw_l2", "confidence": -1.0}, "confidence", r"must be a finite number >= 0, got -1.0"),
    ({"attack": "jsma", "theta": 0.0}, "theta", r"must be a non-zero finite number"),
    ({"attack": "jsma", "gamma": 1.5}, "gamma", r"must be a finite number in \(0, 1\], got 1.5"),
    ({"attack": "jsma", "target": "nxt"}, "target",
     r"'nxt' is not one of \['random', 'next'\] \(did you mean 'next'\?\)"),
    ({"attack": "autoattack", "eps": 0.1, "version": "standart"}, "version",
     r"'standart' is not one of \['plus', 'rand', 'standard'\] \(did you mean 'standard'\?\)"),
    ({"attack": "autoattack", "eps": 0.1, "attacks": ["apgd-ce", "fabt"]}, "attacks",
     r"'fabt' is not an AutoAttack component; valid: \[.*\] \(did you mean 'fab-t'\?\)"),
    ({"attack": "autoattack", "eps": 0.1, "attacks": "apgd-ce"}, "attacks", r"must be a list of component names"),
    ({"attack": "rand_fgsm", "eps": 0.1, "alpha": 0.2}, "alpha", r"must be <= eps \(0.1\), got 0.2"),
    ({"attack": "rand_fgsm", "eps": 0.1, "random_init": "gauss"}, "random_init",
     r"'gauss' is not one of \['sign', 'gaussian'\] \(did you mean 'gaussian'\?\)"),
    ({"attack": "fab", "targeted": True, "num_targets": 3}, "num_targets", r"targeted=True takes its targets"),
]


@pytest.mark.parametrize("spec, field, message", MISTAKES, ids=[f"{s.get('attack')}-{f}-{i}" for i, (s, f, _) in
                                                                  enumerate(MISTAKES)])
def test_each_mistake_gives_its_message(spec, field, message):
    with pytest.raises(ValueError) as info:
        attacks.resolve(spec, where=WHERE)
    text = str(info.value)
    assert text.startswith(f"{WHERE}.{field}: "), text
    assert re.search(message, text[len(WHERE) + len(field) + 3:]), text


def test_not_a_dict():
    with pytest.raises(ValueError, match=r"^spec: an attack spec must be a dict"):
        attacks.resolve("pgd")


def test_every_keyword_of_every_attack_has_a_validator():
    """A new keyword in an attack's signature must get a validator (or be refused): none goes unchecked."""
    for name in attacks.ATTACKS:
        for key in spec_lib.spec_keywords(name):
            assert key in spec_lib.VALIDATORS, (name, key)
        params = inspect.signature(attacks.ATTACKS[name]).parameters
        if "norm" in params:
            assert params["norm"].default in spec_lib.NORMS_OF[name], name
        else:
            assert name in spec_lib.FIXED_NORM, name
        if "loss" in params:
            assert params["loss"].default in spec_lib.LOSSES_OF[name][0], name
    assert sorted(attacks.BUDGET_ATTACKS + attacks.MINIMAL_ATTACKS) == sorted(attacks.ATTACKS)


TINY = {"pgd": dict(step_size=0.01, num_steps=1), "mim": dict(step_size=0.01, num_steps=1),
        "apgd": dict(num_steps=1), "square": dict(num_queries=2), "fab": dict(num_steps=1),
        "autoattack": dict(num_steps=1, num_queries=2, num_targets=1, attacks=("apgd-ce", "fab", "square")),
        "deepfool": dict(num_steps=1)}


@pytest.mark.parametrize("name", sorted(spec_lib.NORMS_OF))
def test_norms_table_agrees_with_the_attacks(name, mlp, data):
    """NORMS_OF is what each attack itself accepts: the valid norms trace, the others are refused."""
    x, y = data
    eps = {} if name == "deepfool" else {"eps": 0.1}
    for norm in ("linf", "l2", "l1", "l0"):
        fn = jax.jit(functools.partial(attacks.ATTACKS[name], mlp, norm=norm, **eps, **TINY.get(name, {})))
        if norm in spec_lib.NORMS_OF[name]:
            fn.trace(x, y, jax.random.key(0))
        else:
            with pytest.raises(ValueError, match="norm"):
                fn.trace(x, y, jax.random.key(0))


def test_resolved_attributes_and_round_trip():
    atk = attacks.resolve(PGD, where=WHERE)
    assert (atk.name, atk.norm, atk.eps, atk.budget, atk.where) == ("pgd", "linf", 0.3, True, WHERE)
    assert atk.fn is attacks.pgd and atk.kwargs == {"step_size": 0.01, "num_steps": 40}
    assert attacks.resolve(atk.spec) == dataclasses.replace(atk, where="spec")
    assert attacks.resolve(atk) is atk
    assert attacks.resolve({"attack": "fgm", "eps": 0.5}).norm == "l2"  # the attack's own default
    assert attacks.resolve({"attack": "fgsm", "eps": 0.1}).norm == "linf"
    assert attacks.resolve({"attack": "deepfool"}).norm == "l2"
    assert attacks.resolve({"attack": "cw_l2"}).budget is False
    assert attacks.resolve({"attack": "fab"}).budget is False  # minimal-norm FAB ...
    assert attacks.resolve({"attack": "fab", "eps": 0.1}).budget is True  # ... and FAB with an acceptance ball
    assert attacks.resolve({"attack": "autoattack", "eps": 0.1, "attacks": ["apgd-ce"]}).kwargs["attacks"] == (
        "apgd-ce",)
    hash(atk)  # usable as a static argument
    # a ConfigDict (what configs hold) resolves like a dict
    assert attacks.resolve(ml_collections.ConfigDict(PGD), where=WHERE) == atk


def test_budget_attack_needs_eps_unless_the_caller_supplies_it(mlp, data):
    x, y = data
    spec = {"attack": "pgd", "step_size": 0.01, "num_steps": 2}
    with pytest.raises(ValueError, match=r"^c\.eps: missing: pgd is a budget attack and needs eps"):
        attacks.resolve(spec, where="c")
    atk = attacks.resolve(spec, where="c", require_eps=False)
    assert atk.eps is None and atk.budget
    with pytest.raises(ValueError, match=r"^c\.eps: missing: pgd needs eps; put it in the spec or pass eps="):
        atk(mlp, x, y, jax.random.key(0))
    with pytest.raises(ValueError, match=r"^c\.eps: missing"):
        attacks.resolve(atk, where="c")  # an Attack without eps is checked again when eps is required
    # minimal-perturbation attacks need no eps, and refuse one at call time
    df = attacks.resolve({"attack": "deepfool", "num_steps": 2}, where="d")
    with pytest.raises(ValueError, match=r"^d: deepfool takes no eps"):
        df(mlp, x, y, None, eps=0.1)
    with pytest.raises(ValueError, match=r"^c: pgd needs a PRNG key, got None"):
        atk(mlp, x, y, None, eps=0.1)


# ---- a resolved spec runs exactly the direct call --------------------------------------------------------


SPECS = [
    ({"attack": "pgd", "eps": 0.1, "step_size": 0.02, "num_steps": 3, "restarts": 2, "loss": "margin"},
     functools.partial(attacks.pgd, eps=0.1, step_size=0.02, num_steps=3, restarts=2, loss="margin")),
    ({"attack": "fgm", "eps": 0.5, "norm": "l1"}, functools.partial(attacks.fgm, eps=0.5, norm="l1")),
    ({"attack": "mim", "eps": 0.1, "step_size": 0.02, "num_steps": 2, "decay": 0.5},
     functools.partial(attacks.mim, eps=0.1, step_size=0.02, num_steps=2, decay=0.5)),
    ({"attack": "apgd", "eps": 0.1, "num_steps": 3, "loss": "dlr"},
     functools.partial(attacks.apgd, eps=0.1, num_steps=3, loss="dlr")),
    ({"attack": "square", "eps": 0.1, "num_queries": 4}, functools.partial(attacks.square, eps=0.1, num_queries=4)),
    ({"attack": "fab", "eps": 0.3, "num_steps": 2}, functools.partial(attacks.fab, eps=0.3, num_steps=2)),
    ({"attack": "deepfool", "num_steps": 3, "norm": "linf"},
     functools.partial(attacks.deepfool, num_steps=3, norm="linf")),
    ({"attack": "cw_l2", "binary_search_steps": 1, "num_steps": 2},
     functools.partial(attacks.cw_l2, binary_search_steps=1, num_steps=2)),
    ({"attack": "jsma", "gamma": 0.1, "target": "next"}, functools.partial(attacks.jsma, gamma=0.1, target="next")),
    # Zantedeschi et al.'s Random + FGSM: alpha above eps is accepted (capped at eps) for the Gaussian step
    ({"attack": "rand_fgsm", "eps": 0.03, "alpha": 0.05, "random_init": "gaussian"},
     functools.partial(attacks.rand_fgsm, eps=0.03, alpha=0.05, random_init="gaussian")),
]


@pytest.mark.parametrize("spec, direct", SPECS, ids=[f"{s['attack']}-{i}" for i, (s, _) in enumerate(SPECS)])
def test_resolved_spec_traces_to_the_direct_call(spec, direct, mlp, data):
    x, y = data
    atk = attacks.resolve(spec)
    bounds = (0.0, 1.0)
    via_spec = jax.make_jaxpr(lambda x, y, k: atk(mlp, x, y, k, bounds=bounds))(x, y, jax.random.key(0))
    plain = jax.make_jaxpr(lambda x, y, k: direct(mlp, x, y, k, bounds=bounds))(x, y, jax.random.key(0))
    # (each value check carries a global error code: the only difference between two traces)
    assert _without_check_codes(via_spec) == _without_check_codes(plain)


def _without_check_codes(jaxpr):
    return re.sub(r"select_n False:bool\[\] \d+:i32\[\] -1:i32\[\]", "select_n CODE", str(jaxpr))


@pytest.mark.parametrize("name", ["pgd", "deepfool"])
def test_resolved_spec_output_is_bitwise_the_direct_call(name, mlp, data):
    x, y = data
    spec, direct = next((s, d) for s, d in SPECS if s["attack"] == name)
    atk = attacks.resolve(spec)
    key = jax.random.key(4)
    chex.assert_trees_all_equal(jax.jit(lambda x, y, k: atk(mlp, x, y, k))(x, y, key),
                                jax.jit(lambda x, y, k: direct(mlp, x, y, k))(x, y, key))


def test_rel_step_size_scales_with_a_traced_eps(mlp, data):
    x, y = data
    key = jax.random.key(2)
    atk = attacks.resolve({"attack": "pgd", "rel_step_size": 0.25, "num_steps": 3}, require_eps=False)
    assert atk.rel_step_size == 0.25 and "step_size" not in atk.kwargs
    run = jax.jit(lambda e: atk(mlp, x, y, key, eps=e))
    direct = jax.jit(lambda e: attacks.pgd(mlp, x, y, key, eps=e, step_size=0.25 * e, num_steps=3))
    other = jax.jit(lambda e: attacks.pgd(mlp, x, y, key, eps=e, step_size=0.01, num_steps=3))
    for eps in (0.05, 0.2):
        out = run(jnp.float32(eps))
        chex.assert_trees_all_equal(out, direct(jnp.float32(eps)))
        assert float(jnp.max(jnp.abs(out - x))) <= eps + 1e-6
    assert not np.array_equal(run(jnp.float32(0.2)), other(jnp.float32(0.2)))  # the step did scale
    assert run._cache_size() == 1  # one compile for the whole grid
    # eps in the spec and an override at call time: the override wins, the step follows it
    atk2 = attacks.resolve({"attack": "pgd", "eps": 0.05, "rel_step_size": 0.25, "num_steps": 3})
    chex.assert_trees_all_equal(jax.jit(lambda e: atk2(mlp, x, y, key, eps=e))(jnp.float32(0.2)),
                                direct(jnp.float32(0.2)))


# ---- the evaluation suite resolves through the same table ------------------------------------------------


def test_suite_uses_the_attacks_table_and_refuses_a_budget_attack_without_eps(mlp, data):
    assert suite.BUDGET_ATTACKS is attacks.BUDGET_ATTACKS and suite.MINIMAL_ATTACKS is attacks.MINIMAL_ATTACKS
    assert suite.get_attack("pgd") is attacks.pgd
    with pytest.raises(ValueError, match=r"'pgdd' is not an attack"):
        suite.get_attack("pgdd")
    x, y = data
    ds = data_lib.ArrayDataset(np.asarray(x), np.asarray(y))
    eval_cfg = ml_collections.ConfigDict(dict(num_examples=0, batch_size=B, curves={}, attacks={
        "pgd2": {"attack": "pgd", "step_size": 0.01, "num_steps": 2}}))
    with pytest.raises(ValueError, match=r"^config\.eval\.attacks\.pgd2\.eps: missing: pgd is a budget attack"):
        suite.evaluate(lambda state: mlp, None, ds, eval_cfg, jax.random.key(0))
