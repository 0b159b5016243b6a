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

How the upconvs are computed (not a modelling choice): :class:`Upconv` is exactly flax's
``nn.ConvTranspose(features, (3, 3), strides=(s, s), padding="SAME")`` (same parameters, same
initialisers, same outputs; tests/test_pgn.py compares them). For stride 2 it evaluates the four output
phases as small ordinary convolutions of the input (2x2, 2x1, 1x2 and 1x1 taps of the 3x3 kernel) and
interleaves them, instead of convolving an input dilated with zeros: a quarter of the multiply-adds, and
on XLA:CPU about 5x faster forward and backward (the backward of a dilated convolution takes a slow path
there).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from robustjax.types import Array

UPSAMPLE = 4  # two stride-2 upconvs: the dense map is (H / 4) x (W / 4)


def _scaled(n: int, width: float) -> int:
    return max(1, int(n * width + 0.5))


def _conv_valid(x: Array, kernel: Array) -> Array:
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_transpose_3x3(x: Array, kernel: Array, stride: int) -> Array:
    """``lax.conv_transpose(x, kernel, (stride, stride), "SAME")`` (no bias) for a 3x3 HWIO ``kernel`` and
    stride 1 or 2, without dilating the input (see the module docstring).

    Stride 2: output row ``2i`` is ``x[i - 1] k[0] + x[i] k[2]`` and row ``2i + 1`` is ``x[i] k[1]`` (the
    same for columns), so each of the four phases is a VALID convolution of the input, padded by one row
    (column) in front for the even phase, with its taps of the kernel. Stride 1 is an ordinary SAME
    convolution with the kernel as it is.
    """
    if stride == 1:
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if stride != 2:
        raise ValueError(f"conv_transpose_3x3: stride must be 1 or 2, got {stride!r}")
    taps = {0: (0, 2), 1: (1,)}  # output phase -> the kernel rows (columns) that reach it
    rows = []
    for a in (0, 1):
        phases = []
        for b in (0, 1):
            inp = jnp.pad(x, ((0, 0), (1 - a, 0), (1 - b, 0), (0, 0)))
            k = kernel[jnp.asarray(taps[a])][:, jnp.asarray(taps[b])]
            phases.append(_conv_valid(inp, k))
        rows.append(jnp.stack(phases, axis=3))  # [B, H, W, 2 (b), C]
    y = jnp.stack(rows, axis=2)                   # [B, H, 2 (a), W, 2 (b), C]
    n, h, _, w, _, c = y.shape
    return y.reshape(n, 2 * h, 2 * w, c)


class Upconv(nn.Module):
    """A 3x3 transposed convolution with SAME padding and a bias: ``nn.ConvTranspose``'s parameters,
    initialisers and outputs, computed by :func:`conv_transpose_3x3`."""

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return conv_transpose_3x3(x, kernel.astype(x.dtype), self.stride) + bias


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

        upconv = lambda f, s, name: Upconv(f, s, name=name)  # noqa: E731
        z = act(nn.Dense(hidden, name="dense1")(onehot))
        z = act(nn.Dense(h0 * w0 * ch, name="dense2")(jnp.concatenate([z, onehot], axis=-1)))
        z = z.reshape(b, h0, w0, ch)
        z = act(upconv(ch, 2, "upconv1")(with_label(z)))
        z = act(upconv(ch, 2, "upconv2")(with_label(z)))
        z = act(upconv(ch, 1, "upconv3")(jnp.concatenate([z, x.astype(z.dtype), grad.astype(z.dtype)], axis=-1)))
        return upconv(c, 1, "upconv4")(z)


__all__ = ["PerturbationGenerator", "UPSAMPLE", "Upconv", "conv_transpose_3x3"]
