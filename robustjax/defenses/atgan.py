"""ATGAN: adversarially trained GAN (Wang, Jin, Wu & Khan, "Improving Global Adversarial Robustness
Generalization With Adversarially Trained GAN", 2021).

    defense = atgan.make(config, info, steps_per_epoch)      # config from configs/atgan_{mnist,svhn,cifar10}.py
    state = defense.init(key, batch)     # {"generator": ..., "discriminator": ..., "loss_net": ...}
    logits_fn = defense.classifier(state)                    # x -> D_c(G(x)), eval mode: attack this whole

Three networks, one ``TrainState`` each:

- ``generator`` G: an image-to-image network (``models.generators``, the paper's Table 1) whose output
  lies in the pixel box.
- ``discriminator`` D: an AC-GAN discriminator (``models.discriminators.ACDiscriminator``): a classifier
  body (``config.model``, built with ``num_classes=0``) with a class head D_c and a real/fake head D_d.
- ``loss_net``: a classifier of the same architecture as D's body, trained on clean data and then frozen;
  its first conv layer's activations define the perceptual loss.

Phases: ``pretrain_loss_net`` (``config.defense.loss_net_epochs`` epochs of plain training of the loss
network; only ``loss_net`` changes), then ``atgan`` (Algorithm 1; ``loss_net`` never changes). With
``loss_net_epochs = 0`` the loss network is restored instead from the newest checkpoint of another run,
``config.defense.loss_net_workdir`` (its ``loss_net``, or the ``classifier`` of a standard/PGD-AT run
with the same ``config.model``); or, with ``gamma = 0``, it is not needed at all.

One ``atgan`` step (Algorithm 1), with ``x`` a clean batch and ``y`` its labels:

1. ``x_adv = PGD(D_c(G(.)), x, y)``: the train-time attack ``config.defense.attack`` (the paper: L-inf PGD
   with radius ``eps_t``; a spec in the format of ``config.eval.attacks``) against the whole classifier with
   both networks fixed, in eval mode (BatchNorm running statistics), the model as deployed. FracAT: only
   the first ``round(adv_fraction * B)`` examples of the batch are replaced by their adversarial
   versions; the generator's input is that mixed batch ``x~``.
2. D step on ``L_D = alpha (L_a + beta L_b) - L_d`` (G fixed).
3. G step on ``L_G = alpha (L_a + beta L_b) - L_g + gamma L_f`` with the updated D.

Reading of the loss terms. Every quantity the code minimises is written as a loss >= 0 where possible;
the paper's log-likelihoods ``L_d`` and ``L_g`` (which D and G *maximise*) enter with a minus sign:

- ``L_a = CE(D_c(x), y)``: classification loss of D on clean images ``x`` (not passed through G).
- ``L_b = CE(D_c(G(x~)), y)``: classification loss of D on the generator's reconstructions of the
  (partly) adversarial batch.
- ``L_d = E[log D_d(x)] + E[log(1 - D_d(G(x~)))]``: the discrimination log-likelihood (clean images are
  "real", generator outputs "fake"). D maximises it, so the code minimises
  ``-L_d = BCE(D_d(x), 1) + BCE(D_d(G(x~)), 0)`` (:func:`discrimination_loss`), computed from logits
  with the stable sigmoid cross-entropy.
- ``L_g = E[log D_d(G(x~))]``: the generator's adversarial term in its non-saturating form (G wants its
  outputs judged real). G maximises it; the code minimises ``-L_g = BCE(D_d(G(x~)), 1)``
  (:func:`generator_adversarial_loss`). ``generator_loss="minimax"`` uses the original saturating form
  instead, ``L_g = -E[log(1 - D_d(G(x~)))]``, i.e. G minimises the fake half of ``L_d``.
- ``L_f = mean over (B, H, W, C) of (phi(G(x~)) - phi(x))^2``: the perceptual (feature reconstruction)
  loss of Johnson et al. with ``phi`` the loss network's first conv layer in eval mode, i.e.
  ``1/(C H W) ||phi(G(x~)) - phi(x)||_2^2`` averaged over the batch. It pulls G's output for a
  perturbed image towards the features of the *clean* image.
- In ``L_G`` the term ``alpha L_a`` does not depend on G (clean images do not pass through G), so it
  adds no gradient; its value (from the D step) is included in the reported ``loss_g`` so that the
  number is the paper's ``L_G``.

So ``loss_d = alpha (L_a + beta L_b) + (-L_d)`` and ``loss_g = alpha (L_a + beta L_b) + (-L_g) +
gamma L_f``, both minimised. This reading follows the paper's Eq. 4-15 and Algorithm 1
and the standard forms it builds on (AC-GAN's log-likelihoods, Johnson et al.'s perceptual loss).

BatchNorm: the attack sees both networks in eval mode. In the D step G runs in train mode (batch
statistics) with its updated statistics discarded, and D runs on the clean and the generated batch in
two calls (each normalised by its own batch statistics, as in the usual PyTorch GAN loop), chaining its
running statistics. In the G step G runs in train mode and keeps its new statistics; D runs in train
mode with its statistic updates discarded. The loss network always runs in eval mode.

Config (``config.defense``; ``FIELDS``): ``attack`` (the PGD of Algorithm 1 as an attack spec:
``{"attack": "pgd", "eps": eps_t, "step_size": ..., "num_steps": ..., "random_start": True}``; a step
size is kept relative to eps when eps ramps or is overridden), ``adv_fraction`` (FracAT),
``eps_ramp_epochs`` (linear eps curriculum, 0 = off), ``alpha``, ``beta``, ``gamma``, ``generator`` ("mnist" | "svhn" | "cifar10"), ``generator_width``,
``generator_loss`` ("nonsaturating" | "minimax"), ``loss_net_epochs``, ``loss_net_workdir``.
Optimizers: ``config.train.optimizers.generator`` / ``.discriminator`` / ``.loss_net`` (each over
``config.train.optimizer``); ``config.train.epochs`` / ``steps`` is the length of the ``atgan`` phase.
"""

