"""Defense-GAN (Samangouei, Kabkab & Chellappa, "Defense-GAN: Protecting Classifiers Against Adversarial
Attacks Using Generative Models", 2018): classify the projection of the input onto a WGAN generator's range.

    defense = defense_gan.make(config, info, steps_per_epoch)     # configs/defense_gan_mnist.py
    state = defense.init(key, batch)       # {"generator": ..., "critic": ..., "classifier": ...}
    logits = defense.classifier(state)(x, key)     # randomised: C(G(z*)), z* from R random starts

Three networks, one ``TrainState`` each (``config.train.optimizers.generator`` / ``.critic`` /
``.classifier``, each over ``config.train.optimizer``):

- ``generator`` G: ``z ~ N(0, I)`` of ``latent_dim`` -> image (``models.generators.LatentGenerator``).
- ``critic`` D: image -> score (``models.discriminators.WGANCritic``; no BatchNorm).
- ``classifier`` C: ``config.model``.

Phases:

1. ``gan``: WGAN-GP (Gulrajani et al., "Improved Training of Wasserstein GANs", 2017, Algorithm 1) on the
   training images. Each step is one critic iteration on the step's batch ``x``: with ``z ~ N(0, I)``,
   ``x~ = G(z)`` and ``x^ = e x + (1 - e) x~`` (``e ~ U[0, 1]`` per example), the critic minimises
   ``L_D = mean D(x~) - mean D(x) + lambda mean (||grad_x^ D(x^)||_2 - 1)^2`` (:func:`critic_objective`);
   after every ``critic_iters``-th critic iteration the generator takes one step on ``L_G = -mean D(G(z))``
   (:func:`generator_objective`) with a fresh ``z``. The phase is ``gan_epochs`` epochs of critic
   iterations, so G takes ``1 / critic_iters`` as many steps. The classifier never changes here.
2. ``classifier``: ``config.train.epochs`` / ``steps`` of cross-entropy training of C, on the clean
   training images (``classifier_data="clean"``, Defense-GAN's "Orig" variant) or on their projections
   onto G's range (``"reconstructions"``, the "Rec" variant: every batch is projected as at inference,
   which costs ``L x R`` generator passes per batch). G and D never change here.

Inference (:func:`project`): ``R`` codes ``z_0 ~ N(0, I)`` per input; ``L`` steps of Adam (learning rate
``projection_lr``) on ``||G(z) - x||_2^2`` per code, all ``R x B`` codes at once inside one
``lax.fori_loop`` (its body wrapped in ``attacks.canonicalize_convs``: it differentiates through G's
convolutions); the code with the smallest final error wins and ``C(G(z*))`` is the prediction. G runs in
eval mode (BatchNorm running statistics), so every code's error depends on that code alone.

What an attacker sees: the deployed classifier ``(x, key) -> C(G(z*(x, key)))`` is randomised
(``stochastic=True``: the evaluation draws fresh starts for every batch, and APGD with ``"stochastic":
True, "eot_iter": n`` averages its gradients over ``n`` draws: expectation over transformation). The
projection is an inner optimisation whose result is a constant to autodiff (the deployed classifier does
not differentiate through ``L`` unrolled optimiser steps), so the naive attacker (``"adaptive": False``)
gets a zero gradient. The adaptive attacker uses BPDA (Athalye et al.) with the ``surrogate``
(``bpda_gradient_at``): ``"input"``: ``C(x)``, the classifier on the input itself (the projection replaced
by the identity; the gradient of C at ``x``: Defense-GAN's own white-box setting made end to end, and no
extra cost); ``"reconstruction"``: the gradient of C at ``G(z*)`` (the straight-through estimator of
Athalye et al.; it projects a second time per attack step).

Choices made here, and why (the papers do not fix them):

- WGAN-GP rather than weight clipping: BCGAN trains Defense-GAN's generator "with WGAN" and says no more.
  The gradient penalty trains stably with Adam in far fewer steps, which a CPU budget needs; weight
  clipping wants RMSProp at a small learning rate and many more critic iterations. lambda = 10 and 5
  critic iterations per generator step are Gulrajani et al.'s values.
- Adam on ``z`` for the projection (the step does not depend on the scale of the error); ``z`` is not
  projected back onto any ball.
- The classifier trains on clean images by default: it is what Defense-GAN reports as its main setting
  for a given classifier and costs nothing extra; reconstructions are one field away.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from robustjax import attacks
from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import (
    Defense,
    Phase,
    State,
    create_train_state,
    eval_logits_fn,
    eval_variables,
    train_apply,
)
from robustjax.models.discriminators import WGANCritic
from robustjax.models.generators import LatentGenerator, upsamplings
from robustjax.types import Array, Metrics, PRNGKey

CLASSIFIER_DATA = ("clean", "reconstructions")
BPDA_GRADIENT_AT = ("input", "reconstruction")

FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(),
    "latent_dim": fields.Field(128, fields.integer(1), "dimension of G's code z"),
    "generator_width": fields.Field(1.0, fields.number(0.0, lo_open=True), "G's channel multiplier (1: 64 base)"),
    "critic_width": fields.Field(1.0, fields.number(0.0, lo_open=True), "D's channel multiplier (1: 64 base)"),
    "gan_epochs": fields.Field(fields.REQUIRED, fields.number(0.0, lo_open=True),
                               "length of the gan phase in epochs of critic iterations"),
    "critic_iters": fields.Field(5, fields.integer(1), "critic iterations per generator step (WGAN-GP: 5)"),
    "gp_weight": fields.Field(10.0, fields.number(0.0), "lambda of the gradient penalty (WGAN-GP: 10)"),
    "L": fields.Field(fields.REQUIRED, fields.integer(1), "gradient steps of the projection (Defense-GAN's L)"),
    "R": fields.Field(fields.REQUIRED, fields.integer(1), "random starts of the projection (Defense-GAN's R)"),
    "projection_lr": fields.Field(0.05, fields.number(0.0, lo_open=True), "Adam's learning rate on z"),
    "classifier_data": fields.Field("clean", fields.choice(*CLASSIFIER_DATA),
                                    "what C trains on: 'clean' images or their 'reconstructions'"),
    "bpda_gradient_at": fields.Field("input", fields.choice(*BPDA_GRADIENT_AT),
                                     "where the BPDA surrogate takes C's gradient: the 'input' x or the "
                                     "'reconstruction' G(z*)"),
}
NETWORKS = ("generator", "critic", "classifier")


# ----------------------------------------------------------------------------------------------
# The WGAN-GP objectives, from raw critic outputs.


def gradient_penalty(grad_norms: Array) -> Array:
    """``mean (||grad D(x^)||_2 - 1)^2`` over the batch, from the per-example gradient norms ``[B]``."""
    return jnp.mean(jnp.square(grad_norms - 1.0))


def critic_objective(real_scores: Array, fake_scores: Array, grad_norms: Array, gp_weight: float) -> Array:
    """``L_D = mean D(x~) - mean D(x) + gp_weight * gradient_penalty(grad_norms)`` (minimised by D)."""
    return jnp.mean(fake_scores) - jnp.mean(real_scores) + gp_weight * gradient_penalty(grad_norms)


def generator_objective(fake_scores: Array) -> Array:
    """``L_G = -mean D(G(z))`` (minimised by G)."""
    return -jnp.mean(fake_scores)


def critic_input_gradient_norms(critic_fn: Callable[[Array], Array], x_hat: Array) -> Array:
    """``||grad_x D(x^)||_2`` per example (``[B]``). The critic has no batch coupling, so the gradient
    of ``sum D(x^)`` holds every example's own gradient."""
    grads = jax.grad(lambda v: jnp.sum(critic_fn(v)))(x_hat)
    return jnp.sqrt(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=-1) + 1e-12)


