"""The perturbation generator G of PGN ("Adversarial Training with Perturbation Generator Networks",
Table 1 and Fig. 1): ``G(grad, x, y) -> perturbation`` in the tanh space of Eq. 5.

    from robustjax.models import pgn_generator
    g = pgn_generator.PerturbationGenerator(num_classes=10)
    variables = g.init(key, grad, x, y)              # grad, x: [B, H, W, C]; y: int labels [B]
    delta_w = g.apply(variables, grad, x, y)         # [B, H, W, C], unbounded (linear output)

Table 1's layers, for a 32x32xC image and K classes (``K`` = 10 or 100; every upconv is a 3x3 transposed
convolution with SAME padding, so stride 2 doubles H and W)::

    y (one-hot, K)  -> Dense 1024                     -> [B, 1024]
    concat y        -> Dense 8192                     -> [B, 8192]
    reshape                                           -> [B, 8, 8, 128]
    concat y (broadcast over H, W) -> Upconv 128 s2   -> [B, 16, 16, 128]
    concat y        -> Upconv 128 s2                  -> [B, 32, 32, 128]
    concat [x, grad] -> Upconv 128 s1                 -> [B, 32, 32, 128]
    Upconv C s1 (linear)                              -> [B, 32, 32, C]

8,966,147 parameters for K = 10 on 32x32x3 (tests/test_pgn.py counts them by hand).

Choices made here (Table 1 does not say):

- Hidden activation: leaky ReLU with slope 0.2 after every layer but the last (the classifier of the same
  table uses it too; see ``PGNConvPoolCNN``); the output is linear as the paper says (Sec. 4.1: no tanh
  on G, the box is handled by Eq. 5). No normalisation layers (Table 1 lists none), so the generator's
  state is its parameters only.
- "Concatenate with y (reshape)": the one-hot label broadcast to every pixel as ``K`` extra channels.
- Other image sizes: the dense layer makes an ``(H / 4) x (W / 4) x 128`` map (8 x 8 x 128 = 8192 at
  32x32), so H and W must be multiples of 4.
- The gradient image enters unscaled, as it is.
- ``width`` multiplies every hidden size (1024, 128) for smoke tests; 1.0 is the paper's network.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from robustjax.types import Array

UPSAMPLE = 4  # two stride-2 upconvs: the dense map is (H / 4) x (W / 4)


def _scaled(n: int, width: float) -> int:
    return max(1, int(n * width + 0.5))


class PerturbationGenerator(nn.Module):
    """``(grad, x, y) -> G`` (see the module docstring).

    Attributes:
      num_classes: K, the size of the one-hot label input.
      width: multiplier of every hidden size (> 0).
      negative_slope: the leaky ReLU's slope below zero.
    """

    num_classes: int = 10
    width: float = 1.0
    negative_slope: float = 0.2

    @nn.compact
    def __call__(self, grad: Array, x: Array, y: Array, train: bool = False) -> Array:
        del train  # no dropout, no BatchNorm: the same in both modes
        if x.ndim != 4 or grad.shape != x.shape:
            raise ValueError(f"PerturbationGenerator expects grad and x of the same NHWC shape; got {grad.shape} "
                             f"and {x.shape}")
        b, h, w, c = x.shape
        if h % UPSAMPLE or w % UPSAMPLE:
            raise ValueError(f"PerturbationGenerator upsamples a dense map twice by 2: image height and width must "
                             f"be multiples of {UPSAMPLE}, got {h}x{w}")
        if not self.width > 0:
            raise ValueError(f"PerturbationGenerator width must be > 0, got {self.width!r}")
        act = lambda v: nn.leaky_relu(v, negative_slope=self.negative_slope)  # noqa: E731
        hidden, ch = _scaled(1024, self.width), _scaled(128, self.width)
        h0, w0 = h // UPSAMPLE, w // UPSAMPLE
        onehot = jax.nn.one_hot(y, self.num_classes, dtype=x.dtype)

        def with_label(fmap):
            label_map = jnp.broadcast_to(onehot[:, None, None, :], fmap.shape[:3] + (self.num_classes,))
            return jnp.concatenate([fmap, label_map], axis=-1)

        upconv = lambda f, s, name: nn.ConvTranspose(f, (3, 3), strides=(s, s), padding="SAME", name=name)  # noqa: E731
        z = act(nn.Dense(hidden, name="dense1")(onehot))
        z = act(nn.Dense(h0 * w0 * ch, name="dense2")(jnp.concatenate([z, onehot], axis=-1)))
        z = z.reshape(b, h0, w0, ch)
        z = act(upconv(ch, 2, "upconv1")(with_label(z)))
        z = act(upconv(ch, 2, "upconv2")(with_label(z)))
        z = act(upconv(ch, 1, "upconv3")(jnp.concatenate([z, x.astype(z.dtype), grad.astype(z.dtype)], axis=-1)))
        return upconv(c, 1, "upconv4")(z)


__all__ = ["PerturbationGenerator", "UPSAMPLE"]