from __future__ import annotations

import dataclasses
import os
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
    TrainState,
    accuracy,
    create_train_state,
    cross_entropy,
    eval_variables,
    train_apply,
)
from robustjax.models import discriminators, generators
from robustjax.types import Array, LogitsFn, Metrics, PRNGKey

GENERATOR_LOSSES = ("nonsaturating", "minimax")

# Every field ATGAN reads from config.defense: its default and its check.
FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(),
    "attack": fields.Field(fields.REQUIRED, fields.attack_spec(),
                           "the PGD of Algorithm 1, e.g. {'attack': 'pgd', 'eps': 0.3, 'step_size': 0.01, "
                           "'num_steps': 40, 'random_start': True}"),
    "adv_fraction": fields.Field(1.0, fields.number(0.0, 1.0)),
    "eps_ramp_epochs": fields.Field(0.0, fields.number(0.0)),
    "alpha": fields.Field(1.0, fields.number(0.0)),
    "beta": fields.Field(1.0, fields.number(0.0)),
    "gamma": fields.Field(10.0, fields.number(0.0)),
    "generator": fields.Field(fields.REQUIRED, fields.choice(*generators.GENERATORS),
                              "the Table 1 generator: 'mnist', 'svhn' or 'cifar10'"),
    "generator_width": fields.Field(1.0, fields.number(0.0, lo_open=True)),
    "generator_loss": fields.Field("nonsaturating", fields.choice(*GENERATOR_LOSSES)),
    "loss_net_epochs": fields.Field(0.0, fields.number(0.0)),
    "loss_net_workdir": fields.Field("", fields.text()),
}
NETWORKS = ("generator", "discriminator", "loss_net")
# The flat PGD fields of earlier versions, and where they went.
_MOVED = {k: "the train-time PGD is config.defense.attack now, e.g. --config.defense.attack.eps=0.3 "
             "(eps_t -> attack.eps, pgd_steps -> attack.num_steps, pgd_step_size -> attack.step_size)"
          for k in ("eps_t", "pgd_steps", "pgd_step_size", "random_start")}


# ----------------------------------------------------------------------------------------------
# The loss terms, as quantities to minimise (see the module docstring for the mapping to the paper).


def discrimination_loss(real_logit: Array, fake_logit: Array) -> Array:
    """``-L_d``: mean sigmoid cross-entropy of D_d on clean images (label 1) plus on generator outputs
    (label 0). ``L_d = E[log D_d(x)] + E[log(1 - D_d(G(x~)))]`` is the log-likelihood D maximises.

    Args:
      real_logit: D_d's logits on clean images ``[B]``.
      fake_logit: D_d's logits on generator outputs ``[B]``.
    """
    real = optax.sigmoid_binary_cross_entropy(real_logit, jnp.ones_like(real_logit))
    fake = optax.sigmoid_binary_cross_entropy(fake_logit, jnp.zeros_like(fake_logit))
    return jnp.mean(real) + jnp.mean(fake)


