"""Gaussian data augmentation (GDA, Zantedeschi et al. 2017): each training example together with
``copies`` Gaussian-noised copies of it.

    defense = gda.make(config, info, steps_per_epoch)
    batch = gda.augment_fn(copies=10, sigma=0.3, keep_clean=True, bounds=(0, 1))(key, batch)  # B -> 11 B rows

Zantedeschi et al. (Sec. 3.2) minimise the expected loss under ``N(0, sigma^2)`` perturbations by a Monte
Carlo average over ``N`` perturbations per example, and (Sec. 4.1) train "generating ten noisy samples for
each original one", sigma 0.3 on MNIST and 0.05 on CIFAR-10. The paper's objective holds only the noisy
terms, while its text "augments the training set" and, in its toy study, "adds" the perturbed points to
the original ones. Chosen here: the clean example stays (``keep_clean``, the augmentation the experiments
describe), and the copies are clipped into the data's pixel range (the toy study clips every added point
"into the input domain"; section 4 is silent). Both are fields.

The copies are made in the step (the skeleton's ``augment``): a batch of ``B`` examples becomes ``B * (1 +
copies)`` rows, so one epoch over the data is one epoch over the augmented set, each step ``1 + copies``
times larger. The loss is the mean cross-entropy over all rows. With ``config.model.activation =
"brelu"`` (bounded ReLU, ``config.model.brelu_t``: 1 in the paper) this is GDA + BReLU.

Config (``config.defense``): ``copies`` (N = 10), ``sigma`` (0.3), ``keep_clean`` (True), ``clip`` (True).
Configs: ``gda_{mnist,cifar10}`` (LeNet / the paper's CNN, this library's comparison setting) and
``gda_brelu_{mnist,cifar10}`` (the paper's CNN and ResNet, its compared defenses and whole evaluation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from robustjax.defenses import fields, supervised

FIELDS = {
    "name": fields.Field(),
    "copies": fields.Field(10, fields.integer(1), "N: Gaussian-noised copies of each example"),
    "sigma": fields.Field(0.3, fields.number(0.0, lo_open=True), "the noise's standard deviation (pixel units)"),
    "keep_clean": fields.Field(True, fields.boolean(), "train on the clean example as well as its copies"),
    "clip": fields.Field(True, fields.boolean(), "clip the copies into the data's pixel range"),
}
NETWORKS = ("classifier",)


def augment_fn(*, copies: int, sigma: float, keep_clean: bool = True, bounds=None):
    """``(key, batch) -> batch``: ``[clean rows,] copy 1 of every row, ..., copy N of every row``."""

    def augment(key, batch):
        x, y = batch["image"], batch["label"]
        noisy = x[None] + sigma * jax.random.normal(key, (copies,) + x.shape, x.dtype)
        if bounds is not None:
            noisy = jnp.clip(noisy, bounds[0], bounds[1])
        images = noisy.reshape((copies * x.shape[0],) + x.shape[1:])
        labels = jnp.tile(y, copies)
        if keep_clean:
            images, labels = jnp.concatenate([x, images]), jnp.concatenate([y, labels])
        return {**batch, "image": images, "label": labels}

    return augment


def make(config, info, steps_per_epoch: int):
    hp = fields.read(config.defense, FIELDS, "config.defense")
    augment = augment_fn(copies=hp["copies"], sigma=hp["sigma"], keep_clean=hp["keep_clean"],
                         bounds=info.bounds if hp["clip"] else None)
    return supervised.make(config, info, steps_per_epoch, name="gda", hp=hp, augment=augment)