# ----------------------------------------------------------------------------------------------
# The projection onto G's range.


class Projection(NamedTuple):
    """What :func:`project` returns.

    Attributes:
      reconstruction: ``G(z*)`` ``[B, H, W, C]``: the best start's output.
      z: ``z*`` ``[B, latent_dim]``.
      errors: ``||G(z_L) - x||_2^2`` of every start after the ``L`` steps, ``[R, B]``.
      initial_errors: the same at the random starts ``z_0``, ``[R, B]``.
      best: the winning start per input, ``[B]``.
    """

    reconstruction: Array
    z: Array
    errors: Array
    initial_errors: Array
    best: Array


def project(generator_fn: Callable[[Array], Array], x: Array, key: PRNGKey, *, latent_dim: int,
            num_steps: int, restarts: int, lr: float) -> Projection:
    """Projects ``x`` onto the range of ``generator_fn`` (Defense-GAN's inference-time optimisation).

    Args:
      generator_fn: ``z [N, latent_dim] -> images [N, H, W, C]``, with no coupling across the batch
        (G in eval mode).
      x: ``[B, H, W, C]`` images.
      key: draws the ``restarts`` starting codes per image, ``z_0 ~ N(0, I)``.
      latent_dim: the code's dimension.
      num_steps: ``L``, Adam steps on every code.
      restarts: ``R``, random starts per image.
      lr: Adam's learning rate.

    Returns:
      A :class:`Projection`; ``reconstruction`` is the output of the start with the smallest final error.
    """
    x = jax.lax.stop_gradient(x)
    b = x.shape[0]
    z0 = jax.random.normal(key, (restarts * b, latent_dim), x.dtype)
    target = jnp.broadcast_to(x[None], (restarts,) + x.shape).reshape((restarts * b,) + x.shape[1:])

    def errors(z):
        out = generator_fn(z)
        return jnp.sum(jnp.square(out - target).reshape(out.shape[0], -1), axis=-1), out

    tx = optax.adam(lr)

    def body(_, carry):
        z, opt_state = carry
        grad = jax.grad(lambda v: jnp.sum(errors(v)[0]))(z)
        updates, opt_state = tx.update(grad, opt_state, z)
        return optax.apply_updates(z, updates), opt_state

    z, _ = jax.lax.fori_loop(0, num_steps, attacks.canonicalize_convs(body), (z0, tx.init(z0)))
    err0, _ = errors(z0)
    err, out = errors(z)
    err, err0 = err.reshape(restarts, b), err0.reshape(restarts, b)
    best = jnp.argmin(err, axis=0)
    rows = jnp.arange(b)
    reconstruction = out.reshape((restarts, b) + x.shape[1:])[best, rows]
    z_best = z.reshape(restarts, b, latent_dim)[best, rows]
    return Projection(reconstruction, z_best, err, err0, best)