def generator_adversarial_loss(fake_logit: Array, kind: str = "nonsaturating") -> Array:
    """``-L_g``, the generator's adversarial term as a loss.

    Args:
      fake_logit: D_d's logits on generator outputs ``[B]``.
      kind: "nonsaturating": ``-L_g = -E[log D_d(G(x~))]``; "minimax": ``-L_g = E[log(1 - D_d(G(x~)))]``
        (then ``-L_g <= 0``; G minimises the fake half of ``L_d``).
    """
    if kind == "nonsaturating":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logit, jnp.ones_like(fake_logit)))
    if kind == "minimax":
        return -jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logit, jnp.zeros_like(fake_logit)))
    raise ValueError(f"generator_loss {kind!r} is not one of {GENERATOR_LOSSES}")


def perceptual_loss(features_generated: Array, features_clean: Array) -> Array:
    """``L_f``: mean squared difference of the loss network's first-conv activations (Johnson et al.'s
    feature reconstruction loss ``1/(CHW) ||phi(G(x~)) - phi(x)||^2``, averaged over the batch)."""
    return jnp.mean(jnp.square(features_generated - features_clean))


def discriminator_objective(l_a: Array, l_b: Array, neg_l_d: Array, alpha: float, beta: float) -> Array:
    """``L_D = alpha (L_a + beta L_b) - L_d`` (``neg_l_d`` is ``-L_d``)."""
    return alpha * (l_a + beta * l_b) + neg_l_d


def generator_objective(l_a: Array, l_b: Array, neg_l_g: Array, l_f: Array, alpha: float, beta: float,
                        gamma: float) -> Array:
    """``L_G = alpha (L_a + beta L_b) - L_g + gamma L_f`` (``neg_l_g`` is ``-L_g``)."""
    return alpha * (l_a + beta * l_b) + neg_l_g + gamma * l_f


# ----------------------------------------------------------------------------------------------
# Config.


def _fail(field: str, problem: str) -> None:
    raise ValueError(f"config.defense.{field}: {problem}")


def read_config(config) -> dict[str, Any]:
    """``config.defense`` with ATGAN's defaults filled in, checked; raises ValueError naming the field."""
    out = fields.read(config.defense, FIELDS, "config.defense", hints=_MOVED)
    if out["loss_net_workdir"] and out["loss_net_epochs"] > 0:
        _fail("loss_net_workdir", "is set together with loss_net_epochs > 0: either pre-train the loss network "
              "here (loss_net_workdir='') or restore it from that run (loss_net_epochs=0)")
    if not out["loss_net_workdir"] and out["loss_net_epochs"] == 0 and out["gamma"] > 0:
        _fail("loss_net_epochs", "is 0 but gamma > 0 needs a trained loss network: pre-train it "
              "(loss_net_epochs > 0), restore it from a run (loss_net_workdir=DIR), or set gamma=0")
    return out


# ----------------------------------------------------------------------------------------------
# Restoring a loss network from another run.


