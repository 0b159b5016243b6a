"""PGN: adversarial training with a perturbation generator network ("Adversarial Training with
Perturbation Generator Networks", anonymous ICLR submission; L2 throughout).

    defense = pgn.make(config, info, steps_per_epoch)      # configs/pgn_cifar10.py, pgn_cifar100.py
    state = defense.init(key, batch)                       # {"classifier": TrainState, "generator": TrainState}
    logits_fn = defense.classifier(state)                  # F alone, eval mode, EMA weights: what is deployed

Two networks play the minimax game of Eq. 4:

- ``classifier`` F (``config.model``; the paper's is ``pgn_convpool_cnn``, Table 1), the deployed model.
- ``generator`` G (:class:`robustjax.models.pgn_generator.PerturbationGenerator`, Table 1), which sees the
  gradient image ``grad = d F(x)_y / dx`` (the gradient of the classifier's softmax **probability of the
  true class**, Sec. 3.1, not of its loss), the image ``x`` and the label ``y``, and outputs a perturbation
  in tanh space. Eq. 5 turns it into an image inside the box::

      x_adv = (tanh(atanh(2x - 1) + G(grad, x, y)) + 1) / 2                      (:func:`to_adversarial`)

  G maximises ``J = mean CE(F(x_adv), y) - c_L * mean ||p||_2^2`` (Eq. 4; ``p`` below); F minimises
  ``(1 - adv_coeff) CE(F(x), y) + adv_coeff CE(F(x_adv), y)`` (Table 1's "adv coefficient 1.0": the
  generated examples only).

One training step (``pgn`` phase), on a batch ``(x, y)``:

1. ``grad`` = the true-class probability gradient of F (current parameters, eval mode), one backward pass
   (:func:`true_class_probability_grad`).
2. ``g_steps`` optimizer steps of G on ``-J`` with F fixed (default 1).
3. ``x_adv`` from the updated G, held fixed (``stop_gradient``: F learns from the generated examples as
   data, as in every adversarial training; no gradient flows through G or the gradient image into F),
   and one optimizer step of F.

Choices where the paper is silent or ambiguous, and why:

- **Which norm Eq. 4 penalises** (``penalty``, default ``"pixel"``): Eq. 4 writes the attack as
  ``x + G`` and penalises ``||G||^2``, but Eq. 5 then applies G in tanh space, where it is not the change
  of the image. We penalise the applied perturbation ``p = x_adv - x`` (pixel units): it is the ``delta``
  of Appendix A's derivation (``Loss(x + delta) - c_L ||delta||^2``, the Gaussian on ``||delta||_2``), the
  quantity ``x + G`` stands for in Eq. 4, and what every L2 number of the evaluation measures.
  ``penalty="tanh"`` is the literal reading (``p = G``); it makes a pixel near 0 or 1 expensive to move
  (``dx_adv/dG = 2 x (1 - x)`` there), so saturated pixels are nearly frozen. Both are a sum over the
  image's pixels, averaged over the batch.
- **atanh at x = 0 or 1**: ``2x - 1`` is clipped into ``[-1 + TANH_CLIP, 1 - TANH_CLIP]`` with
  ``TANH_CLIP = 1e-6`` (``|atanh| <= 7.25``) before atanh, and Eq. 5 is evaluated as ``x + (tanh(w + G)
  - tanh(w)) / 2`` with ``w = atanh(clip(2x - 1))``: equal to Eq. 5 up to ``TANH_CLIP / 2`` in pixel
  value, exactly the identity for ``G = 0`` (also at 0 and 1), and always inside ``[0, 1]`` (a final clip
  absorbs float rounding only). Other pixel boxes are mapped to [0, 1] and back.
- **G / F update ratio** (``g_steps``, default 1): one G step, then one F step, on every batch. The paper
  says only that the two networks "are alternately trained"; one-to-one alternation is the GAN default it
  follows, and it is what its timings imply: a PGN epoch costs about 2x an FGM-AT epoch (52 vs 25 s, Table
  3), which is one gradient image plus one G step (a forward and backward pass of F and G) plus one F step,
  not several G steps.
- **Which F the generator attacks**: the current parameters (not the EMA), in eval mode (the deployed
  mode; the paper's classifier has no dropout or BatchNorm, so the modes agree there). G and the gradient
  image are not shared with the evaluation: the deployed model is F alone, attacked end to end.
- **EMA** (``config.train.ema_decay``, 0.998 in Table 1): kept for F, whose averaged weights are
  deployed; G needs none (it never leaves training). It warms up (``TrainState``: the decay is
  ``min(0.998, (1 + t) / (10 + t))`` at update t; the paper does not say, and its 200 epochs make the
  difference vanish), so that a CPU-sized run does not deploy part of its random initialisation.
- **Loss**: the softmax cross-entropy (Appendix A: ``Loss = log 1/F(x)_y``).

Config (``config.defense``, ``FIELDS``): ``c_l`` (c_L of Eq. 4, 50 in Tables 2-3), ``penalty``
("pixel" | "tanh"), ``adv_coeff`` (weight of the adversarial term in F's loss), ``g_steps``,
``generator_width``. Optimizers: ``config.train.optimizer`` for both networks,
``config.train.optimizers.classifier`` / ``.generator`` to override one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import (
    Defense,
    Phase,
    State,
    TrainState,
    accuracy,
    cross_entropy,
    eval_logits_fn,
)
from robustjax.models.pgn_generator import UPSAMPLE, PerturbationGenerator
from robustjax.types import Array, LogitsFn, Metrics, PRNGKey

PENALTIES = ("pixel", "tanh")
TANH_CLIP = 1e-6  # 2x - 1 is clipped into [-1 + TANH_CLIP, 1 - TANH_CLIP] before atanh

FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(),
    "c_l": fields.Field(50.0, fields.number(0.0), "c_L of Eq. 4: the weight of the perturbation's squared L2 norm"),
    "penalty": fields.Field("pixel", fields.choice(*PENALTIES),
                            "what Eq. 4 penalises: 'pixel' (x_adv - x) or 'tanh' (G itself)"),
    "adv_coeff": fields.Field(1.0, fields.number(0.0, 1.0),
                              "F's loss: (1 - adv_coeff) CE(clean) + adv_coeff CE(generated); Table 1: 1.0"),
    "g_steps": fields.Field(1, fields.integer(1), "generator updates per classifier update (same batch)"),
    "generator_width": fields.Field(1.0, fields.number(0.0, lo_open=True),
                                    "multiplier of the generator's hidden sizes (1.0 = Table 1)"),
}
NETWORKS = ("classifier", "generator")


# ----------------------------------------------------------------------------------------------
# The pieces of Eq. 4-5, as pure functions.


def to_adversarial(x: Array, g: Array, bounds: tuple[float, float] = (0.0, 1.0)) -> Array:
    """Eq. 5: ``x_adv = (tanh(atanh(2x - 1) + g) + 1) / 2``, in the pixel box ``bounds``.

    Evaluated as ``x + (tanh(w + g) - tanh(w)) / 2`` with ``w = atanh(clip(2x - 1, -1 + TANH_CLIP,
    1 - TANH_CLIP))`` (see the module docstring): the identity for ``g = 0``, inside ``bounds`` for any
    ``g``, differentiable in ``g``.

    Args:
      x: images ``[B, ...]`` inside ``bounds``.
      g: the generator's output, same shape (tanh-space units).
      bounds: the pixel box ``(lo, hi)``.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    u = (x - lo) / (hi - lo)
    w = jnp.arctanh(jnp.clip(2.0 * u - 1.0, -1.0 + TANH_CLIP, 1.0 - TANH_CLIP))
    change = (jnp.tanh(w + g) - jnp.tanh(w)) / 2.0
    return jnp.clip(x + (hi - lo) * change, lo, hi)


