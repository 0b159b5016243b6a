"""AutoAttack (Croce and Hein, 2020): a fixed ensemble of parameter-free attacks, as one pure function.

    from robustjax import attacks
    aa = jax.jit(lambda x, y, k: attacks.autoattack(logits_fn, x, y, k, eps=8 / 255, norm="linf"))
    robust_acc = jnp.mean(jnp.argmax(logits_fn(aa(x, y, key)), -1) == y)

The components run in order; each example is attacked only while it is still classified correctly: a
``robust`` mask is carried from component to component, an example's adversarial point is the first one
that fools the model, and a component whose batch has no robust example left is skipped (``lax.cond``).
Without ``chunk_size`` the whole batch is computed inside one component (XLA shapes are static) and the
mask selects. With ``chunk_size`` (issue #11) only what is left is attacked, re-selected before every
component, every APGD-T/FAB-T target, and for Square every query, as the reference implementation does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from robustjax.attacks import core
from robustjax.attacks.apgd import apgd, apgd_live
from robustjax.attacks.fab import fab, fab_live
from robustjax.attacks.square import square, square_live
from robustjax.types import Array, LogitsFn, PRNGKey

COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}


def _component(name: str, version: str, *, norm, num_steps, num_queries, num_targets, restarts, stochastic,
               bounds):
    """``(logits_fn, x, y, key, eps=...) -> x_adv`` for one named component with the version's settings."""
    plus = version == "plus"
    eot_iter = 20 if (version == "rand" and stochastic) else 1  # EOT draws of a deterministic model are equal
    many = restarts if restarts is not None else (5 if plus else 1)
    common = dict(norm=norm, bounds=bounds)
    if name == "apgd-ce":
        kw = dict(loss="ce", num_steps=num_steps, restarts=many, eot_iter=eot_iter, stochastic=stochastic)
        return functools.partial(apgd, **common, **kw)
    if name == "apgd-dlr":
        kw = dict(loss="dlr", num_steps=num_steps, restarts=many, eot_iter=eot_iter, stochastic=stochastic)
        return functools.partial(apgd, **common, **kw)
    if name == "apgd-t":
        kw = dict(loss="dlr_targeted", num_steps=num_steps, num_targets=num_targets,
                  restarts=restarts or 1)
        return functools.partial(apgd, **common, **kw)
    if name == "fab":
        return functools.partial(fab, **common, num_steps=num_steps, restarts=many)
    if name == "fab-t":
        return functools.partial(fab, **common, num_steps=num_steps, num_targets=num_targets,
                                 restarts=restarts or 1)
    if name == "square":
        return functools.partial(square, **common, num_queries=num_queries, restarts=restarts or 1)
    raise ValueError(f"autoattack: unknown component {name!r}; valid names are {list(COMPONENTS)}.")


def _live_component(name: str, version: str, *, norm, num_steps, num_queries, num_targets, restarts, stochastic,
                    bounds, num_classes, plain_logits_fn, chunk_size):
    """``(logits_fn, x, y, key, eps, live) -> x_adv`` for one component in the chunked mode: it attacks
    only ``live`` examples and, before each target/restart (and, for Square, each query), only those still
    left (see ``apgd_live``, ``fab_live``, ``square_live``)."""
    plus = version == "plus"
    eot_iter = 20 if (version == "rand" and stochastic) else 1
    many = restarts if restarts is not None else (5 if plus else 1)
    if name.startswith("apgd"):
        loss = {"apgd-ce": "ce", "apgd-dlr": "dlr", "apgd-t": "dlr_targeted"}[name]
        kw = dict(norm=norm, num_steps=num_steps, loss=loss, restarts=(restarts or 1) if name == "apgd-t" else many,
                  num_targets=num_targets, num_classes=num_classes, rho=0.75, momentum=0.75, targeted=False,
                  eot_iter=1 if name == "apgd-t" else eot_iter, stochastic=stochastic and name != "apgd-t",
                  bounds=bounds)
        return lambda lf, x, y, k, eps, live: apgd_live(lf, plain_logits_fn, k, x, y, eps, live, chunk_size, **kw)
    if name in ("fab", "fab-t"):
        kw = dict(norm=norm, num_steps=num_steps, restarts=many if name == "fab" else (restarts or 1),
                  num_targets=num_targets if name == "fab-t" else None, bounds=bounds)
        return lambda lf, x, y, k, eps, live: fab_live(lf, k, x, y, eps, live, chunk_size, **kw)
    if name == "square":
        kw = dict(norm=norm, num_queries=num_queries, restarts=restarts or 1, bounds=bounds)
        return lambda lf, x, y, k, eps, live: square_live(lf, k, x, y, eps, live, chunk_size, **kw)
    raise ValueError(f"autoattack: unknown component {name!r}; valid names are {list(COMPONENTS)}.")