# ----------------------------------------------------------------------------------------------
# The defense.


def read_config(config) -> dict[str, Any]:
    """``config.defense`` with Defense-GAN's defaults filled in, checked; raises ValueError naming the field."""
    return fields.read(config.defense, FIELDS, "config.defense")


@dataclasses.dataclass(frozen=True)
class Parts:
    """The pieces ``make`` assembles, exposed for tests.

    Attributes:
      generator, critic: the G and D modules.
      hparams: the checked ``config.defense``.
      init: ``(key, batch) -> state``.
      critic_step: ``(state, x, z, mix, key) -> (state, metrics)``: one critic iteration with the given
        codes ``z`` and interpolation coefficients ``mix`` ``[B]``.
      generator_step: ``(state, z, key) -> (state, metrics)``: one generator step on codes ``z``.
      gan_step: the ``gan`` phase's train step (draws ``z`` and ``mix``; G steps every ``critic_iters``).
      classifier_step: the ``classifier`` phase's train step.
      project: ``(state, x, key) -> Projection`` with G in eval mode and the configured L, R.
      classifier: ``state -> ((x, key) -> logits)``: the deployed, randomised classifier.
      surrogate: ``state -> ((x, key) -> logits)``: the BPDA surrogate.
      gan_steps, classifier_steps: the phases' lengths.
    """

    generator: Any
    critic: Any
    hparams: dict
    init: Callable[[PRNGKey, Any], State]
    critic_step: Callable[..., tuple[State, Metrics]]
    generator_step: Callable[..., tuple[State, Metrics]]
    gan_step: Callable[..., tuple[State, Metrics]]
    classifier_step: Callable[..., tuple[State, Metrics]]
    project: Callable[..., Projection]
    classifier: Callable[[State], Callable]
    surrogate: Callable[[State], Callable]
    gan_steps: int
    classifier_steps: int


