"""Papernot et al.'s Jacobian-based Saliency Map Attack (JSMA), pairs of features, inside XLA.

    from robustjax import attacks
    x_adv = attacks.jsma(logits_fn, x, targets, key, theta=1.0, gamma=0.1, targeted=True)
    reached = jnp.argmax(logits_fn(x_adv), -1) == targets

A feature is one scalar of an example (a pixel channel). Each iteration changes the pair of features with
the largest saliency by ``theta`` and removes them from the search domain, until the example reaches its
goal or ``gamma`` of its features have been changed. The pair search is ``O(n^2)`` in memory per example
(``n`` features), computed in chunks of examples (``pair_chunk``) to bound the memory.

Two options give the variant of the Adversarial Robustness Toolbox's early ``SaliencyMapMethod`` (ART 0.x,
the library of Zantedeschi et al., whose JSMA numbers use it): ``saliency="target_probability"`` picks the
two features with the largest gradient of the target's softmax probability (no pair conditions; ``O(n)``),
and ``reuse_features=True`` keeps a changed feature in the domain until it reaches the box, so a small
``theta`` can push it again (``gamma`` then bounds the fraction of distinct features changed).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from robustjax.attacks import core, xla_cpu
from robustjax.types import Array, LogitsFn, PRNGKey

TARGET_CHOICES = ("random", "next")
SALIENCY_CHOICES = ("pairs", "target_probability")


def _pick_targets(y: Array, num_classes: int, key: PRNGKey, target: str) -> Array:
    """A class different from ``y``: uniformly random, or ``(y + 1) mod K``."""
    if target == "next":
        return (y + 1) % num_classes
    offset = jax.random.randint(key, y.shape, 1, num_classes)
    return (y + offset) % num_classes


def _best_pairs(alpha: Array, beta: Array, domain: Array, increase: bool) -> tuple[Array, Array, Array]:
    """The most salient pair of features for one example.

    Args:
      alpha: ``[n]`` gradient of the target logit.
      beta: ``[n]`` gradient of the sum of the other logits.
      domain: ``[n]`` features that may still change.
      increase: ``theta > 0`` (raise features) or lower them.

    Returns:
      ``(p, q, found)``: the two feature indices and whether any pair satisfies the saliency conditions.
    """
    n = alpha.shape[0]
    a = alpha[:, None] + alpha[None, :]
    b = beta[:, None] + beta[None, :]
    if increase:
        valid = (a > 0) & (b < 0)
    else:
        valid = (a < 0) & (b > 0)
    valid = valid & domain[:, None] & domain[None, :] & ~jnp.eye(n, dtype=bool)
    score = jnp.where(valid, -a * b, -jnp.inf)  # = |a| * |b| on valid pairs
    flat = jnp.argmax(score.reshape(-1))
    return flat // n, flat % n, jnp.any(valid)


def jsma(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey | None = None,
    *,
    theta: float = 1.0,
    gamma: float = 0.1,
    targeted: bool = False,
    target: str = "random",
    pair_chunk: int | None = None,
    saliency: str = "pairs",
    reuse_features: bool = False,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """Jacobian saliency map attack with feature pairs (Papernot et al., 2016).

    For the target class ``t`` let ``alpha = d z_t / dx`` and ``beta = d (sum_{j != t} z_j) / dx``
    (logits, as in CleverHans). Over pairs ``(p, q)`` of features still in the search domain, with
    ``a = alpha_p + alpha_q`` and ``b = beta_p + beta_q``, the pair maximising ``a * |b|`` subject to
    ``a > 0, b < 0`` (``theta > 0``; signs flipped for ``theta < 0``) is changed by ``theta`` (clipped to
    the box) and removed from the domain. The domain starts as the features that can still move in the
    ``theta`` direction. An example stops when it reaches its goal, when no pair qualifies, or after
    ``floor(gamma * n / 2)`` iterations (``n`` features per example).

    ``saliency="target_probability"`` (ART 0.x's ``SaliencyMapMethod``) instead changes the two features of
    the domain with the largest gradient of the target's softmax probability (the smallest for
    ``theta < 0``), whatever its sign: one gradient per iteration, no ``n x n`` search. With
    ``reuse_features=True`` (ART's rule) a feature leaves the domain only when it reaches the box, and an
    example stops when it reaches its goal, when its domain is empty, or once more than ``gamma * n``
    distinct features have changed (checked before each iteration, as ART does), within at most
    ``n * ceil((hi - lo) / |theta|)`` iterations.

    JSMA is a targeted method. With ``targeted=True``, ``y`` are the targets. With ``targeted=False``
    (the library-wide default), ``y`` are the true labels, a target is chosen per example
    (``target="random"``: uniform over the other classes, using ``key``; ``"next"``: ``(y + 1) mod K``)
    and the example stops as soon as it is misclassified (as any class).

    Args:
      logits_fn: ``x -> logits [B, K]``.
      x: clean images ``[B, ...]`` inside ``bounds``.
      y: true labels ``[B]``, or targets when ``targeted``.
      key: PRNG key (used only for ``target="random"`` when untargeted; may be ``None`` otherwise).
      theta: change applied to each selected feature (pixel units; ``1.0`` saturates ``[0, 1]`` images).
      gamma: maximum fraction of features changed, in ``(0, 1]`` (static).
      targeted: ``y`` are targets.
      target: how untargeted mode picks its target: ``"random"`` or ``"next"`` (static).
      pair_chunk: examples whose ``n x n`` pair scores are computed at once (static); default keeps
        each chunk near 2^24 scores.
      saliency: ``"pairs"`` (Papernot et al., CleverHans) or ``"target_probability"`` (ART 0.x) (static).
      reuse_features: a changed feature stays in the domain until it reaches the box (ART) (static).
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch (the last iterate; check success with the logits).
    """
    pair_chunk = core.validate_count(pair_chunk, "pair_chunk", "jsma", allow_none=True)
    num_classes = core.check_attack_inputs("jsma", logits_fn, x, y, bounds=bounds)
    if num_classes < 2:
        raise ValueError(f"jsma: the logits must have at least 2 classes, got {num_classes}.")
    if target not in TARGET_CHOICES:
        raise ValueError(f"jsma: target must be one of {list(TARGET_CHOICES)}, got {target!r}.")
    if (not isinstance(theta, (int, float)) or isinstance(theta, bool) or theta == 0
            or not math.isfinite(theta)):
        raise ValueError(f"jsma: theta must be a non-zero Python number (its sign is static), got {theta!r}.")
    if not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"jsma: gamma must be a number in (0, 1], got {gamma!r}.")
    if saliency not in SALIENCY_CHOICES:
        raise ValueError(f"jsma: saliency must be one of {list(SALIENCY_CHOICES)}, got {saliency!r}.")
    if not isinstance(reuse_features, bool):
        raise ValueError(f"jsma: reuse_features must be True or False, got {reuse_features!r}.")
    if not targeted and target == "random" and key is None:
        raise ValueError("jsma: untargeted mode with target='random' needs a PRNG key (or use target='next').")
    lo, hi = bounds
    y = y.astype(jnp.int32)
    batch = x.shape[0]
    n = math.prod(x.shape[1:])
    if reuse_features:   # every iteration moves two features by |theta| (or saturates one of them)
        max_iters = n * max(int(math.ceil((hi - lo) / abs(theta))), 1)
    else:
        max_iters = max(int(math.floor(gamma * n / 2)), 1)
    increase = theta > 0
    goal = y if targeted else _pick_targets(y, num_classes, key, target)
    if pair_chunk is None:
        pair_chunk = max(1, (1 << 24) // (n * n))
    pair_chunk = min(pair_chunk, batch)

    def grads(xf):
        def f(xf_):
            z = logits_fn(xf_.reshape(x.shape))
            z_t = jnp.take_along_axis(z, goal[:, None], axis=-1)[:, 0]
            return jnp.stack([z_t, jnp.sum(z, axis=-1) - z_t]), z  # [2, B]

        out, vjp_fn, z = jax.vjp(f, xf, has_aux=True)
        cot = jnp.eye(2, dtype=out.dtype)[:, :, None] * jnp.ones_like(out)[None]
        ab = jax.vmap(lambda c: vjp_fn(c)[0])(cot)  # [2, B, n]
        return z, ab[0], ab[1]

    def target_probability_grads(xf):
        def f(xf_):
            z = logits_fn(xf_.reshape(x.shape))
            p_t = jnp.take_along_axis(jax.nn.softmax(z, axis=-1), goal[:, None], axis=-1)[:, 0]
            return jnp.sum(p_t), z

        g, z = jax.grad(f, has_aux=True)(xf)
        return z, g

    def top_two(g, domain):
        score = jnp.where(domain, g if increase else -g, -jnp.inf)
        _, idx = jax.lax.top_k(score, 2)
        return idx[:, 0], idx[:, 1], jnp.any(domain, axis=-1)

    def done(z):
        pred = jnp.argmax(z, axis=-1)
        return (pred == goal) if targeted else (pred != y)

    def body(carry):
        i, xf, domain, active, touched = carry
        if saliency == "pairs":
            z, alpha, beta = grads(xf)
            p, q, found = jax.lax.map(
                lambda args: _best_pairs(*args, increase=increase), (alpha, beta, domain), batch_size=pair_chunk
            )
        else:
            z, g = target_probability_grads(xf)
            p, q, found = top_two(g, domain)
        active = active & ~done(z) & found
        if reuse_features:   # ART: stop once more than gamma of the features have changed
            active = active & (jnp.sum(touched, axis=-1) <= gamma * n)
        rows = jnp.arange(batch)
        chosen = jnp.zeros((batch, n), bool).at[rows, p].set(True).at[rows, q].set(True)
        chosen = chosen & domain & active[:, None]
        xf = jnp.where(chosen, jnp.clip(xf + theta, lo, hi), xf)
        if reuse_features:
            domain = domain & ((xf < hi) if increase else (xf > lo))
        else:
            domain = domain & ~chosen
        return i + 1, xf, domain, active, touched | chosen

    def cond(carry):
        i, _, _, active, _ = carry
        return (i < max_iters) & jnp.any(active)

    xf0 = x.reshape(batch, n)
    domain0 = (xf0 < hi) if increase else (xf0 > lo)
    init = (jnp.asarray(0), xf0, domain0, jnp.ones((batch,), bool), jnp.zeros((batch, n), bool))
    _, xf, _, _, _ = jax.lax.while_loop(cond, xla_cpu.canonicalize_convs(body), init)
    return core.finish(xf.reshape(x.shape), bounds)
