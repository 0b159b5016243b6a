"""Plain (clean) training: the baseline every defense is compared with.

    defense = standard.make(config, info, steps_per_epoch)
    state = defense.init(key, batch)
    logits_fn = defense.classifier(state)

Config: ``config.defense.label_smoothing`` (0 = none; >0 turns this into the label-smoothing baseline).
"""

from __future__ import annotations

from robustjax import models
from robustjax.defenses import common
from robustjax.defenses.base import Defense, Phase, create_train_state, eval_logits_fn


def make(config, info, steps_per_epoch: int) -> Defense:
    model = models.make(config.model, info.num_classes)
    num_steps = common.train_num_steps(config, steps_per_epoch)
    tx = common.optimizer_for(config, "classifier", steps_per_epoch, num_steps)
    smoothing = float(config.defense.get("label_smoothing", 0.0))
    ema = float(config.train.get("ema_decay", 0.0))

    def init(key, batch):
        return {"classifier": create_train_state(model, key, batch["image"], tx, ema)}

    def train_step(state, batch, key):
        cls, metrics = common.supervised_update(
            state["classifier"], batch["image"], batch["label"], key, label_smoothing=smoothing
        )
        return {"classifier": cls}, metrics

    return Defense(
        name="standard",
        init=init,
        phases=(Phase("train", num_steps, train_step),),
        classifier=lambda state: eval_logits_fn(state["classifier"]),
    )
