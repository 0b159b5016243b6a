"""Generators: ATGAN's image-to-image networks (Wang et al., "Improving Global Adversarial Robustness
Generalization With Adversarially Trained GAN", Table 1), one per dataset, and a latent-code generator
``z -> image`` (:class:`LatentGenerator`, Defense-GAN's WGAN generator).

    from robustjax.models import generators
    g = generators.make_generator("mnist", out_channels=1, width=1.0)
    variables = g.init(key, x, train=False); x_hat = g.apply(variables, x)   # x_hat in [0, 1], shape of x

The three architectures (``c`` = output channels; every conv has SAME padding, so a stride-2 conv halves
H and W and a stride-2 transposed conv doubles them):

- ``"mnist"``:   Conv(8,3,1)-BN-ReLU, Conv(16,3,2)-BN-ReLU, Conv(32,3,2)-BN-ReLU, 4 x ResBlock(32),
  TransConv(16,3,2)-BN-ReLU, TransConv(8,3,2)-BN-ReLU, Conv(c,3,1), tanh.
- ``"svhn"``:    Conv(64,4,2)-BN-LReLU(0.2), Conv(128,4,2)-BN-LReLU, TransConv(128,4,2)-BN-LReLU,
  TransConv(64,4,2)-BN-LReLU, Conv(c,3,1), tanh.
- ``"cifar10"``: Conv(128,4,2)-BN-LReLU, TransConv(128,4,2)-BN-LReLU, Conv(c,3,1), tanh.

Choices made here (Table 1 does not say): the input box ``bounds`` is mapped to [-1, 1] before the first
conv (the usual input range of a tanh GAN); the output ``tanh`` is mapped back into ``bounds`` with
``lo + (hi - lo) * (tanh + 1) / 2`` so ``G(x)`` is a valid image; the residual blocks are the
post-activation two-conv blocks of ``layers.ResBlock`` without the activation after the addition
(the image-to-image / CycleGAN form). The tanh is written out for SVHN and CIFAR-10 as well, since the
paper bounds pixels with tanh. ``width`` scales every hidden channel count (for smoke tests).

BCGAN's conditional generators (AC-GAN, Odena et al.) take one code vector ``[B, latent_dim + K]``: the
noise ``z`` concatenated with the one-hot class ``c`` (:func:`conditional_code`), as in Odena et al.
(their CIFAR-10 generator's input is 110 = 100 + 10 wide): :class:`ACGANGenerator` for images,
:class:`MLPGenerator` for flat (2-D toy) data.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from robustjax.models.layers import BN_MOMENTUM, ConvNormAct, ResBlock
from robustjax.types import Array

GENERATORS = ("mnist", "svhn", "cifar10")

# (kind, features, kernel, stride): kind "conv" / "tconv" are ConvNormAct blocks, "res" a ResBlock.
_TABLE1 = {
    "mnist": dict(
        activation="relu",
        layers=[("conv", 8, 3, 1), ("conv", 16, 3, 2), ("conv", 32, 3, 2),
                ("res", 32, 3, 1), ("res", 32, 3, 1), ("res", 32, 3, 1), ("res", 32, 3, 1),
                ("tconv", 16, 3, 2), ("tconv", 8, 3, 2)],
    ),
    "svhn": dict(
        activation="leaky_relu",
        layers=[("conv", 64, 4, 2), ("conv", 128, 4, 2), ("tconv", 128, 4, 2), ("tconv", 64, 4, 2)],
    ),
    "cifar10": dict(
        activation="leaky_relu",
        layers=[("conv", 128, 4, 2), ("tconv", 128, 4, 2)],
    ),
}


def _scaled(features: int, width: float) -> int:
    return max(1, int(round(features * width)))


def total_stride(name: str) -> int:
    """How many times the generator ``name`` downsamples before it upsamples back (H, W must divide)."""
    if name not in _TABLE1:
        raise ValueError(f"unknown generator {name!r}; choose one of {GENERATORS}")
    s = 1
    for kind, _, _, stride in _TABLE1[name]["layers"]:
        if kind == "conv":
            s *= stride
    return s


class Generator(nn.Module):
    """ATGAN's image-to-image generator (Table 1): ``x -> G(x)``, same shape, pixels inside ``bounds``.

    Attributes:
      arch: which architecture of Table 1: "mnist", "svhn" or "cifar10".
      out_channels: channels of the output image (0 = as many as the input has).
      width: multiplier of every hidden channel count (> 0).
      bounds: the pixel box of inputs and outputs.
    """

    arch: str = "mnist"
    out_channels: int = 0
    width: float = 1.0
    bounds: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.arch not in _TABLE1:
            raise ValueError(f"unknown generator {self.arch!r}; choose one of {GENERATORS}")
        if not self.width > 0:
            raise ValueError(f"generator width must be > 0, got {self.width!r}")
        if x.ndim != 4:
            raise ValueError(f"the generator expects NHWC images [B, H, W, C]; got shape {x.shape}")
        stride = total_stride(self.arch)
        h_in, w_in = x.shape[1], x.shape[2]
        if h_in % stride or w_in % stride:
            raise ValueError(
                f"generator {self.arch!r} downsamples by {stride}: image height and width must be "
                f"multiples of {stride}, got {h_in}x{w_in}; resize the images (e.g. data.image_size) or "
                "pick another generator"
            )
        spec = _TABLE1[self.arch]
        lo, hi = self.bounds
        h = 2.0 * (x - lo) / (hi - lo) - 1.0
        for kind, features, kernel, stride in spec["layers"]:
            f = _scaled(features, self.width)
            if kind == "res":
                h = ResBlock(f, kernel_size=kernel, activation=spec["activation"], activate_output=False)(h, train)
            else:
                h = ConvNormAct(f, kernel, stride, activation=spec["activation"],
                                transpose=(kind == "tconv"))(h, train)
        c = self.out_channels or x.shape[-1]
        h = nn.Conv(c, (3, 3), strides=(1, 1), padding="SAME", name="to_image")(h)
        return lo + (hi - lo) * (jnp.tanh(h) + 1.0) / 2.0


def make_generator(name: str, *, out_channels: int = 0, width: float = 1.0,
                   bounds: tuple[float, float] = (0.0, 1.0)) -> Generator:
    """The generator of ATGAN's Table 1 called ``name`` ("mnist", "svhn" or "cifar10").

    Args:
      name: the architecture.
      out_channels: output channels (0 = same as the input).
      width: hidden-channel multiplier (> 0); 1.0 is the paper's network.
      bounds: the pixel box of inputs and outputs.

    Raises:
      ValueError: on an unknown name or a non-positive width.
    """
    if name not in _TABLE1:
        raise ValueError(f"unknown generator {name!r}; choose one of {GENERATORS}")
    if not width > 0:
        raise ValueError(f"generator width must be > 0, got {width!r}")
    return Generator(arch=name, out_channels=int(out_channels), width=float(width),
                     bounds=(float(bounds[0]), float(bounds[1])))


# ----------------------------------------------------------------------------------------------
# A generator from a latent code (DCGAN-style): Defense-GAN's WGAN generator.


def upsamplings(height: int, width: int) -> int:
    """How many stride-2 steps a :class:`LatentGenerator` (and a :class:`~robustjax.models.discriminators.
    WGANCritic`) takes for ``height x width`` images: the largest ``n`` in {1, 2, 3} such that both sides
    divide by ``2**n`` and the smallest feature map is at least 3 pixels wide (28 -> 7, 32 -> 4, 16 -> 4).

    Raises:
      ValueError: if no such ``n`` exists (odd or tiny images).
    """
    for n in (3, 2, 1):
        step = 2 ** n
        if height % step == 0 and width % step == 0 and min(height, width) // step >= 3:
            return n
    raise ValueError(f"a latent generator needs image sides divisible by 2 (at least 6 pixels); got "
                     f"{height}x{width}: resize the images (e.g. data.image_size)")


class LatentGenerator(nn.Module):
    """``z [B, d] -> image [B, H, W, C]`` inside ``bounds`` (a DCGAN-style generator for a WGAN).

    Dense(h0 * w0 * F 2^(n-1))-BN-ReLU, reshape to ``h0 x w0``, then ``n - 1`` blocks
    TransConv(F 2^(n-2-i), 5, 2)-BN-ReLU and a last TransConv(C, 5, 2) whose sigmoid is mapped into
    ``bounds``; ``n = upsamplings(H, W)`` and ``(h0, w0) = (H, W) / 2^n``; ``F = 64 * width``. MNIST
    (28x28x1): 7x7x128 -> 14x14x64 -> 28x28x1, as in Gulrajani et al.'s WGAN-GP MNIST generator but for
    its 4x4 start (their 8x8 map cropped to 7x7 is replaced by a 7x7 start here).

    Attributes:
      image_shape: ``(H, W, C)`` of the images it makes.
      width: multiplier of every hidden channel count (> 0).
      bounds: the pixel box of the outputs.
    """

    image_shape: tuple[int, int, int]
    width: float = 1.0
    bounds: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, z: Array, train: bool = False) -> Array:
        if not self.width > 0:
            raise ValueError(f"generator width must be > 0, got {self.width!r}")
        if z.ndim != 2:
            raise ValueError(f"the latent generator expects codes [B, latent_dim]; got shape {z.shape}")
        height, width_px, channels = (int(v) for v in self.image_shape)
        n = upsamplings(height, width_px)
        h0, w0 = height // 2 ** n, width_px // 2 ** n
        features = [_scaled(64 * 2 ** k, self.width) for k in range(n)]  # features[k]: k stages before the image
        h = nn.Dense(h0 * w0 * features[n - 1], use_bias=False, name="project")(z)
        h = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, name="project_bn")(h)
        h = nn.relu(h).reshape((z.shape[0], h0, w0, features[n - 1]))
        for k in range(n - 2, -1, -1):
            h = ConvNormAct(features[k], 5, 2, activation="relu", transpose=True)(h, train)
        h = nn.ConvTranspose(channels, (5, 5), strides=(2, 2), padding="SAME", name="to_image")(h)
        lo, hi = self.bounds
        return lo + (hi - lo) * nn.sigmoid(h)


# ----------------------------------------------------------------------------------------------
# Conditional generators (AC-GAN): BCGAN's.


def conditional_code(z: Array, labels: Array, num_classes: int) -> Array:
    """The AC-GAN generator's input: ``[z, one_hot(labels)]`` ``[B, latent_dim + num_classes]``."""
    return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


