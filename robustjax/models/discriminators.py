"""Discriminators: AC-GAN-style (a classifier body with a class head D_c and a real/fake head D_d),
GanDef's discriminator on a classifier's logits, and a WGAN critic (:class:`WGANCritic`, Defense-GAN's).

    from robustjax.models import discriminators
    d = discriminators.make_discriminator(config.model, num_classes=10)     # body = models.make(.., 0)
    class_logits, source_logit = d.apply(variables, x)                      # [B, K], [B]
    d = discriminators.LogitDiscriminator(hidden=(32, 64))                  # GanDef: logits z [B, K] ->
    source_logit = d.apply(variables, z)                                    # [B] (> 0: "adversarial")

ATGAN (Wang et al.) uses one network D for two jobs (Odena et al.'s auxiliary-classifier GAN): ``D_c``
classifies an image into ``k`` classes, ``D_d`` says whether it is a clean image (real) or a generator
output (fake). Both heads are linear layers on the penultimate features of the body, a classifier from
``robustjax.models`` built with ``num_classes=0`` (the C&W CNN for MNIST, DenseNet40 for SVHN, ResNet18
for CIFAR-10 in the paper). ``D_d`` returns a logit (``sigmoid(logit)`` = probability of "real"), so the
losses can use the numerically stable sigmoid cross-entropy.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from robustjax.types import Array


class ACDiscriminator(nn.Module):
    """``x -> (D_c(x) [B, K] class logits, D_d(x) [B] real-vs-fake logit)``.

    Attributes:
      body: a module ``(x, train) -> features [B, F]`` (a classifier built with ``num_classes=0``);
        any extra axes of its output are flattened.
      num_classes: classes of the ``D_c`` head (>= 1).
    """

    body: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> tuple[Array, Array]:
        if self.num_classes < 1:
            raise ValueError(f"ACDiscriminator needs num_classes >= 1 for its D_c head, got {self.num_classes}")
        h = self.body(x, train=train)
        h = h.reshape((h.shape[0], -1))
        class_logits = nn.Dense(self.num_classes, name="class_head")(h)
        source_logit = nn.Dense(1, name="source_head")(h)
        return class_logits, jnp.squeeze(source_logit, -1)


class LogitDiscriminator(nn.Module):
    """GanDef's discriminator D (Liu et al.): ``z [B, K] -> [B]``, a logit of "z came from an adversarial
    input" (``sigmoid(logit)`` = q_D(s = adversarial | z)).

    D sees only the classifier's pre-softmax logits ``z`` (never the image). An MLP: Dense(h)-ReLU for
    each ``h`` in ``hidden``, then Dense(1). The paper does not give D's layers; GanDef's config
    docstrings say what is chosen and why (robustjax/defenses/gandef.py).

    Attributes:
      hidden: hidden layer sizes (at least one), each followed by a ReLU.
    """

    hidden: tuple[int, ...] = (32, 64)

    @nn.compact
    def __call__(self, z: Array, train: bool = False) -> Array:
        if z.ndim != 2:
            raise ValueError(f"LogitDiscriminator expects logits [B, K]; got shape {z.shape}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"LogitDiscriminator.hidden must be a non-empty list of sizes >= 1; got {self.hidden!r}")
        h = jnp.asarray(z, jnp.float32)
        for i, n in enumerate(self.hidden):
            h = nn.relu(nn.Dense(int(n), name=f"fc{i + 1}")(h))
        return jnp.squeeze(nn.Dense(1, name="out")(h), -1)


def make_discriminator(model_cfg, num_classes: int) -> ACDiscriminator:
    """An ACDiscriminator whose body is ``robustjax.models.make(model_cfg, num_classes=0)``.

    Args:
      model_cfg: the ``config.model`` section (name, width, activation, ...).
      num_classes: classes of the ``D_c`` head.
    """
    from robustjax import models  # imported here: robustjax/models/__init__.py may import this module

    return ACDiscriminator(body=models.make(model_cfg, 0), num_classes=int(num_classes))


class WGANCritic(nn.Module):
    """A WGAN critic ``x [B, H, W, C] -> score [B]`` (unbounded; higher = more like the data).

    ``n`` blocks Conv(F 2^k, 5, 2)-LeakyReLU(0.2) (``n = generators.upsamplings(H, W)``, ``F = 64 *
    width``), flatten, Dense(1): the mirror of :class:`~robustjax.models.generators.LatentGenerator`. No
    normalisation layer: the gradient penalty of WGAN-GP is taken per example, which BatchNorm would
    couple across the batch (Gulrajani et al. leave it out of the critic for that reason).

    Attributes:
      width: multiplier of every hidden channel count (> 0).
    """

    width: float = 1.0

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        from robustjax.models.generators import upsamplings

        if x.ndim != 4:
            raise ValueError(f"the critic expects NHWC images [B, H, W, C]; got shape {x.shape}")
        n = upsamplings(x.shape[1], x.shape[2])
        h = x
        for k in range(n):
            h = nn.Conv(max(1, int(round(64 * 2 ** k * self.width))), (5, 5), strides=(2, 2), padding="SAME",
                        name=f"conv{k + 1}")(h)
            h = nn.leaky_relu(h, 0.2)
        h = h.reshape((h.shape[0], -1))
        return jnp.squeeze(nn.Dense(1, name="score")(h), -1)


class ACGANBody(nn.Module):
    """Odena et al.'s AC-GAN discriminator body (their Appendix, CIFAR-10 table): ``x -> features [B, F]``.

    Six Conv(3x3)-LeakyReLU(0.2)-Dropout blocks of 16, 32, 64, 128, 256, 512 channels (times ``width``)
    with strides 2, 1, 2, 1, 2, 1 and SAME padding, BatchNorm after every conv but the first; flattened.
    Put the two heads on it with :class:`ACDiscriminator` (BCGAN, ``robustjax/defenses/bcgan.py``).

    Attributes:
      width: multiplier of every channel count (> 0).
      dropout: the dropout rate after each block (Odena et al.: 0.5).
    """

    width: float = 1.0
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        from robustjax.models.layers import ConvNormAct

        if x.ndim != 4:
            raise ValueError(f"the AC-GAN discriminator expects NHWC images [B, H, W, C]; got shape {x.shape}")
        h = x
        for i, (features, stride) in enumerate(((16, 2), (32, 1), (64, 2), (128, 1), (256, 2), (512, 1))):
            h = ConvNormAct(max(1, int(round(features * self.width))), 3, stride, batch_norm=i > 0,
                            activation="leaky_relu")(h, train)
            h = nn.Dropout(self.dropout)(h, deterministic=not train)
        return h.reshape((h.shape[0], -1))


__all__ = ["ACDiscriminator", "ACGANBody", "LogitDiscriminator", "WGANCritic", "make_discriminator"]
