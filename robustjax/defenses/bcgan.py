"""Boundary Conditional GAN (Sun, Zhu & Lin, "Enhancing the Robustness of Deep Neural Networks by Boundary
Conditional GAN", 2019): an AC-GAN steered by a frozen classifier makes labelled samples near that
classifier's decision boundary, and the classifier is fine-tuned on them.

    defense = bcgan.make(config, info, steps_per_epoch)     # configs/bcgan_{mnist,fashion_mnist,cifar10,toy2d}.py
    state = defense.init(key, batch)         # {"classifier": ..., "generator": ..., "discriminator": ...}
    logits_fn = defense.classifier(state)    # x -> logits: the fine-tuned classifier, eval mode
    x_b = defense.samples(state, key, 16)    # boundary samples G(z, c), classes c = 0, 1, ..., K-1, 0, ...

Three networks, one ``TrainState`` each (``config.train.optimizers.classifier`` / ``.generator`` /
``.discriminator``, each over ``config.train.optimizer``):

- ``classifier`` F_theta: ``config.model`` (the model being defended; deployed alone, no input transform).
- ``generator`` G: ``[z, one_hot(c)] -> x``, Odena et al.'s AC-GAN generator for images
  (``models.generators.ACGANGenerator``), a 3-hidden-layer MLP for flat data (``MLPGenerator``; the
  paper's 2-D demonstration, Sec. 3.2).
- ``discriminator`` D: ``x -> (P(C | x) logits [B, K], P(S = real | x) logit [B])``: Odena et al.'s
  discriminator body (``models.discriminators.ACGANBody``) or, for flat data, an MLP body with 3 hidden
  layers (``models.MLP``, LeakyReLU), under ``ACDiscriminator``'s two heads.

Phases (Sec. 3.3, steps 1-3):

1. ``pretrain`` (``pretrain_epochs``): the classifier by cross-entropy on clean data. Only it changes.
2. ``acgan`` (``gan_epochs``): per step, one D step and one G step of an AC-GAN, with fresh ``z ~ N(0, I)``
   and classes ``c ~ U{0..K-1}`` for each. The classifier is frozen: read in eval mode, never written.

   - D minimises ``-(L_S + L_C)`` (Eq. 6): sigmoid cross-entropy of the source head (real images 1, G's
     0) plus softmax cross-entropy of the class head on real images (their labels) and on G's (their
     conditioning classes ``c``) (:func:`discriminator_loss`).
   - G minimises Eq. 8, ``L_G + beta * E KL(U(y) || p_theta(y | G(z, c)))``, the KL through the frozen
     pre-trained classifier (:func:`kl_to_uniform`, :func:`generator_objective`).

   *Eq. 8 as printed has a sign slip*: it calls the AC-GAN generator loss ``L_G = L_C - L_S`` (the
   quantity Odena et al.'s G *maximises*, Sec. 2.2) and then *minimises* ``L_G + beta KL``, which would
   make G's samples unrecognisable to D's class head and easy to tell from data. Implemented instead: the
   standard AC-GAN generator loss, to be minimised, ``-L_C^fake + BCE(D_S(G(z, c)), real)``, i.e. class
   cross-entropy of G's samples against ``c`` plus the non-saturating source term ``-E log P(S = real |
   G(z, c))`` (the form of the paper's own Eq. 5, ``L_G = E log D(G(z))``, and of the usual AC-GAN
   implementations), plus ``beta`` times the KL. This keeps the paper's stated intent: samples near the
   class-``c`` data ("not too far from the data manifold") whose frozen-classifier prediction is close
   to uniform.
3. ``finetune`` (``config.train.epochs`` / ``config.train.steps``, the phase whose result is deployed):
   the classifier by cross-entropy on batches whose last ``round(boundary_fraction * B)`` rows are
   boundary samples ``G(z, c)`` (G in eval mode, fixed) labelled with their conditioning class ``c``,
   and whose other rows are the step's clean examples ("we inject clean examples during the data
   augmentation to maintain the accuracy"). Only the classifier changes. The classifier keeps its
   optimizer (and its state) from phase 1: one optimizer, whose schedule spans phases 1 and 3.

Where the paper is silent, chosen here (each a field; the configs say what they set):

- ``beta`` (default 1.0): the paper gives none (Fig. 2 shows several on 2-D data). 1.0 weighs the KL,
  in nats, like each of the AC-GAN's two log-likelihood terms; configs/bcgan_toy2d.py sweeps it.
- The number of boundary samples, ``num_boundary_samples``: a fixed pool of ``N`` samples, sample ``i``
  drawn from ``z_i = N(0, I)`` under ``fold_in(pool_key, i)`` and class ``c_i = i mod K`` (balanced); each
  fine-tuning row picks ``i`` uniformly, so the pool is never stored and a resumed run sees the same pool
  (G is fixed in phase 3). ``0``: a fresh ``(z, c)`` for every row (an unbounded pool). The configs use
  the size of the training set (one boundary sample per training image, a 1:1 augmentation).
- The clean:boundary ratio, ``boundary_fraction`` (default 0.5, i.e. 1:1): the paper only says clean
  examples are injected; 1:1 is the usual mixing of clean and augmented data (as in Goodfellow et al.'s
  adversarial objective, alpha = 0.5).
- Boundary samples are not filtered (the paper does not say it filters them; its Sec. 5 names the
  AC-GAN's accuracy as what limits the clean accuracy, which filtering would hide).
- Optimizers: G and D Adam 2e-4, beta1 0.5 (Odena et al.'s); the classifier the library's choice for the
  model (the configs). Latent size 100 (Odena et al.'s CIFAR-10 input: 100 noise + 10 classes).
- G samples in eval mode (BatchNorm running statistics) in phase 3 and in ``samples``, as deployed; in
  phase 2 both G and D run in train mode (batch statistics, D's dropout), the frozen classifier in eval
  mode (the model being defended, as deployed).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from robustjax import models
from robustjax.defenses import common, fields, supervised
from robustjax.defenses.base import (
    Defense,
    Phase,
    State,
    accuracy,
    create_train_state,
    cross_entropy,
    eval_logits_fn,
    eval_variables,
    train_apply,
)
from robustjax.models.discriminators import ACDiscriminator, ACGANBody
from robustjax.models.generators import ACGANGenerator, MLPGenerator, conditional_code, upsamplings
from robustjax.types import Array, Metrics, PRNGKey


def _hidden(v: Any, path: str) -> tuple[int, ...]:
    v = fields.plain(v)
    ok = isinstance(v, (list, tuple)) and len(v) > 0 and all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v)
    if not ok:
        raise ValueError(f"{path}: must be a non-empty list of layer sizes >= 1, e.g. [64, 64, 64]; got {v!r}")
    return tuple(int(n) for n in v)


FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(),
    "pretrain_epochs": fields.Field(fields.REQUIRED, fields.number(0.0, lo_open=True),
                                    "length of phase 1 (pre-training the classifier) in epochs"),
    "gan_epochs": fields.Field(fields.REQUIRED, fields.number(0.0, lo_open=True),
                               "length of phase 2 (the AC-GAN with the KL term) in epochs"),
    "beta": fields.Field(1.0, fields.number(0.0), "weight of the KL-to-uniform term of Eq. 8"),
    "latent_dim": fields.Field(100, fields.integer(1), "dimension of the noise z (Odena et al.: 100)"),
    "generator_width": fields.Field(1.0, fields.number(0.0, lo_open=True), "G's channel multiplier (1: 384 base)"),
    "discriminator_width": fields.Field(1.0, fields.number(0.0, lo_open=True),
                                        "D's channel multiplier (1: 16 ... 512)"),
    "discriminator_dropout": fields.Field(0.5, fields.number(0.0, 1.0, hi_open=True),
                                          "dropout after each of D's conv blocks (Odena et al.: 0.5)"),
    "mlp_hidden": fields.Field([64, 64, 64], _hidden,
                               "hidden layers of G and D for flat (2-D toy) data (the paper: 3 layers)"),
    "boundary_fraction": fields.Field(0.5, fields.number(0.0, 1.0),
                                      "fraction of each fine-tuning batch that is boundary samples"),
    "num_boundary_samples": fields.Field(0, fields.integer(0),
                                         "size of the fixed pool of boundary samples (0: fresh every row)"),
}
NETWORKS = ("classifier", "generator", "discriminator")


# ----------------------------------------------------------------------------------------------
# The objectives, as quantities to minimise.


def kl_to_uniform(logits: Array) -> Array:
    """Per-example ``KL(U(y) || softmax(logits))`` ``[B]`` = ``-log K - (1/K) sum_k log p_k``."""
    k = logits.shape[-1]
    return -jnp.log(float(k)) - jnp.mean(jax.nn.log_softmax(logits), axis=-1)


def discriminator_loss(real_class: Array, real_source: Array, fake_class: Array, fake_source: Array,
                       labels: Array, fake_labels: Array) -> Array:
    """``-(L_S + L_C)`` of Eq. 6: D's source cross-entropy (real 1, fake 0) plus its class cross-entropy
    on real images (``labels``) and on G's (``fake_labels``, their conditioning classes)."""
    source = (jnp.mean(optax.sigmoid_binary_cross_entropy(real_source, jnp.ones_like(real_source)))
              + jnp.mean(optax.sigmoid_binary_cross_entropy(fake_source, jnp.zeros_like(fake_source))))
    return source + cross_entropy(real_class, labels) + cross_entropy(fake_class, fake_labels)