class ACGANGenerator(nn.Module):
    """Odena et al.'s AC-GAN generator (their Appendix, CIFAR-10 table), for any image size:
    ``code [B, latent_dim + K] -> image [B, H, W, C]`` inside ``bounds``.

    Dense(h0 * w0 * F)-ReLU, reshape to ``h0 x w0 x F``, then ``n - 1`` blocks TransConv(F / 2^k, 5, 2)-
    BN-ReLU (``k = 1 .. n-1``) and a last TransConv(C, 5, 2) whose tanh is mapped into ``bounds``;
    ``n = upsamplings(H, W)``, ``(h0, w0) = (H, W) / 2^n``, ``F = 384 * width``. CIFAR-10 (32x32x3):
    4x4x384 -> 8x8x192 -> 16x16x96 -> 32x32x3, Odena et al.'s network; MNIST (28x28x1): 7x7x384 ->
    14x14x192 -> 28x28x1 (one upsampling fewer, since 28 = 7 x 4; Odena et al. give no MNIST table).

    Attributes:
      image_shape: ``(H, W, C)`` of the images it makes.
      width: multiplier of every hidden channel count (> 0).
      bounds: the pixel box of the outputs.
    """

    image_shape: tuple[int, int, int]
    width: float = 1.0
    bounds: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, code: Array, train: bool = False) -> Array:
        if not self.width > 0:
            raise ValueError(f"generator width must be > 0, got {self.width!r}")
        if code.ndim != 2:
            raise ValueError(f"the AC-GAN generator expects codes [B, latent_dim + num_classes]; got {code.shape}")
        height, width_px, channels = (int(v) for v in self.image_shape)
        n = upsamplings(height, width_px)
        h0, w0 = height // 2 ** n, width_px // 2 ** n
        f0 = _scaled(384, self.width)
        h = nn.relu(nn.Dense(h0 * w0 * f0, name="project")(code)).reshape((code.shape[0], h0, w0, f0))
        for k in range(1, n):
            h = ConvNormAct(max(1, f0 // 2 ** k), 5, 2, activation="relu", transpose=True)(h, train)
        h = nn.ConvTranspose(channels, (5, 5), strides=(2, 2), padding="SAME", name="to_image")(h)
        lo, hi = self.bounds
        return lo + (hi - lo) * (jnp.tanh(h) + 1.0) / 2.0


class MLPGenerator(nn.Module):
    """A fully connected conditional generator for flat data (BCGAN's 2-D demonstration, Sec. 3.2: "a
    fully-connected neural network with 3 hidden layers"): ``code -> Dense(h)-ReLU x len(hidden) ->
    Dense(D)``, whose sigmoid is mapped into ``bounds``.

    Attributes:
      out_dim: the data's dimension ``D``.
      hidden: hidden layer sizes.
      bounds: the box of the outputs.
    """

    out_dim: int
    hidden: tuple[int, ...] = (64, 64, 64)
    bounds: tuple[float, float] = (0.0, 1.0)

    @nn.compact
    def __call__(self, code: Array, train: bool = False) -> Array:
        if code.ndim != 2:
            raise ValueError(f"the MLP generator expects codes [B, latent_dim + num_classes]; got {code.shape}")
        h = code
        for i, n in enumerate(self.hidden):
            h = nn.relu(nn.Dense(int(n), name=f"fc{i + 1}")(h))
        lo, hi = self.bounds
        return lo + (hi - lo) * nn.sigmoid(nn.Dense(int(self.out_dim), name="out")(h))


__all__ = ["ACGANGenerator", "GENERATORS", "Generator", "LatentGenerator", "MLPGenerator", "conditional_code",
           "make_generator", "total_stride", "upsamplings"]