def true_class_probability_grad(logits_fn: LogitsFn, x: Array, y: Array) -> tuple[Array, Array]:
    """``(d F(x)_y / dx, logits)``: the gradient of the softmax probability of the true class (Sec. 3.1's
    ``grad_x F(x; theta)_y``), one row per example, and the logits at ``x``.

    ``logits_fn`` must treat examples independently (eval mode), so the gradient of the batch sum is each
    example's own gradient.
    """

    def total_probability(z):
        logits = logits_fn(z)
        p = jax.nn.softmax(logits, axis=-1)
        return jnp.sum(jnp.take_along_axis(p, y[:, None].astype(jnp.int32), axis=-1)), logits

    grad, logits = jax.grad(total_probability, has_aux=True)(x)
    return grad, logits


def _sq_norm(a: Array) -> Array:
    return jnp.sum(jnp.square(a).reshape(a.shape[0], -1), axis=-1)


def generator_objective(logits_adv: Array, y: Array, x: Array, x_adv: Array, g: Array, c_l: float,
                        penalty: str = "pixel") -> tuple[Array, dict]:
    """``J = mean CE(F(x_adv), y) - c_l * mean ||p||_2^2`` (Eq. 4, what G maximises) and its parts.

    ``p`` is ``x_adv - x`` for ``penalty="pixel"`` and ``g`` for ``"tanh"``; ``||p||^2`` sums over the
    pixels of each example.
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty {penalty!r} is not one of {PENALTIES}")
    ce = cross_entropy(logits_adv, y)
    sq = _sq_norm(x_adv - x) if penalty == "pixel" else _sq_norm(g)
    pen = jnp.mean(sq)
    return ce - c_l * pen, {"ce_adv_g": ce, "penalty": pen}


def classifier_objective(logits_clean: Array | None, logits_adv: Array, y: Array, adv_coeff: float) -> Array:
    """``(1 - adv_coeff) CE(F(x), y) + adv_coeff CE(F(x_adv), y)`` (what F minimises)."""
    loss = adv_coeff * cross_entropy(logits_adv, y)
    if adv_coeff < 1.0:
        loss = loss + (1.0 - adv_coeff) * cross_entropy(logits_clean, y)
    return loss


# ----------------------------------------------------------------------------------------------
# The defense.


def _fail(field: str, problem: str) -> None:
    raise ValueError(f"{field}: {problem}")


def read_config(config) -> dict[str, Any]:
    """``config.defense`` with PGN's defaults filled in, checked; raises ValueError naming the field."""
    return fields.read(config.defense, FIELDS, "config.defense")


