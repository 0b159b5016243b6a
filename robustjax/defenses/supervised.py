"""The supervised skeleton: a single-classifier defense is a short recipe over shared parts.

    from robustjax.defenses import supervised
    FIELDS = {**supervised.FIELDS, "beta": fields.Field(6.0, fields.number(0.0))}

    def objective(apply, params, batch_stats, batch, x_adv, key):
        logits, batch_stats = apply(params, batch_stats, x_adv, key)
        return cross_entropy(logits, batch["label"]), batch_stats, {}

    def make(config, info, steps_per_epoch):
        return supervised.make(config, info, steps_per_epoch, name="my_defense", fields=FIELDS,
                               objective=objective)

What the skeleton does in every step (``train_step(state, batch, key)``, pure, jitted by the loop):

1. ``augment(key, batch) -> batch`` if the recipe has one (GDA: Gaussian copies of each example).
2. If ``config.defense.attack`` is set: ``x_adv`` = that attack (a spec in the format of
   ``config.eval.attacks``, resolved by :func:`robustjax.attacks.resolve`) against the classifier in eval
   mode (BatchNorm running statistics: the model as deployed), with the eps curriculum
   ``eps_ramp_epochs`` applied; then FracAT: only the first ``round(adv_fraction * B)`` rows are
   adversarial (:func:`robustjax.defenses.common.mix_adversarial`). Without an attack ``x_adv`` is None.
   A recipe whose attack ascends something other than the spec's loss gives ``attack_loss(logits_fn, x,
   y) -> loss_fn`` (TRADES: the KL from the clean prediction); the spec's other numbers stay.
3. One optimizer step on ``objective(apply, params, batch_stats, batch, x_adv, key) -> (loss,
   batch_stats, metrics)``, where ``apply(params, batch_stats, x, key) -> (logits, batch_stats)`` runs
   the classifier in train mode (dropout from ``key``, BatchNorm statistics threaded through: call it
   several times and pass the statistics along). The gradient is taken w.r.t. ``params`` only.

A recipe may also put an ``input_transform`` in front of the classifier (feature squeezing): the deployed
classifier is ``logits(transform(x))``; a transform that is not usefully differentiable gives its
``surrogate`` (default: identity) and the attacker gets BPDA (:func:`robustjax.defenses.base.bpda`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from robustjax import attacks, models
from robustjax.attacks.spec import LOSSES_OF
from robustjax.defenses import common, fields
from robustjax.defenses.base import (
    Defense,
    Phase,
    TrainState,
    accuracy,
    bpda,
    create_train_state,
    cross_entropy,
    eval_logits_fn,
    train_apply,
)
from robustjax.types import Array, Batch, LogitsFn, Metrics, PRNGKey, PyTree

ApplyFn = Callable[[PyTree, PyTree, Array, PRNGKey], tuple[Array, PyTree]]
Objective = Callable[[ApplyFn, PyTree, PyTree, Batch, "Array | None", PRNGKey], tuple[Array, PyTree, Metrics]]
Augment = Callable[[PRNGKey, Batch], Batch]
# (eval-mode logits_fn, x, y) -> per-example loss (logits, labels) -> [B] for the train-time attack to ascend
AttackLoss = Callable[[LogitsFn, Array, Array], Callable[[Array, Array], Array]]

# The fields every supervised defense has (a recipe adds its own).
FIELDS: dict[str, fields.Field] = {
    "name": fields.Field(doc="the defense's name"),
    "attack": fields.Field(None, fields.attack_spec(optional=True),
                           "the train-time attack, a spec like config.eval.attacks' (None: no attack)"),
    "adv_fraction": fields.Field(1.0, fields.number(0.0, 1.0),
                                 "FracAT: the fraction of each batch replaced by adversarial examples"),
    "eps_ramp_epochs": fields.Field(0.0, fields.number(0.0),
                                    "linear curriculum of the attack's eps from 0 over this many epochs"),
}


@dataclasses.dataclass(frozen=True)
class InputTransform:
    """A fixed transform in front of the classifier (e.g. feature squeezing's bit-depth reduction).

    ``fn`` is what is deployed; ``surrogate`` what an adaptive attacker differentiates instead (BPDA),
    ``None`` when ``fn`` itself is differentiable enough; ``in_training``: the classifier also trains on
    transformed inputs.
    """

    fn: Callable[[Array], Array]
    surrogate: Callable[[Array], Array] | None = lambda x: x
    in_training: bool = True


class TrainAttack:
    """A train-time attack from a spec, with the eps curriculum applied.

        atk = TrainAttack(hp["attack"], bounds, ramp_steps=..., where="config.defense.attack")
        x_adv = atk(logits_fn, x, y, key, step)         # eps ramps linearly to the spec's over ramp_steps
        atk.eps(step)                                   # the eps in force at a step (for the metrics)

    A step size given in absolute units is kept relative to eps (``step_size / eps`` of the spec): the
    same at the spec's eps, and scaled with eps while it ramps up or when a caller overrides it.
    """

    def __init__(self, spec: Mapping[str, Any], bounds, *, ramp_steps: int = 0, where: str = "attack"):
        spec = dict(spec)
        self.target_eps = float(spec.get("eps", 0.0))
        if "step_size" in spec and 0.0 < self.target_eps < float("inf"):
            spec["rel_step_size"] = float(spec.pop("step_size")) / self.target_eps
        self.spec = attacks.resolve(spec, where=where)
        self.bounds = tuple(float(b) for b in bounds)
        self.ramp_steps = int(ramp_steps)

    def eps(self, step: Array) -> Array:
        return common.ramp(self.target_eps, step, self.ramp_steps)

    def __call__(self, logits_fn: LogitsFn, x: Array, y: Array, key: PRNGKey, step: Array, *,
                 loss: Callable[[Array, Array], Array] | None = None, **overrides) -> Array:
        """The attack at ``step``; ``loss``: a per-example ``(logits, labels) -> [B]`` that the attack
        ascends instead of the spec's (for attacks with a ``loss`` keyword), the spec's numbers kept."""
        if self.spec.budget:
            overrides.setdefault("eps", self.eps(step))
        if loss is None:
            return self.spec(logits_fn, x, y, key, bounds=self.bounds, **overrides)
        if not LOSSES_OF.get(self.spec.name, ((), False))[1]:
            takes = sorted(name for name, (_, functions) in LOSSES_OF.items() if functions)
            raise ValueError(f"{self.spec.where}.attack: {self.spec.name} takes no loss function; these do: {takes}")
        kw = {**self.spec.kwargs, "loss": loss}
        eps = overrides.get("eps", self.spec.eps)
        if eps is not None:
            kw["eps"] = eps
            if self.spec.rel_step_size is not None:
                kw["step_size"] = self.spec.rel_step_size * eps
        return self.spec.fn(logits_fn, x, y, key, bounds=self.bounds, **kw)


def train_attack(hp: Mapping[str, Any], info, steps_per_epoch: int) -> TrainAttack | None:
    """The :class:`TrainAttack` of ``hp["attack"]`` (None if unset), with ``hp["eps_ramp_epochs"]``."""
    if not hp.get("attack"):
        return None
    ramp = int(round(float(hp.get("eps_ramp_epochs", 0.0)) * steps_per_epoch))
    return TrainAttack(hp["attack"], info.bounds, ramp_steps=ramp, where="config.defense.attack")


def network_apply(state: TrainState) -> ApplyFn:
    """``(params, batch_stats, x, key) -> (logits, batch_stats)``: the network in train mode."""

    def apply(params, batch_stats, x, key):
        return train_apply(state.replace(batch_stats=batch_stats), params, x, key)

    return apply


def ce_objective(label_smoothing: float = 0.0) -> Objective:
    """Cross-entropy on ``x_adv`` when there is one, else on the clean batch (standard / Madry AT)."""

    def objective(apply, params, batch_stats, batch, x_adv, key):
        x = batch["image"] if x_adv is None else x_adv
        logits, batch_stats = apply(params, batch_stats, x, key)
        return cross_entropy(logits, batch["label"], label_smoothing), batch_stats, {
            "accuracy": accuracy(logits, batch["label"])}

    return objective


def mixed_objective(alpha: float, pairing_weight: float = 0.0) -> Objective:
    """``alpha * CE(x) + (1 - alpha) * CE(x_adv) + pairing_weight * mean((z(x) - z(x_adv))^2)``.

    Goodfellow et al.'s adversarial objective (``alpha`` 0.5), Kannan et al.'s mixed-minibatch PGD (the
    same with PGD examples) and adversarial logit pairing (``pairing_weight`` > 0: the squared difference
    of the clean and adversarial logits, averaged over examples and classes). Clean and adversarial
    examples go through the network as one batch of ``2B`` (BatchNorm statistics over both, as in Kannan
    et al.'s mixed minibatches); with ``alpha == 0`` and no pairing only ``x_adv`` is run. Without an
    attack (``x_adv`` None) this is cross-entropy on the clean batch.
    """
    alpha, pairing_weight = float(alpha), float(pairing_weight)

    def objective(apply, params, batch_stats, batch, x_adv, key):
        x, y = batch["image"], batch["label"]
        if x_adv is None:
            return ce_objective()(apply, params, batch_stats, batch, x_adv, key)
        if alpha == 0.0 and pairing_weight == 0.0:
            adv, batch_stats = apply(params, batch_stats, x_adv, key)
            ce_adv = cross_entropy(adv, y)
            return ce_adv, batch_stats, {"ce_adv": ce_adv, "accuracy_adv": accuracy(adv, y)}
        logits, batch_stats = apply(params, batch_stats, jnp.concatenate([x, x_adv]), key)
        clean, adv = jnp.split(logits, 2)
        ce_clean, ce_adv = cross_entropy(clean, y), cross_entropy(adv, y)
        loss = alpha * ce_clean + (1.0 - alpha) * ce_adv
        metrics = {"ce_clean": ce_clean, "ce_adv": ce_adv, "accuracy": accuracy(clean, y),
                   "accuracy_adv": accuracy(adv, y)}
        if pairing_weight:
            pairing = jnp.mean(jnp.square(clean - adv))
            loss = loss + pairing_weight * pairing
            metrics["pairing"] = pairing
        return loss, batch_stats, metrics

    return objective


def update(state: TrainState, objective: Objective, batch: Batch, x_adv: Array | None,
           key: PRNGKey) -> tuple[TrainState, Metrics]:
    """One optimizer step of ``state`` on ``objective`` (see the module docstring)."""
    apply = network_apply(state)

    def loss_fn(params):
        loss, stats, metrics = objective(apply, params, state.batch_stats, batch, x_adv, key)
        return loss, (stats, metrics)

    (loss, (stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=stats)
    return state, {"loss": loss, **metrics}


def make_step(objective: Objective, *, attack: TrainAttack | None = None, adv_fraction: float = 1.0,
              augment: Augment | None = None, input_transform: InputTransform | None = None,
              network: str = "classifier", attack_loss: AttackLoss | None = None):
    """The skeleton's pure ``train_step(state, batch, key)`` for ``state[network]``.

    With an ``input_transform`` the train-time attack targets the deployed model (network after the
    transform; through the transform's surrogate by BPDA when it has one) on raw inputs, and, when the
    transform is ``in_training``, the objective sees the transformed clean and adversarial batches.
    ``attack_loss(logits_fn, x, y)`` gives the attack its own per-example loss (TRADES' KL).
    """

    def train_step(state, batch, key):
        k_aug, k_attack, k_obj = jax.random.split(key, 3)
        if augment is not None:
            batch = augment(k_aug, batch)
        net = state[network]
        x, y = batch["image"], batch["label"]
        x_adv, extra = None, {}
        if attack is not None:
            logits_fn = deployed(eval_logits_fn(net), input_transform, adaptive=True)
            loss = attack_loss(logits_fn, x, y) if attack_loss is not None else None
            x_adv = attack(logits_fn, x, y, k_attack, net.step, loss=loss)
            x_adv = common.mix_adversarial(x, x_adv, adv_fraction)
            extra = {"eps": attack.eps(net.step)}
        if input_transform is not None and input_transform.in_training:
            batch = {**batch, "image": input_transform.fn(x)}
            x_adv = None if x_adv is None else input_transform.fn(x_adv)
        net, metrics = update(net, objective, batch, x_adv, k_obj)
        return {**state, network: net}, {**metrics, **extra}

    return train_step


def deployed(logits_fn: LogitsFn, input_transform: InputTransform | None, adaptive: bool = False) -> LogitsFn:
    """``logits_fn`` behind ``input_transform`` (if any); ``adaptive``: with the BPDA gradient of the
    transform's surrogate."""
    if input_transform is None:
        return logits_fn
    forward = _compose(logits_fn, input_transform.fn)
    if adaptive and input_transform.surrogate is not None:
        return bpda(forward, _compose(logits_fn, input_transform.surrogate))
    return forward


def _compose(logits_fn: LogitsFn, transform: Callable[[Array], Array]) -> LogitsFn:
    return lambda x: logits_fn(transform(x))


def classifier_network(config, info, steps_per_epoch: int, num_steps: int, name: str = "classifier",
                       model=None):
    """``(module, init)`` of a classifier network with its optimizer (``config.train.optimizers[name]``
    over ``config.train.optimizer``) and EMA (``config.train.ema_decay``); ``init(key, x) -> TrainState``."""
    module = model if model is not None else models.make(config.model, info.num_classes)
    tx = common.optimizer_for(config, name, steps_per_epoch, num_steps)
    ema = float(config.train.get("ema_decay", 0.0))
    return module, lambda key, x: create_train_state(module, key, x, tx, ema)


def make(config, info, steps_per_epoch: int, *, name: str, schema: Mapping[str, fields.Field] = FIELDS,
         objective: Objective | None = None, augment: Augment | None = None,
         input_transform: InputTransform | None = None, hp: Mapping[str, Any] | None = None,
         hints: Mapping[str, str] | None = None, attack_loss: AttackLoss | None = None) -> Defense:
    """A single-classifier defense on the skeleton (see the module docstring).

    Args:
      config: the run's config; ``config.defense`` is read with ``schema`` (its fields; ``hints`` for
        names that are not fields) unless ``hp`` is given.
      info: the dataset's ``DataInfo``; steps_per_epoch: training steps per epoch.
      name: the defense's name (reports, metrics).
      objective: the recipe's loss; default cross-entropy (with ``hp["label_smoothing"]`` if present).
      augment: optional ``(key, batch) -> batch`` applied before the attack.
      input_transform: optional :class:`InputTransform` in front of the classifier.
      hp: the already-read defense fields (recipes that read them first pass them on).
      attack_loss: optional ``(logits_fn, x, y) -> loss_fn``: what the train-time attack ascends instead
        of its spec's loss (see :meth:`TrainAttack.__call__`).
    """
    hp = dict(hp) if hp is not None else fields.read(config.defense, schema, "config.defense", hints)
    num_steps = common.train_num_steps(config, steps_per_epoch)
    _, init_net = classifier_network(config, info, steps_per_epoch, num_steps)
    if objective is None:
        objective = ce_objective(float(hp.get("label_smoothing", 0.0)))
    step = make_step(objective, attack=train_attack(hp, info, steps_per_epoch),
                     adv_fraction=float(hp.get("adv_fraction", 1.0)), augment=augment,
                     input_transform=input_transform, attack_loss=attack_loss)

    def init(key, batch):
        return {"classifier": init_net(key, jnp.asarray(batch["image"]))}

    def classifier(state):
        return deployed(eval_logits_fn(state["classifier"]), input_transform)

    surrogate = None
    if input_transform is not None and input_transform.surrogate is not None:
        def surrogate(state):
            return _compose(eval_logits_fn(state["classifier"]), input_transform.surrogate)

    return Defense(name=name, init=init, phases=(Phase("train", num_steps, step),), classifier=classifier,
                   networks=("classifier",), surrogate=surrogate)