def acgan_generator_loss(fake_class: Array, fake_source: Array, fake_labels: Array) -> Array:
    """The standard AC-GAN generator loss: ``-E log P(S = real | G(z, c)) - E log P(C = c | G(z, c))``."""
    source = jnp.mean(optax.sigmoid_binary_cross_entropy(fake_source, jnp.ones_like(fake_source)))
    return source + cross_entropy(fake_class, fake_labels)


def generator_objective(fake_class: Array, fake_source: Array, fake_labels: Array, classifier_logits: Array,
                        beta: float) -> Array:
    """Eq. 8 with the sign slip fixed (module docstring): ``acgan_generator_loss + beta * mean KL(U ||
    p_theta(y | G(z, c)))``, ``classifier_logits`` the frozen classifier's on G's samples."""
    return (acgan_generator_loss(fake_class, fake_source, fake_labels)
            + beta * jnp.mean(kl_to_uniform(classifier_logits)))


# ----------------------------------------------------------------------------------------------
# The defense.


def read_config(config) -> dict[str, Any]:
    """``config.defense`` with BCGAN's defaults filled in, checked; raises ValueError naming the field."""
    return fields.read(config.defense, FIELDS, "config.defense")


@dataclasses.dataclass(frozen=True)
class Parts:
    """The pieces ``make`` assembles, exposed for tests.

    Attributes:
      generator, discriminator: the G and D modules.
      hparams: the checked ``config.defense``.
      init: ``(key, batch) -> state``.
      pretrain_step: phase 1's train step.
      d_step: ``(state, x, y, z, c, key) -> (state, metrics)``: one D step with G's codes given.
      g_step: ``(state, z, c, key) -> (state, metrics)``: one G step on Eq. 8 with the codes given.
      gan_step: phase 2's train step (draws the codes; a D step, then a G step).
      finetune_step: phase 3's train step.
      generate: ``(state, z, c) -> G(z, c)`` in eval mode.
      boundary_batch: ``(state, key, n) -> (x, c)``: ``n`` boundary samples from the pool, with labels.
      pretrain_steps, gan_steps, finetune_steps: the phases' lengths.
    """

    generator: Any
    discriminator: Any
    hparams: dict
    init: Callable[[PRNGKey, Any], State]
    pretrain_step: Callable[..., tuple[State, Metrics]]
    d_step: Callable[..., tuple[State, Metrics]]
    g_step: Callable[..., tuple[State, Metrics]]
    gan_step: Callable[..., tuple[State, Metrics]]
    finetune_step: Callable[..., tuple[State, Metrics]]
    generate: Callable[..., Array]
    boundary_batch: Callable[..., tuple[Array, Array]]
    pretrain_steps: int
    gan_steps: int
    finetune_steps: int


