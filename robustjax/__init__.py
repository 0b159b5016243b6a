"""robustjax: adversarial robustness for JAX/Flax image classifiers.

    from robustjax import attacks
    x_adv = attacks.pgd(logits_fn, x, y, key, eps=0.3, step_size=0.01, num_steps=40)

Subpackages: ``attacks`` (pure functions, no flax), ``data``, ``models``, ``defenses``, ``train``, ``xla``,
``evaluate`` and ``experiment`` (the only place that wires them together).
"""

__version__ = "0.1.0"