@dataclasses.dataclass(frozen=True)
class Parts:
    """The pieces ``make`` assembles, exposed for tests and for the results script.

    Attributes:
      classifier_module, generator: the F and G modules.
      hparams: the checked ``config.defense``.
      init: ``(key, batch) -> state``.
      gradient_image: ``(state, x, y) -> (grad, logits)``: F's true-class probability gradient (current
        parameters, eval mode).
      generate: ``(gen_params, state, x, y, grad) -> (x_adv, g)``: Eq. 5 with G's output ``g``.
      objective: ``(state, gen_params, x, y, grad) -> (J, parts)``: Eq. 4's value for G's parameters.
      g_step: ``(state, x, y, grad, key) -> (state, metrics)``: one G update (F unchanged).
      f_step: ``(state, x, y, x_adv, key) -> (state, metrics)``: one F update (G unchanged).
      pgn_step: the ``pgn`` phase's train step.
      classifier: ``state -> (x -> logits)``: F in eval mode (EMA weights when kept).
      num_steps: length of the ``pgn`` phase.
    """

    classifier_module: Any
    generator: Any
    hparams: dict
    init: Callable[[PRNGKey, Any], State]
    gradient_image: Callable[..., tuple[Array, Array]]
    generate: Callable[..., tuple[Array, Array]]
    objective: Callable[..., tuple[Array, dict]]
    g_step: Callable[..., tuple[State, Metrics]]
    f_step: Callable[..., tuple[State, Metrics]]
    pgn_step: Callable[..., tuple[State, Metrics]]
    classifier: Callable[[State], LogitsFn]
    num_steps: int