def networks_for(info, hp: dict):
    """``(generator, discriminator)`` modules for the data of ``info``: AC-GAN conv nets for images
    ``[H, W, C]``, MLPs for flat data ``[D]``. Raises ValueError (``config.data``) for other shapes."""
    shape = tuple(int(v) for v in info.image_shape)
    bounds = (float(info.bounds[0]), float(info.bounds[1]))
    k = int(info.num_classes)
    if len(shape) == 3:
        try:
            upsamplings(shape[0], shape[1])
        except ValueError as e:
            raise ValueError(f"config.data: {e}") from None
        g = ACGANGenerator(image_shape=shape, width=float(hp["generator_width"]), bounds=bounds)
        body = ACGANBody(width=float(hp["discriminator_width"]), dropout=float(hp["discriminator_dropout"]))
    elif len(shape) == 1:
        hidden = tuple(hp["mlp_hidden"])
        g = MLPGenerator(out_dim=shape[0], hidden=hidden, bounds=bounds)
        body = models.MLP(num_classes=0, hidden=hidden, activation="leaky_relu")
    else:
        raise ValueError(f"config.data: bcgan needs images [H, W, C] or flat vectors [D]; {info.name} has "
                         f"examples of shape {shape}")
    return g, ACDiscriminator(body=body, num_classes=k)


