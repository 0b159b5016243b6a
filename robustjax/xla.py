"""XLA compile options for fast convolutions on CPU, and a ``jax.jit`` that applies them.

    from robustjax import xla
    pgd = xla.jit(lambda p, x, y, k: attacks.pgd(model_fn(p), x, y, k, eps=0.3, step_size=0.01, num_steps=40))
    xla.compiler_options()        # {'xla_cpu_experimental_ynn_fusion_type': ...} on CPU, {} elsewhere

Why this exists. XLA:CPU in jaxlib 0.10 hands every convolution to YNNPACK by default. For the
multi-channel convolutions of the small CNNs this project attacks and trains, YNNPACK ran at about half the
speed of XLA's own (Eigen) convolution on the 2-core AVX-512 machines we benchmark on (5x5 32->64 on
14x14, batch 128: 12.7 ms forward and 13.3 ms input gradient, against 7.5 and 7.7 ms), which alone made
robustjax's PGD-40 slower than torchattacks'. Restricting YNNPACK to the dense layers (where it is as fast
or faster) gave a 1.7x faster LeNet input gradient and a 2.5x faster CIFAR CNN training gradient
(``docs/benchmarks.md``, whose ``robustjax-jax.jit`` column measures the default for comparison).

robustjax passes these options to every function *it* compiles (training steps, the evaluation suite,
the benchmarks). Users who jit the attacks themselves get them with :func:`jit` (a drop-in for
``jax.jit``) or, process-wide, with ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``.

The options are passed only when the default backend is the CPU, only if this jaxlib accepts them
(checked once with a tiny compile; a newer jaxlib that renamed the option just runs with its defaults),
and never when the user's ``XLA_FLAGS`` already set the option. ``ROBUSTJAX_XLA_OPTIONS=0`` turns
them off.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp

YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
# A single value replaces XLA's default list: YNNPACK keeps the individual dots (matmuls), and convolutions
# go back to XLA's own emitter.
CPU_OPTIONS: dict[str, Any] = {YNN_OPTION: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.lru_cache(maxsize=None)
def _cpu_options_accepted() -> bool:
    try:
        jax.jit(lambda v: v + 1, compiler_options=CPU_OPTIONS)(jnp.zeros((1,), jnp.float32)).block_until_ready()
        return True
    except Exception as e:  # an unknown option or value is a runtime error from XLA, not a crash
        warnings.warn(f"robustjax.xla: this jaxlib rejects {CPU_OPTIONS} ({str(e).splitlines()[0]}); compiling "
                      "with XLA's defaults (CPU convolutions may be ~2x slower).", RuntimeWarning, stacklevel=3)
        return False


def compiler_options() -> dict[str, Any]:
    """The compile options robustjax uses on the current default backend (an empty dict when none apply).

    Returns:
      ``{"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}`` on CPU when this
      jaxlib accepts it, ``ROBUSTJAX_XLA_OPTIONS`` is not ``0`` and ``XLA_FLAGS`` does not set the option
      already; otherwise ``{}``.
    """
    if os.environ.get("ROBUSTJAX_XLA_OPTIONS", "1").strip().lower() in ("0", "false", "no", "off"):
        return {}
    if YNN_OPTION in os.environ.get("XLA_FLAGS", ""):
        return {}
    if jax.default_backend() != "cpu":
        return {}
    return dict(CPU_OPTIONS) if _cpu_options_accepted() else {}


class _Jitted:
    """A ``jax.jit``-ed function with the options, that falls back to plain ``jax.jit`` when nested.

    JAX accepts ``compiler_options`` only on a top-level jit; called inside someone else's jit (or under
    ``vmap``/``grad`` tracing inside one), the outer compilation decides the options, so the plain version
    is traced instead. Attribute access (``lower``, ``trace``, ``eval_shape``, ...) goes to the top-level one.
    """

    def __init__(self, fun: Callable, options: dict[str, Any], jit_kwargs: dict[str, Any]):
        self._plain = jax.jit(fun, **jit_kwargs)
        self._fast = jax.jit(fun, compiler_options=options, **jit_kwargs) if options else self._plain
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        if self._fast is self._plain:
            return self._plain(*args, **kwargs)
        try:
            return self._fast(*args, **kwargs)
        except ValueError as e:
            if "compiler_options" not in str(e) or "nested" not in str(e):
                raise
            return self._plain(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fast, name)


def jit(fun: Callable | None = None, **jit_kwargs: Any) -> Callable:
    """``jax.jit`` with :func:`compiler_options` merged in (explicit ``compiler_options`` win).

    Usable as ``xla.jit(f, static_argnames=...)`` or as a decorator ``@xla.jit`` / ``@xla.jit(donate_argnums=0)``.
    Called inside another ``jit`` it behaves as plain ``jax.jit`` (JAX takes compile options from the
    top-level jit only). The options are read when ``jit`` is called, so set ``ROBUSTJAX_XLA_OPTIONS``
    before that.

    Args:
      fun: the function to compile.
      **jit_kwargs: any ``jax.jit`` keyword argument.

    Returns:
      The jitted function.
    """
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    options = {**compiler_options(), **(jit_kwargs.pop("compiler_options", None) or {})}
    return _Jitted(fun, options, jit_kwargs)