def load_network(workdir: str, like: dict) -> dict:
    """A network's ``{"params", "batch_stats"}`` from the newest usable checkpoint of another run.

    Takes that run's ``loss_net`` (an ATGAN run) or else its ``classifier`` (a standard or PGD-AT run).
    As in resuming (``loop.restore_latest``), a checkpoint that cannot be read or holds NaN/inf is skipped
    with a one-line warning and the next older one is used; the other run's folder is never changed.

    Args:
      workdir: the other run's work directory (the one holding ``checkpoints/``).
      like: ``{"params": ..., "batch_stats": ...}`` of the network to fill (arrays or
        ``jax.ShapeDtypeStruct``); the restored network must have the same structure and shapes.

    Raises:
      ValueError: no usable checkpoint there, no suitable network in it, or an architecture that does not
        match.
    """
    import sys
    import time

    import numpy as np
    import orbax.checkpoint as ocp

    from robustjax.train import loop

    field = "config.defense.loss_net_workdir"
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(directory):
        raise ValueError(f"{field}={workdir!r}: no checkpoints/ directory there; give the work directory "
                         "of a finished run (ATGAN, standard or PGD-AT with the same config.model)")
    mngr = ocp.CheckpointManager(directory)
    restored, skipped = None, []
    try:
        steps = sorted(mngr.all_steps(), reverse=True)
        if not steps:
            raise ValueError(f"{field}={workdir!r}: the checkpoints/ directory holds no checkpoint")
        with loop._quiet_aborted_reads():
            for step in steps:
                try:
                    state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
                except Exception as e:  # a damaged checkpoint: Orbax raises many kinds
                    skipped.append((step, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"))
                    continue
                leaves = [np.asarray(a) for a in jax.tree.leaves(state) if hasattr(a, "dtype")]
                if any(np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)) for a in leaves):
                    skipped.append((step, "it holds NaN or inf"))
                    continue
                restored = state
                break
            if any(why.startswith("unreadable") for _, why in skipped):
                time.sleep(0.5)  # the aborted read's stray "Event loop is closed" reports arrive under the hook
    finally:
        mngr.close()
    for step, why in skipped:
        then = "using an older one" if restored is not None else "none is usable"
        print(f"[robustjax] warning: {field}: checkpoint {directory}/{step} cannot be used: {why}; {then}",
              file=sys.stderr, flush=True)
    if restored is None:
        raise ValueError(f"{field}={workdir!r}: none of its checkpoints can be restored (steps {steps}); "
                         "re-run that run or give another work directory")
    for name in ("loss_net", "classifier"):
        if isinstance(restored, dict) and name in restored:
            net = restored[name]
            break
    else:
        keys = sorted(restored) if isinstance(restored, dict) else type(restored).__name__
        raise ValueError(f"{field}={workdir!r}: the checkpoint has no 'loss_net' or 'classifier' network "
                         f"(it has {keys})")
    out = {"params": net.get("params"), "batch_stats": net.get("batch_stats") or {}}

    def shapes(tree):
        return jax.tree.structure(tree), [tuple(a.shape) for a in jax.tree.leaves(tree)]

    want = {"params": like["params"], "batch_stats": like.get("batch_stats") or {}}
    if shapes(out) != shapes(want):
        raise ValueError(f"{field}={workdir!r}: the network in that run does not match config.model "
                         "(architecture, width or number of classes differ); restore from a run with the "
                         "same config.model and dataset")
    return jax.tree.map(jnp.asarray, out)


# ----------------------------------------------------------------------------------------------
# The defense.


@dataclasses.dataclass(frozen=True)
class Parts:
    """The pieces ``make`` assembles, exposed for tests and for reuse.

    Attributes:
      generator: the G module.
      discriminator: the D module (``x -> (class_logits, source_logit)``).
      loss_net: the loss network module (a classifier).
      hparams: the checked ``config.defense`` (see :data:`DEFAULTS`).
      init: ``(key, batch) -> state``.
      adversarial_examples: ``(state, x, y, key, eps) -> x_adv``: PGD against D_c(G(.)) in eval mode,
        its step size ``pgd_step_size * eps / eps_t`` (the configured one at ``eps = eps_t``).
      d_step: ``(state, x, x_in, y, key) -> (state, metrics)``; ``x`` clean, ``x_in`` G's input.
      g_step: ``(state, x, x_in, y, key, l_a) -> (state, metrics)``; ``l_a`` only enters the reported loss.
      atgan_step: the ``atgan`` phase's train step.
      pretrain_step: the ``pretrain_loss_net`` phase's train step.
      classifier: ``state -> (x -> D_c(G(x)))`` in eval mode.
      pretrain_steps: length of the pretrain phase (0 = no such phase).
      atgan_steps: length of the atgan phase.
    """

    generator: Any
    discriminator: Any
    loss_net: Any
    hparams: dict
    init: Callable[[PRNGKey, Any], State]
    adversarial_examples: Callable[..., Array]
    d_step: Callable[..., tuple[State, Metrics]]
    g_step: Callable[..., tuple[State, Metrics]]
    atgan_step: Callable[..., tuple[State, Metrics]]
    pretrain_step: Callable[..., tuple[State, Metrics]]
    classifier: Callable[[State], LogitsFn]
    pretrain_steps: int
    atgan_steps: int


def _composed(g: TrainState, d: TrainState, g_vars: dict, d_vars: dict) -> LogitsFn:
    def logits_fn(x):
        return d.apply_fn(d_vars, g.apply_fn(g_vars, x, train=False), train=False)[0]

    return logits_fn