def build(config, info, steps_per_epoch: int) -> Parts:
    """Builds Defense-GAN's networks, optimizers and steps from ``config`` (see the module docstring)."""
    hp = read_config(config)
    shape = tuple(int(v) for v in info.image_shape)
    if len(shape) != 3:
        raise ValueError(f"config.defense.name: defense_gan needs image data [H, W, C]; {info.name} has "
                         f"examples of shape {shape}")
    try:
        upsamplings(shape[0], shape[1])
    except ValueError as e:
        raise ValueError(f"config.data: {e}") from None
    bounds = (float(info.bounds[0]), float(info.bounds[1]))
    latent_dim, n_critic, gp_weight = int(hp["latent_dim"]), int(hp["critic_iters"]), float(hp["gp_weight"])
    generator = LatentGenerator(image_shape=shape, width=float(hp["generator_width"]), bounds=bounds)
    critic = WGANCritic(width=float(hp["critic_width"]))

    gan_steps = max(1, int(round(float(hp["gan_epochs"]) * steps_per_epoch)))
    classifier_steps = common.train_num_steps(config, steps_per_epoch)
    g_steps = max(1, gan_steps // n_critic)
    tx_g = common.optimizer_for(config, "generator", max(1, steps_per_epoch // n_critic), g_steps)
    tx_d = common.optimizer_for(config, "critic", steps_per_epoch, gan_steps)
    ema = float(config.train.get("ema_decay", 0.0))
    _, init_classifier = supervised.classifier_network(config, info, steps_per_epoch, classifier_steps)
    projection = dict(latent_dim=latent_dim, num_steps=int(hp["L"]), restarts=int(hp["R"]),
                      lr=float(hp["projection_lr"]))

    def init(key, batch):
        k_g, k_d, k_c = jax.random.split(key, 3)
        x = jnp.asarray(batch["image"])
        z = jnp.zeros((x.shape[0], latent_dim), x.dtype)
        return {"generator": create_train_state(generator, k_g, z, tx_g, ema),
                "critic": create_train_state(critic, k_d, x, tx_d, ema),
                "classifier": init_classifier(k_c, x)}

    def critic_step(state, x, z, mix, key):
        g, d = state["generator"], state["critic"]
        fake, _ = train_apply(g, g.params, z, key)  # G fixed: its new BatchNorm statistics are dropped
        fake = jax.lax.stop_gradient(fake)
        mix = mix.reshape((-1,) + (1,) * (x.ndim - 1))
        x_hat = mix * x + (1.0 - mix) * fake

        def loss_fn(params):
            score = lambda v: d.apply_fn({"params": params}, v, train=True)  # noqa: E731
            real_scores, fake_scores = score(x), score(fake)
            norms = critic_input_gradient_norms(score, x_hat)
            loss = critic_objective(real_scores, fake_scores, norms, gp_weight)
            return loss, {"wasserstein": jnp.mean(real_scores) - jnp.mean(fake_scores),
                          "gradient_penalty": gradient_penalty(norms)}

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
        d = d.apply_gradients(grads=grads)
        return {**state, "critic": d}, {"loss_critic": loss, **aux}

    def generator_step(state, z, key):
        g, d = state["generator"], state["critic"]

        def loss_fn(params):
            fake, stats = train_apply(g, params, z, key)
            return generator_objective(d.apply_fn({"params": d.params}, fake, train=True)), stats

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
        g = g.apply_gradients(grads=grads, batch_stats=stats)
        return {**state, "generator": g}, {"loss_generator": loss}

    def gan_step(state, batch, key):
        k_z, k_mix, k_d, k_gz, k_g = jax.random.split(key, 5)
        x = batch["image"]
        b = x.shape[0]
        z = jax.random.normal(k_z, (b, latent_dim), x.dtype)
        mix = jax.random.uniform(k_mix, (b,), x.dtype)
        state, metrics = critic_step(state, x, z, mix, k_d)
        z_g = jax.random.normal(k_gz, (b, latent_dim), x.dtype)
        take_g_step = state["critic"].step % n_critic == 0  # after every critic_iters-th critic iteration

        def step_g(s):
            s, m = generator_step(s, z_g, k_g)
            return s["generator"], m["loss_generator"]

        def skip_g(s):  # no update; report L_G at the current networks all the same
            g, d = s["generator"], s["critic"]
            fake, _ = train_apply(g, g.params, z_g, k_g)
            return g, generator_objective(d.apply_fn({"params": d.params}, fake, train=True))

        g, loss_g = jax.lax.cond(take_g_step, step_g, skip_g, state)
        return {**state, "generator": g}, {**metrics, "loss_generator": loss_g}

    def project_state(state, x, key):
        g = state["generator"]
        variables = eval_variables(g)
        return project(lambda z: g.apply_fn(variables, z, train=False), x, key, **projection)

    def classifier_step(state, batch, key):
        k_proj, k_obj = jax.random.split(key)
        if hp["classifier_data"] == "reconstructions":
            rec = jax.lax.stop_gradient(project_state(state, batch["image"], k_proj).reconstruction)
            batch = {**batch, "image": rec}
        net, metrics = supervised.update(state["classifier"], supervised.ce_objective(), batch, None, k_obj)
        return {**state, "classifier": net}, metrics

    def classifier(state):
        logits_fn = eval_logits_fn(state["classifier"])

        def deployed(x, key):
            return logits_fn(jax.lax.stop_gradient(project_state(state, x, key).reconstruction))

        return deployed

    def surrogate(state):
        logits_fn = eval_logits_fn(state["classifier"])
        if hp["bpda_gradient_at"] == "input":
            return lambda x, key: logits_fn(x)

        def straight_through(x, key):  # value C(G(z*)), gradient of C at G(z*)
            rec = project_state(state, x, key).reconstruction
            return logits_fn(x + jax.lax.stop_gradient(rec - x))

        return straight_through

    return Parts(generator=generator, critic=critic, hparams=hp, init=init, critic_step=critic_step,
                 generator_step=generator_step, gan_step=gan_step, classifier_step=classifier_step,
                 project=project_state, classifier=classifier, surrogate=surrogate, gan_steps=gan_steps,
                 classifier_steps=classifier_steps)


def make(config, info, steps_per_epoch: int) -> Defense:
    """Defense-GAN as a randomised :class:`Defense` with a BPDA surrogate: phases ``gan``, ``classifier``."""
    parts = build(config, info, steps_per_epoch)
    return Defense(name="defense_gan", init=parts.init,
                   phases=(Phase("gan", parts.gan_steps, parts.gan_step),
                           Phase("classifier", parts.classifier_steps, parts.classifier_step)),
                   classifier=parts.classifier, networks=NETWORKS, surrogate=parts.surrogate, stochastic=True)


__all__ = ["BPDA_GRADIENT_AT", "CLASSIFIER_DATA", "FIELDS", "NETWORKS", "Parts", "Projection", "build",
           "critic_input_gradient_norms", "critic_objective", "generator_objective", "gradient_penalty", "make",
           "project", "read_config"]
