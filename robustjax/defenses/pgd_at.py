"""Madry et al. PGD adversarial training (and FGSM-AT / mixed clean+adversarial variants).

    defense = pgd_at.make(config, info, steps_per_epoch)
    # each step: x_adv = attacks.pgd(eval-mode classifier, x, y, ...); one optimizer step on x_adv

Config (``config.defense``): ``eps``, ``step_size``, ``num_steps``, ``random_start``, ``norm``
("linf" | "l2"), ``adv_fraction`` (1.0 = Madry; 0.5 = Goodfellow et al.'s half clean, half adversarial),
``eps_ramp_epochs`` (linear eps curriculum from 0; MNIST at eps 0.3 stalls without one, see
docs/results.md), ``loss`` ("ce" | "margin").

The attack sees the classifier in eval mode (BatchNorm running statistics): the model as it is deployed.
"""

from __future__ import annotations

import jax

from robustjax import attacks, models
from robustjax.defenses import common
from robustjax.defenses.base import Defense, Phase, create_train_state, eval_logits_fn


def make(config, info, steps_per_epoch: int) -> Defense:
    d = config.defense
    model = models.make(config.model, info.num_classes)
    num_steps = common.train_num_steps(config, steps_per_epoch)
    tx = common.optimizer_for(config, "classifier", steps_per_epoch, num_steps)
    ema = float(config.train.get("ema_decay", 0.0))
    eps, step_size, attack_steps = float(d.eps), float(d.step_size), int(d.num_steps)
    ramp_steps = int(round(float(d.get("eps_ramp_epochs", 0.0)) * steps_per_epoch))
    fraction = float(d.get("adv_fraction", 1.0))
    norm, loss, random_start = str(d.get("norm", "linf")), str(d.get("loss", "ce")), bool(d.random_start)
    bounds = tuple(info.bounds)

    def init(key, batch):
        return {"classifier": create_train_state(model, key, batch["image"], tx, ema)}

    def train_step(state, batch, key):
        cls = state["classifier"]
        attack_key, dropout_key = jax.random.split(key)
        x, y = batch["image"], batch["label"]
        eps_now = common.ramp(eps, cls.step, ramp_steps)
        x_adv = attacks.pgd(
            eval_logits_fn(cls), x, y, attack_key, eps=eps_now,
            step_size=step_size * (eps_now / eps if ramp_steps > 0 and eps > 0 else 1.0),
            num_steps=attack_steps, norm=norm, random_start=random_start, loss=loss, bounds=bounds,
        )
        cls, metrics = common.supervised_update(cls, common.mix_adversarial(x, x_adv, fraction), y, dropout_key)
        return {"classifier": cls}, {**metrics, "eps": eps_now}

    return Defense(
        name="pgd_at",
        init=init,
        phases=(Phase("train", num_steps, train_step),),
        classifier=lambda state: eval_logits_fn(state["classifier"]),
    )
