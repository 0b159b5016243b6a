"""Feature squeezing (Xu, Evans & Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", 2018) as an input transform in front of a classifier: bit-depth reduction, optionally after
a median filter.

    defense = feature_squeezing.make(config, info, steps_per_epoch)   # configs/feature_squeezing_*.py
    logits_fn = defense.classifier(state)          # x -> classifier(squeeze(x))
    attack_fn = defense.attack_model(state)        # BPDA: squeeze's values, the identity's gradient

The squeezer (:func:`squeeze`), applied to every input of the deployed classifier:

- ``median_size`` k >= 2: a k x k median filter per image and channel (:func:`median_filter`), as
  ``scipy.ndimage.median_filter(x, size=(1, k, k, 1), mode="reflect")`` computes it (Xu et al.'s code):
  for an even k the window covers offsets ``-k//2 .. k - 1 - k//2`` and the median is the upper one of
  the two middle values; the border is mirrored (``d c b a | a b c d``). 0 or 1: no median filter.
- ``bit_depth`` b: :func:`reduce_bit_depth`, ``round(x (2^b - 1)) / (2^b - 1)`` on pixels scaled to [0,
  1] by the dataset's bounds (1 bit on MNIST: a threshold at 0.5; 3 bits on CIFAR-10: Xu et al.'s and
  Zantedeschi et al.'s settings). Rounding is to the nearest level, ties to even (``jnp.round``).

The median filter comes first, so the classifier always sees pixels on the 2^b-level grid.

What an attacker sees: the deployed classifier is ``classifier(squeeze(x))``; its gradient through the
rounding is zero almost everywhere, so the naive attacker (an eval spec with ``"adaptive": False``) does
not move. The adaptive attacker uses BPDA (Athalye et al.) with the identity as the surrogate: the
squeezed classifier's values, the gradient of ``classifier(x)``. The evaluation shows both.

Chosen here (the papers do not settle it): the classifier also trains on squeezed inputs
(``train_on_squeezed=True``), so it is trained on the inputs it will see when deployed: the defense at
its strongest. Xu et al. put the squeezer in front of a model trained as usual; set
``train_on_squeezed=False`` for that. The defense accepts the supervised skeleton's fields as well
(``attack``, ``adv_fraction``, ``eps_ramp_epochs``), so it can be combined with adversarial training; its
configs set no train-time attack.
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from robustjax.defenses import fields, supervised
from robustjax.types import Array

FIELDS: dict[str, fields.Field] = {
    **supervised.FIELDS,
    "bit_depth": fields.Field(fields.REQUIRED, fields.integer(1, 8),
                              "bits per pixel after squeezing: 1 on MNIST, 3 on CIFAR-10 (Xu et al.)"),
    "median_size": fields.Field(0, fields.integer(0, 8),
                                "k x k median filter before the bit-depth reduction (0 or 1: none; Xu et al.: 2)"),
    "train_on_squeezed": fields.Field(True, fields.boolean(),
                                      "the classifier also trains on squeezed inputs"),
}
NETWORKS = ("classifier",)


def reduce_bit_depth(x: Array, bits: int, bounds=(0.0, 1.0)) -> Array:
    """Pixels rounded to ``2**bits`` evenly spaced levels of ``bounds`` (both ends included).

    ``lo + (hi - lo) * round((x - lo) / (hi - lo) * (2^b - 1)) / (2^b - 1)``; values outside the box are
    clipped first.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    levels = float(2 ** int(bits) - 1)
    unit = jnp.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return lo + (hi - lo) * jnp.round(unit * levels) / levels


def median_filter(x: Array, size: int) -> Array:
    """A ``size x size`` median filter over H and W of NHWC images, per image and channel.

    The same numbers as ``scipy.ndimage.median_filter(x, size=(1, size, size, 1), mode="reflect")``:
    window offsets ``-size//2 .. size - 1 - size//2`` (for an even size one more above-left than
    below-right), mirrored borders, and the element of rank ``size**2 // 2`` of the sorted window (for an
    even window the upper of the two middle values). ``size <= 1`` returns ``x``.
    """
    size = int(size)
    if size <= 1:
        return x
    before, after = size // 2, size - 1 - size // 2
    padded = jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode="symmetric")
    h, w = x.shape[1], x.shape[2]
    windows = jnp.stack([padded[:, i:i + h, j:j + w, :] for i in range(size) for j in range(size)], axis=-1)
    return jnp.sort(windows, axis=-1)[..., (size * size) // 2]


def squeeze(x: Array, *, bit_depth: int, median_size: int = 0, bounds=(0.0, 1.0)) -> Array:
    """The squeezer: ``reduce_bit_depth(median_filter(x, median_size), bit_depth, bounds)``."""
    return reduce_bit_depth(median_filter(x, median_size), bit_depth, bounds)


def read_config(config) -> dict[str, Any]:
    return fields.read(config.defense, FIELDS, "config.defense")


def input_transform(hp, bounds) -> supervised.InputTransform:
    """The squeezer of the checked fields ``hp`` as the skeleton's :class:`~robustjax.defenses.
    supervised.InputTransform`: deployed ``fn`` = :func:`squeeze`, BPDA surrogate = the identity."""
    fn = functools.partial(squeeze, bit_depth=int(hp["bit_depth"]), median_size=int(hp["median_size"]),
                           bounds=(float(bounds[0]), float(bounds[1])))
    return supervised.InputTransform(fn=fn, surrogate=lambda x: x, in_training=bool(hp["train_on_squeezed"]))


def make(config, info, steps_per_epoch: int):
    hp = read_config(config)
    return supervised.make(config, info, steps_per_epoch, name="feature_squeezing", hp=hp,
                           input_transform=input_transform(hp, info.bounds))


__all__ = ["FIELDS", "NETWORKS", "input_transform", "make", "median_filter", "read_config",
           "reduce_bit_depth", "squeeze"]