def build(config, info, steps_per_epoch: int) -> Parts:
    """Builds PGN's networks, optimizers and steps from ``config`` (see the module docstring)."""
    hp = read_config(config)
    h, w = int(info.image_shape[0]), int(info.image_shape[1])
    if h % UPSAMPLE or w % UPSAMPLE:
        _fail("config.data", f"PGN's generator (Table 1) upsamples a dense map twice by 2, so image height and "
              f"width must be multiples of {UPSAMPLE}; {info.name} images are {h}x{w}")
    bounds = (float(info.bounds[0]), float(info.bounds[1]))
    c_l, penalty, adv_coeff = float(hp["c_l"]), hp["penalty"], float(hp["adv_coeff"])
    g_steps = int(hp["g_steps"])
    num_steps = common.train_num_steps(config, steps_per_epoch)
    classifier_module, init_classifier = supervised.classifier_network(config, info, steps_per_epoch, num_steps)
    generator = PerturbationGenerator(num_classes=int(info.num_classes), width=float(hp["generator_width"]))
    tx_g = common.optimizer_for(config, "generator", steps_per_epoch, num_steps * g_steps)

    def init(key, batch):
        k_f, k_g = jax.random.split(key)
        x = jnp.asarray(batch["image"])
        y = jnp.asarray(batch["label"]).astype(jnp.int32)
        params = generator.init(k_g, jnp.zeros_like(x), x, y)["params"]
        gen = TrainState.create(apply_fn=generator.apply, params=params, tx=tx_g)
        return {"classifier": init_classifier(k_f, x), "generator": gen}

    def current_logits_fn(state) -> LogitsFn:
        f = state["classifier"]
        return eval_logits_fn(f, f.params)  # the parameters being trained, eval mode

    def gradient_image(state, x, y):
        return true_class_probability_grad(current_logits_fn(state), x, y)

    def generate(gen_params, state, x, y, grad):
        g = state["generator"].apply_fn({"params": gen_params}, grad, x, y)
        return to_adversarial(x, g, bounds), g

    def objective(state, gen_params, x, y, grad):
        x_adv, g = generate(gen_params, state, x, y, grad)
        logits_adv = current_logits_fn(state)(x_adv)
        value, parts = generator_objective(logits_adv, y, x, x_adv, g, c_l, penalty)
        l2 = jnp.sqrt(_sq_norm(x_adv - x))
        return value, {**parts, "l2_pixel": jnp.mean(l2), "g_norm": jnp.mean(jnp.sqrt(_sq_norm(g))),
                       "acc_adv_g": accuracy(logits_adv, y)}

    def g_step(state, x, y, grad, key):
        del key  # G is deterministic
        gen = state["generator"]

        def loss_fn(params):
            value, parts = objective(state, params, x, y, grad)
            return -value, parts

        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(gen.params)
        gen = gen.apply_gradients(grads=grads)
        return {**state, "generator": gen}, {"objective_g": -loss, **parts}

    def f_step(state, x, y, x_adv, key):
        x_adv = jax.lax.stop_gradient(x_adv)

        def objective_f(apply, params, batch_stats, batch, x_adv_, k):
            k_adv, k_clean = jax.random.split(k)
            logits_adv, batch_stats = apply(params, batch_stats, x_adv_, k_adv)
            logits_clean = None
            if adv_coeff < 1.0:
                logits_clean, batch_stats = apply(params, batch_stats, batch["image"], k_clean)
            loss = classifier_objective(logits_clean, logits_adv, batch["label"], adv_coeff)
            return loss, batch_stats, {"ce_adv": cross_entropy(logits_adv, batch["label"]),
                                       "acc_adv": accuracy(logits_adv, batch["label"])}

        f, metrics = supervised.update(state["classifier"], objective_f, {"image": x, "label": y}, x_adv, key)
        return {**state, "classifier": f}, {"loss_f": metrics.pop("loss"), **metrics}

    def pgn_step(state, batch, key):
        x, y = batch["image"], batch["label"].astype(jnp.int32)
        k_g, k_f = jax.random.split(key)
        grad, clean_logits = gradient_image(state, x, y)
        g_metrics = {}
        for i in range(g_steps):
            state, g_metrics = g_step(state, x, y, grad, jax.random.fold_in(k_g, i))
        x_adv, _ = generate(state["generator"].params, state, x, y, grad)
        state, f_metrics = f_step(state, x, y, x_adv, k_f)
        grad_norm = jnp.mean(jnp.sqrt(_sq_norm(grad)))
        return state, {**g_metrics, **f_metrics, "acc_clean": accuracy(clean_logits, y), "grad_norm": grad_norm}

    def classifier(state):
        return eval_logits_fn(state["classifier"])

    return Parts(classifier_module=classifier_module, generator=generator, hparams=hp, init=init,
                 gradient_image=gradient_image, generate=generate, objective=objective, g_step=g_step,
                 f_step=f_step, pgn_step=pgn_step, classifier=classifier, num_steps=num_steps)