def autoattack(
    logits_fn: LogitsFn,
    x: Array,
    y: Array,
    key: PRNGKey,
    *,
    eps: float | Array,
    norm: str = "linf",
    version: str = "standard",
    attacks: tuple[str, ...] | None = None,
    num_steps: int = 100,
    num_queries: int = 5000,
    num_targets: int = 9,
    restarts: int | None = None,
    stochastic: bool = False,
    chunk_size: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> Array:
    """AutoAttack: APGD-CE, APGD-T, FAB-T and Square (``version="standard"``), each on what is left.

    Versions (as in the reference implementation):
      * ``"standard"``: APGD-CE (1 run), APGD-T (DLR-targeted, ``num_targets`` targets), FAB-T
        (``num_targets`` targets), Square (``num_queries`` queries).
      * ``"plus"``: APGD-CE and APGD-DLR (5 restarts each), FAB (untargeted, 5 restarts), Square,
        APGD-T, FAB-T.
      * ``"rand"`` (randomised defenses): APGD-CE and APGD-DLR with 20 EOT draws per gradient; pass
        ``stochastic=True`` and a ``logits_fn(x, key)`` for the draws to differ (with a deterministic
        ``logits_fn`` the draws would all be equal, so a single one is used).

    With ``K`` classes, the targeted components use ``min(num_targets, K - 1)`` targets; APGD-DLR needs
    ``K >= 3`` and APGD-T ``K >= 4``.

    Args:
      logits_fn: ``x -> logits [B, K]`` (``(x, key) -> logits`` when ``stochastic``).
      x: clean images ``[B, H, W, C]`` inside ``bounds`` (Square needs NHWC images).
      y: true labels ``[B]`` (AutoAttack is untargeted).
      key: PRNG key; a component uses ``fold_in(key, COMPONENTS.index(name))``, so it draws the same
        randomness alone (``attacks=(name,)``) as inside an ensemble: the ensemble's robust accuracy is
        then never above any of its components'.
      eps: finite radius, scalar or ``[B]``.
      norm: ``"linf"`` or ``"l2"`` (static).
      version: ``"standard"``, ``"plus"`` or ``"rand"`` (static).
      attacks: explicit component list overriding the version's, from ``COMPONENTS`` (static).
      num_steps: iterations of the APGD and FAB components (100 in the paper; lower it for quick checks).
      num_queries: Square's query budget (5000 in the paper).
      num_targets: target classes of APGD-T and FAB-T (9 in the paper).
      restarts: override every component's number of restarts (default: the version's).
      stochastic: the model is randomised (only the APGD components support it).
      chunk_size: ``None`` (default) runs every component on the whole batch and skips it only when no
        example is left. An int attacks, like the reference implementation, only what is left: before
        every component, every target/restart of APGD-T and FAB-T, the still-robust examples are
        re-selected, sorted first and attacked in chunks of this size (``lax.map``; a smaller size from
        ``core.chunk_buckets`` when few are left), chunks without one are skipped; Square stops querying
        an example once it is fooled and a chunk once all are (``square_live``). The random draws then
        depend on the order, so the result differs from the unchunked one (not its strength); and FAB-T
        does not refine, with later targets, a point already found within ``eps`` (static).
      bounds: pixel range ``(lo, hi)``.

    Returns:
      ``stop_gradient`` of the adversarial batch: for each example, the first component's point that fools
      the model, or ``x`` if none does.
    """
    if version not in VERSIONS:
        raise ValueError(f"autoattack: unknown version {version!r}; valid choices are {sorted(VERSIONS)}.")
    core.validate_norm(norm, ("linf", "l2"))
    if isinstance(attacks, str):
        raise ValueError(f"autoattack: attacks must be a sequence of component names, e.g. ({attacks!r},), "
                         f"got the string {attacks!r}.")
    names = tuple(attacks) if attacks is not None else VERSIONS[version]
    if not names:
        raise ValueError("autoattack: attacks must name at least one component.")
    for name in names:
        if name not in COMPONENTS:
            raise ValueError(f"autoattack: unknown component {name!r}; valid names are {list(COMPONENTS)}.")
    if stochastic and any(n not in ("apgd-ce", "apgd-dlr") for n in names):
        raise ValueError("autoattack: stochastic=True is supported by apgd-ce and apgd-dlr only "
                         "(version='rand' or attacks=('apgd-ce', 'apgd-dlr')).")
    num_steps = core.validate_count(num_steps, "num_steps", "autoattack")
    num_queries = core.validate_count(num_queries, "num_queries", "autoattack")
    num_targets = core.validate_count(num_targets, "num_targets", "autoattack")
    restarts = core.validate_count(restarts, "restarts", "autoattack", allow_none=True)
    chunk_size = core.validate_count(chunk_size, "chunk_size", "autoattack", allow_none=True)
    if key is None:
        raise ValueError("autoattack: needs a PRNG key (random starts), got None; e.g. jax.random.key(0).")
    key, key_eval = jax.random.split(key)
    plain_logits_fn = (lambda x_: logits_fn(x_, key_eval)) if stochastic else logits_fn  # noqa: E731
    core.check_attack_inputs("autoattack", plain_logits_fn, x, y, eps=eps, bounds=bounds, finite_eps=True)
    y = y.astype(jnp.int32)

    batch = x.shape[0]
    eps_b = jnp.broadcast_to(jnp.asarray(eps, x.dtype), (batch,))
    chunked = chunk_size is not None and chunk_size < batch

    logits0 = plain_logits_fn(x)
    robust = jnp.argmax(logits0, axis=-1) == y
    x_adv = x
    for name in names:
        if chunked:
            live_attack = _live_component(
                name, version, norm=norm, num_steps=num_steps, num_queries=num_queries, num_targets=num_targets,
                restarts=restarts, stochastic=stochastic, bounds=bounds, num_classes=logits0.shape[-1],
                plain_logits_fn=plain_logits_fn, chunk_size=chunk_size)
            k = jax.random.fold_in(key, COMPONENTS.index(name))
            x_new = jax.lax.cond(jnp.any(robust), lambda r, k=k, f=live_attack: f(logits_fn, x, y, k, eps_b, r),
                                 lambda r: x, robust)
            fooled = jnp.argmax(plain_logits_fn(x_new), axis=-1) != y
            newly = robust & fooled
            x_adv = jnp.where(core.per_example(newly, x), x_new, x_adv)
            robust = robust & ~fooled
            continue
        attack = _component(name, version, norm=norm, num_steps=num_steps, num_queries=num_queries,
                            num_targets=num_targets, restarts=restarts, stochastic=stochastic, bounds=bounds)
        k = jax.random.fold_in(key, COMPONENTS.index(name))

        def run(k_, operand, live_, attack=attack):
            x_, y_, eps_ = operand
            x_new = attack(logits_fn, x_, y_, k_, eps=eps_)
            return x_new, jnp.argmax(plain_logits_fn(x_new), axis=-1) != y_

        def skip(operand, live_):
            return operand[0], jnp.zeros(live_.shape, bool)

        x_new, fooled = jax.lax.cond(jnp.any(robust), lambda o: run(k, o, robust), lambda o: skip(o, robust),
                                     (x, y, eps_b))
        newly = robust & fooled
        x_adv = jnp.where(core.per_example(newly, x), x_new, x_adv)
        robust = robust & ~fooled
    return core.finish(x_adv, bounds)
