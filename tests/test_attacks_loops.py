"""Every iterative attack hands XLA:CPU only canonical (NHWC/HWIO) convolutions inside its loops.

XLA:CPU canonicalises convolutions only in the entry computation; a non-canonical one inside a while
body (the input gradient of any conv net) runs as a naive loop, 5x slower (docs/attack_speed_notes.md).
``core.canonicalize_convs`` fixes that for a loop body; this pins that every attack's loop uses it.
"""

import functools
import re

import jax
import jax.numpy as jnp
import pytest

from robustjax import attacks


def _logits_fn():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    w = jax.random.normal(k1, (3, 3, 1, 4)) * 0.3
    v = jax.random.normal(k2, (4 * 4 * 4, 5)) * 0.3

    def f(x):
        h = jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.tanh(h).reshape(x.shape[0], -1) @ v

    return f


ATTACKS = {
    "pgd": functools.partial(attacks.pgd, eps=0.1, step_size=0.02, num_steps=3),
    "pgd_restarts": functools.partial(attacks.pgd, eps=0.1, step_size=0.02, num_steps=3, restarts=2),
    "bim": functools.partial(attacks.bim, eps=0.1, step_size=0.02, num_steps=3),
    "mim": functools.partial(attacks.mim, eps=0.1, step_size=0.02, num_steps=3),
    "apgd": functools.partial(attacks.apgd, eps=0.1, num_steps=4),
    "fab": functools.partial(attacks.fab, eps=0.3, num_steps=3),
    "deepfool": functools.partial(attacks.deepfool, num_steps=3, num_candidates=3),
    "cw_l2": functools.partial(attacks.cw_l2, binary_search_steps=2, num_steps=3),
    "jsma": functools.partial(attacks.jsma, gamma=0.05),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_only_canonical_convolutions_in_the_compiled_attack(name):
    f = _logits_fn()
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 8, 8, 1))
    y = jnp.array([0, 3])
    attack = ATTACKS[name]
    hlo = jax.jit(lambda x, y, k: attack(f, x, y, k)).lower(x, y, jax.random.PRNGKey(2)).compile().as_text()
    labels = set(re.findall(r"dim_labels=(\S+?)[,}\s]", hlo))
    assert labels, "no convolution found: the test model is not being attacked"
    assert labels <= {"b01f_01io->b01f"}, f"{name}: non-canonical convolutions {labels}"


def test_autoattack_only_canonical_convolutions():
    f = _logits_fn()
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 8, 8, 1))
    y = jnp.array([0, 3])
    run = lambda x, y, k: attacks.autoattack(f, x, y, k, eps=0.1, num_steps=3, num_queries=3, num_targets=2)
    hlo = jax.jit(run).lower(x, y, jax.random.PRNGKey(2)).compile().as_text()
    assert set(re.findall(r"dim_labels=(\S+?)[,}\s]", hlo)) == {"b01f_01io->b01f"}