def build(config, info, steps_per_epoch: int) -> Parts:
    """Builds BCGAN's networks, optimizers and steps from ``config`` (see the module docstring)."""
    hp = read_config(config)
    generator, discriminator = networks_for(info, hp)
    k = int(info.num_classes)
    latent_dim, beta = int(hp["latent_dim"]), float(hp["beta"])
    fraction, pool = float(hp["boundary_fraction"]), int(hp["num_boundary_samples"])
    pool_key = jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), 0xBC)

    pretrain_steps = max(1, int(round(float(hp["pretrain_epochs"]) * steps_per_epoch)))
    gan_steps = max(1, int(round(float(hp["gan_epochs"]) * steps_per_epoch)))
    finetune_steps = common.train_num_steps(config, steps_per_epoch)
    tx_g = common.optimizer_for(config, "generator", steps_per_epoch, gan_steps)
    tx_d = common.optimizer_for(config, "discriminator", steps_per_epoch, gan_steps)
    ema = float(config.train.get("ema_decay", 0.0))
    _, init_classifier = supervised.classifier_network(config, info, steps_per_epoch,
                                                       pretrain_steps + finetune_steps)

    def init(key, batch):
        k_c, k_g, k_d = jax.random.split(key, 3)
        x = jnp.asarray(batch["image"])
        code = jnp.zeros((x.shape[0], latent_dim + k), x.dtype)
        return {"classifier": init_classifier(k_c, x),
                "generator": create_train_state(generator, k_g, code, tx_g, ema),
                "discriminator": create_train_state(discriminator, k_d, x, tx_d, ema)}

    def pretrain_step(state, batch, key):
        net, metrics = supervised.update(state["classifier"], supervised.ce_objective(), batch, None, key)
        return {**state, "classifier": net}, metrics

    def d_step(state, x, y, z, c, key):
        g, d = state["generator"], state["discriminator"]
        k_g, k_real, k_fake = jax.random.split(key, 3)
        fake, _ = train_apply(g, g.params, conditional_code(z, c, k), k_g)  # G fixed: statistics dropped
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(params):
            (c_real, s_real), stats = train_apply(d, params, x, k_real)
            (c_fake, s_fake), stats = train_apply(d.replace(batch_stats=stats), params, fake, k_fake)
            loss = discriminator_loss(c_real, s_real, c_fake, s_fake, y, c)
            return loss, (stats, {"d_accuracy_real": accuracy(c_real, y), "d_accuracy_fake": accuracy(c_fake, c),
                                  "d_real": jnp.mean(jax.nn.sigmoid(s_real)),
                                  "d_fake": jnp.mean(jax.nn.sigmoid(s_fake))})

        (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
        return {**state, "discriminator": d.apply_gradients(grads=grads, batch_stats=stats)}, {"loss_d": loss, **aux}

    def g_step(state, z, c, key):
        g, d = state["generator"], state["discriminator"]
        frozen = eval_logits_fn(state["classifier"])  # the pre-trained classifier, eval mode, never updated
        k_g, k_d = jax.random.split(key)

        def loss_fn(params):
            fake, stats = train_apply(g, params, conditional_code(z, c, k), k_g)
            (c_fake, s_fake), _ = train_apply(d, d.params, fake, k_d)  # D fixed: its statistics are dropped
            clf = frozen(fake)
            kl = jnp.mean(kl_to_uniform(clf))
            ac = acgan_generator_loss(c_fake, s_fake, c)
            return ac + beta * kl, (stats, {"loss_acgan": ac, "kl_uniform": kl,
                                            "classifier_agrees": accuracy(clf, c)})

        (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
        return {**state, "generator": g.apply_gradients(grads=grads, batch_stats=stats)}, {"loss_g": loss, **aux}

    def gan_step(state, batch, key):
        k_z, k_c, k_d, k_gz, k_gc, k_g = jax.random.split(key, 6)
        x, y = batch["image"], batch["label"]
        b = x.shape[0]
        state, d_metrics = d_step(state, x, y, jax.random.normal(k_z, (b, latent_dim), x.dtype),
                                  jax.random.randint(k_c, (b,), 0, k), k_d)
        state, g_metrics = g_step(state, jax.random.normal(k_gz, (b, latent_dim), x.dtype),
                                  jax.random.randint(k_gc, (b,), 0, k), k_g)
        return state, {**d_metrics, **g_metrics}

    def generate(state, z, c):
        g = state["generator"]
        return g.apply_fn(eval_variables(g), conditional_code(z, c, k), train=False)

    def boundary_batch(state, key, n):
        if pool > 0:
            index = jax.random.randint(key, (n,), 0, pool)
            z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(pool_key, i), (latent_dim,)))(index)
            c = index % k
        else:
            k_z, k_c = jax.random.split(key)
            z = jax.random.normal(k_z, (n, latent_dim))
            c = jax.random.randint(k_c, (n,), 0, k)
        return jax.lax.stop_gradient(generate(state, z, c)), c.astype(jnp.int32)

    def finetune_step(state, batch, key):
        k_b, k_obj = jax.random.split(key)
        x, y = batch["image"], batch["label"]
        b = x.shape[0]
        n_b = int(round(fraction * b))
        if n_b == 0:
            net, metrics = supervised.update(state["classifier"], supervised.ce_objective(), batch, None, k_obj)
            return {**state, "classifier": net}, metrics
        x_b, y_b = boundary_batch(state, k_b, n_b)
        mixed = {"image": jnp.concatenate([x[:b - n_b], x_b.astype(x.dtype)]),
                 "label": jnp.concatenate([y[:b - n_b], y_b.astype(y.dtype)])}

        def objective(apply, params, batch_stats, batch, x_adv, key):
            logits, batch_stats = apply(params, batch_stats, batch["image"], key)
            metrics = {"accuracy_boundary": accuracy(logits[b - n_b:], batch["label"][b - n_b:])}
            if n_b < b:
                metrics["accuracy_clean"] = accuracy(logits[:b - n_b], batch["label"][:b - n_b])
            return cross_entropy(logits, batch["label"]), batch_stats, metrics

        net, metrics = supervised.update(state["classifier"], objective, mixed, None, k_obj)
        return {**state, "classifier": net}, metrics

    return Parts(generator=generator, discriminator=discriminator, hparams=hp, init=init,
                 pretrain_step=pretrain_step, d_step=d_step, g_step=g_step, gan_step=gan_step,
                 finetune_step=finetune_step, generate=generate, boundary_batch=boundary_batch,
                 pretrain_steps=pretrain_steps, gan_steps=gan_steps, finetune_steps=finetune_steps)


def make(config, info, steps_per_epoch: int) -> Defense:
    """BCGAN as a :class:`Defense`: phases ``pretrain``, ``acgan``, ``finetune``; the fine-tuned classifier
    is deployed; ``samples`` are boundary samples of classes ``0, 1, ..., K-1, 0, ...``."""
    parts = build(config, info, steps_per_epoch)
    k, latent_dim = int(info.num_classes), int(parts.hparams["latent_dim"])

    def classifier(state):
        return eval_logits_fn(state["classifier"])

    def samples(state, key, n):
        return parts.generate(state, jax.random.normal(key, (n, latent_dim)), jnp.arange(n) % k)

    return Defense(name="bcgan", init=parts.init,
                   phases=(Phase("pretrain", parts.pretrain_steps, parts.pretrain_step),
                           Phase("acgan", parts.gan_steps, parts.gan_step),
                           Phase("finetune", parts.finetune_steps, parts.finetune_step)),
                   classifier=classifier, networks=NETWORKS, samples=samples)


__all__ = ["FIELDS", "NETWORKS", "Parts", "acgan_generator_loss", "build", "discriminator_loss",
           "generator_objective", "kl_to_uniform", "make", "networks_for", "read_config"]
