"""Tests for robustjax.xla: the CPU compile options and the jit that applies them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import xla

jax.config.update("jax_disable_most_optimizations", True)


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_options_on_cpu(monkeypatch):
    monkeypatch.delenv("ROBUSTJAX_XLA_OPTIONS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    assert jax.default_backend() == "cpu"
    import jaxlib

    if not jaxlib.__version__.startswith("0.10."):
        pytest.skip(f"the option is known to exist in jaxlib 0.10; this is {jaxlib.__version__} (fallback tested below)")
    assert xla.compiler_options() == xla.CPU_OPTIONS


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_env_switch_turns_options_off(monkeypatch, value):
    monkeypatch.setenv("ROBUSTJAX_XLA_OPTIONS", value)
    assert xla.compiler_options() == {}


def test_user_xla_flags_win(monkeypatch):
    monkeypatch.delenv("ROBUSTJAX_XLA_OPTIONS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", f"--{xla.YNN_OPTION}=-individual_dot")
    assert xla.compiler_options() == {}


def test_rejected_options_fall_back_with_a_warning(monkeypatch):
    monkeypatch.delenv("ROBUSTJAX_XLA_OPTIONS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setattr(xla, "CPU_OPTIONS", {xla.YNN_OPTION: "NOT_A_FUSION_TYPE"})
    xla._cpu_options_accepted.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="rejects"):
            assert xla.compiler_options() == {}
    finally:
        xla._cpu_options_accepted.cache_clear()


def test_jit_matches_jax_jit_on_a_conv_gradient():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)
    f = lambda x, w: jax.grad(lambda x: jnp.sum(jnp.tanh(_conv(x, w))))(x)  # noqa: E731
    np.testing.assert_allclose(xla.jit(f)(x, w), jax.jit(f)(x, w), rtol=1e-5, atol=1e-6)


def test_jit_passes_jax_jit_arguments_and_decorator_form():
    @xla.jit(static_argnames="n")
    def power(x, n):
        return x ** n

    assert float(power(jnp.float32(2.0), n=3)) == 8.0
    donated = xla.jit(lambda a: a * 2, donate_argnums=0)
    np.testing.assert_array_equal(donated(jnp.arange(3.0)), [0.0, 2.0, 4.0])


def test_explicit_compiler_options_override():
    f = xla.jit(lambda v: v + 1, compiler_options={xla.YNN_OPTION: ""})
    np.testing.assert_array_equal(f(jnp.zeros(2)), [1.0, 1.0])
    with pytest.raises(Exception, match="not a valid enum value"):
        xla.jit(lambda v: v + 1, compiler_options={xla.YNN_OPTION: "bogus"})(jnp.zeros(2))


def test_nested_in_another_jit_falls_back_to_plain_jit():
    inner = xla.jit(lambda v: jnp.sin(v) * 2)
    if not xla.compiler_options():
        pytest.skip("the options are off in this environment (XLA_FLAGS or ROBUSTJAX_XLA_OPTIONS)")
    outer = jax.jit(lambda v: inner(v) + 1)
    np.testing.assert_allclose(outer(jnp.float32(0.5)), 2 * np.sin(0.5) + 1, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(inner)(jnp.arange(3.0)), 2 * np.sin(np.arange(3.0)), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(inner)(jnp.float32(0.5)), 2 * np.cos(0.5), rtol=1e-6)


def test_jitted_exposes_lower():
    f = xla.jit(lambda v: v * 3)
    assert "multiply" in f.lower(jnp.zeros(2)).as_text()