def make(config, info, steps_per_epoch: int) -> Defense:
    """PGN as a :class:`Defense`: one phase, ``pgn``; the deployed classifier is F alone."""
    parts = build(config, info, steps_per_epoch)
    return Defense(name="pgn", init=parts.init, phases=(Phase("pgn", parts.num_steps, parts.pgn_step),),
                   classifier=parts.classifier, networks=NETWORKS)


# ----------------------------------------------------------------------------------------------
# The paper's comparison rows (Tables 2-3) as configs.

BASELINES = ("naive", "fgm_at", "pgd_at")


def baseline_config(config, method: str, eps: float = 0.1, pgd_steps: int = 10):
    """A comparison row of Tables 2-3 for a PGN config: the same data, classifier, optimizer, EMA, budget
    and evaluation, trained by

    - ``"naive"``: plain training (``standard``);
    - ``"fgm_at"``: Goodfellow et al.'s adversarial training with the L2 fast gradient method of radius
      ``eps`` (the ``fgm_at`` defense, ``alpha`` 0);
    - ``"pgd_at"``: Madry et al.'s L2 PGD-AT, ``pgd_steps`` steps (Table 1: 10) of ``0.25 * eps``
      (2.5 eps / 10: Madry's rule; Table 1 gives no step size; relative, so an eps sweep scales it) from a
      random start.

    Table 1's "adv coefficient 1.0" holds for both: adversarial examples only (``adv_fraction`` 1).
    Returns a new config (``config`` is not changed).
    """
    if method not in BASELINES:
        raise ValueError(f"baseline method {method!r} is not one of {BASELINES}")
    c = config.copy_and_resolve_references()
    if method == "naive":
        c.defense = {"name": "standard"}
    elif method == "fgm_at":
        c.defense = {"name": "fgm_at", "attack": {"attack": "fgm", "eps": float(eps), "norm": "l2"},
                     "alpha": 0.0, "adv_fraction": 1.0}
    else:
        c.defense = {"name": "pgd_at", "adv_fraction": 1.0,
                     "attack": {"attack": "pgd", "eps": float(eps), "norm": "l2", "num_steps": int(pgd_steps),
                                "rel_step_size": 2.5 / int(pgd_steps), "random_start": True}}
    optimizers = c.train.optimizers
    if "classifier" in optimizers:
        c.train.optimizer = fields.plain(optimizers.classifier)
    c.train.optimizers = {}
    return c


__all__ = [
    "BASELINES",
    "FIELDS",
    "NETWORKS",
    "PENALTIES",
    "Parts",
    "TANH_CLIP",
    "baseline_config",
    "build",
    "classifier_objective",
    "generator_objective",
    "make",
    "read_config",
    "to_adversarial",
    "true_class_probability_grad",
]