def build(config, info, steps_per_epoch: int) -> Parts:
    """Builds ATGAN's networks, optimizers and steps from ``config`` (see the module docstring)."""
    hp = read_config(config)
    num_classes = int(info.num_classes)
    bounds = (float(info.bounds[0]), float(info.bounds[1]))
    generator = generators.make_generator(hp["generator"], out_channels=int(info.image_shape[-1]),
                                          width=float(hp["generator_width"]), bounds=bounds)
    discriminator = discriminators.make_discriminator(config.model, num_classes)
    loss_net = models.make(config.model, num_classes)

    atgan_steps = common.train_num_steps(config, steps_per_epoch)
    pretrain_steps = 0 if hp["loss_net_workdir"] else int(round(float(hp["loss_net_epochs"]) * steps_per_epoch))
    if hp["loss_net_epochs"] > 0:
        pretrain_steps = max(1, pretrain_steps)
    tx_g = common.optimizer_for(config, "generator", steps_per_epoch, atgan_steps)
    tx_d = common.optimizer_for(config, "discriminator", steps_per_epoch, atgan_steps)
    tx_l = (common.optimizer_for(config, "loss_net", steps_per_epoch, pretrain_steps)
            if pretrain_steps > 0 else optax.set_to_zero())
    ema = float(config.train.get("ema_decay", 0.0))
    restored_loss_net = None
    if hp["loss_net_workdir"]:  # read and checked now, before anything is compiled or trained
        k = jax.random.PRNGKey(0)
        like = jax.eval_shape(lambda: loss_net.init({"params": k, "dropout": k},
                                                    jnp.zeros((1,) + tuple(info.image_shape)), train=False))
        restored_loss_net = load_network(hp["loss_net_workdir"], like)

    alpha, beta, gamma = float(hp["alpha"]), float(hp["beta"]), float(hp["gamma"])
    fraction = float(hp["adv_fraction"])
    attack = supervised.train_attack(hp, info, steps_per_epoch)
    g_loss_kind = hp["generator_loss"]

    def init(key, batch):
        # Pure and jit-able: experiment.run compiles it once (three networks' worth of small ops).
        kg, kd, kl = jax.random.split(key, 3)
        x = jnp.asarray(batch["image"])
        state = {
            "generator": create_train_state(generator, kg, x, tx_g, ema),
            "discriminator": create_train_state(discriminator, kd, x, tx_d, ema),
            "loss_net": create_train_state(loss_net, kl, x, tx_l),
        }
        if restored_loss_net is not None:
            state["loss_net"] = state["loss_net"].replace(**restored_loss_net)
        return state

    def features(ln: TrainState, x: Array) -> Array:
        return models.first_conv_activations(loss_net, eval_variables(ln, ln.params), x, train=False)

    def adversarial_examples(state, x, y, key, eps=None):
        """The train-time attack on the composed classifier at ``eps`` (default: the spec's; traced)."""
        g, d = state["generator"], state["discriminator"]
        # The networks being trained, fixed, in eval mode (the model as deployed).
        logits_fn = _composed(g, d, eval_variables(g, g.params), eval_variables(d, d.params))
        eps = attack.target_eps if eps is None else eps
        return attack.spec(logits_fn, x, y, key, eps=eps, bounds=bounds)

    def d_step(state, x, x_in, y, key):
        g, d = state["generator"], state["discriminator"]
        k_g, k_real, k_fake = jax.random.split(key, 3)
        fake, _ = train_apply(g, g.params, x_in, k_g)  # G fixed: its new BatchNorm statistics are dropped
        fake = jax.lax.stop_gradient(fake)

        def loss_fn(params):
            (c_real, s_real), stats = train_apply(d, params, x, k_real)
            (c_fake, s_fake), stats = train_apply(d.replace(batch_stats=stats), params, fake, k_fake)
            l_a, l_b = cross_entropy(c_real, y), cross_entropy(c_fake, y)
            neg_l_d = discrimination_loss(s_real, s_fake)
            total = discriminator_objective(l_a, l_b, neg_l_d, alpha, beta)
            aux = {"l_a": l_a, "l_b_d": l_b, "neg_l_d": neg_l_d, "acc_clean": accuracy(c_real, y),
                   "acc_generated": accuracy(c_fake, y), "d_real": jnp.mean(jax.nn.sigmoid(s_real)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(s_fake))}
            return total, (stats, aux)

        (loss, (stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
        d = d.apply_gradients(grads=grads, batch_stats=stats)
        return {**state, "discriminator": d}, {"loss_d": loss, **aux}

    def g_step(state, x, x_in, y, key, l_a=0.0):
        g, d, ln = state["generator"], state["discriminator"], state["loss_net"]
        k_g, k_d = jax.random.split(key)
        phi_clean = features(ln, x) if gamma > 0 else None

        def loss_fn(params):
            fake, g_stats = train_apply(g, params, x_in, k_g)
            (c_fake, s_fake), _ = train_apply(d, d.params, fake, k_d)  # D fixed: its statistics are dropped
            l_b = cross_entropy(c_fake, y)
            neg_l_g = generator_adversarial_loss(s_fake, g_loss_kind)
            l_f = perceptual_loss(features(ln, fake), phi_clean) if gamma > 0 else jnp.zeros(())
            total = generator_objective(jax.lax.stop_gradient(l_a), l_b, neg_l_g, l_f, alpha, beta, gamma)
            return total, (g_stats, {"l_b": l_b, "neg_l_g": neg_l_g, "l_f": l_f})

        (loss, (g_stats, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
        g = g.apply_gradients(grads=grads, batch_stats=g_stats)
        return {**state, "generator": g}, {"loss_g": loss, **aux}

    def atgan_step(state, batch, key):
        k_attack, k_d, k_g = jax.random.split(key, 3)
        x, y = batch["image"], batch["label"]
        eps_now = attack.eps(state["discriminator"].step)
        if fraction > 0.0:
            x_adv = adversarial_examples(state, x, y, k_attack, eps_now)
            x_in = common.mix_adversarial(x, x_adv, fraction)
        else:
            x_in = x
        state, d_metrics = d_step(state, x, x_in, y, k_d)
        state, g_metrics = g_step(state, x, x_in, y, k_g, d_metrics["l_a"])
        return state, {**d_metrics, **g_metrics, "eps": eps_now}

    def pretrain_step(state, batch, key):
        ln, metrics = supervised.update(state["loss_net"], supervised.ce_objective(), batch, None, key)
        return {**state, "loss_net": ln}, {f"loss_net_{k}": v for k, v in metrics.items()}

    def classifier(state):
        g, d = state["generator"], state["discriminator"]
        return _composed(g, d, eval_variables(g), eval_variables(d))

    return Parts(
        generator=generator, discriminator=discriminator, loss_net=loss_net, hparams=hp, init=init,
        adversarial_examples=adversarial_examples, d_step=d_step, g_step=g_step, atgan_step=atgan_step,
        pretrain_step=pretrain_step, classifier=classifier, pretrain_steps=pretrain_steps,
        atgan_steps=atgan_steps,
    )


def baseline_config(config):
    """The paper's baseline (Sec. 4.3) for an ATGAN config: the discriminator's body alone (the same
    ``config.model``, no generator, no discrimination head) trained with the same data, budget,
    discriminator optimizer and evaluation, by PGD-AT (FracAT with the same ``adv_fraction``) on the same
    train-time attack, or by standard training when ATGAN trains without AT (``adv_fraction`` 0 or eps 0).

    Returns a new config (``config`` is not changed).
    """
    c = config.copy_and_resolve_references()
    d = c.defense
    adversarial = float(d.get("adv_fraction", 1.0)) > 0 and float(d.attack.get("eps", 0.0)) > 0
    if adversarial:
        c.defense = {"name": "pgd_at", "attack": fields.plain(d.attack), "adv_fraction": float(d.adv_fraction),
                     "eps_ramp_epochs": float(d.get("eps_ramp_epochs", 0.0))}
    else:
        c.defense = {"name": "standard"}
    optimizers = c.train.optimizers
    if "discriminator" in optimizers:
        c.train.optimizer = fields.plain(optimizers.discriminator)
    c.train.optimizers = {}
    return c


def make(config, info, steps_per_epoch: int) -> Defense:
    """ATGAN as a :class:`Defense`: phases ``pretrain_loss_net`` (unless restored or 0) and ``atgan``."""
    parts = build(config, info, steps_per_epoch)
    phases = []
    if parts.pretrain_steps > 0:
        phases.append(Phase("pretrain_loss_net", parts.pretrain_steps, parts.pretrain_step))
    phases.append(Phase("atgan", parts.atgan_steps, parts.atgan_step))
    def reconstruct(state):  # G(x) in eval mode: the report's `samples` figure draws it
        g = state["generator"]
        return lambda x: g.apply_fn(eval_variables(g), x, train=False)

    return Defense(name="atgan", init=parts.init, phases=tuple(phases), classifier=parts.classifier,
                   networks=NETWORKS, reconstruct=reconstruct)


__all__ = [
    "FIELDS",
    "baseline_config",
    "NETWORKS",
    "GENERATOR_LOSSES",
    "Parts",
    "build",
    "discriminator_objective",
    "discrimination_loss",
    "generator_adversarial_loss",
    "generator_objective",
    "make",
    "perceptual_loss",
    "read_config",
    "load_network",
]
