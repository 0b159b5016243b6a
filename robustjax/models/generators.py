"""Image-to-image generators of ATGAN (Wang et al., "Improving Global Adversarial Robustness
Generalization With Adversarially Trained GAN", Table 1): one per dataset.

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
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from robustjax.models.layers import ConvNormAct, ResBlock
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


__all__ = ["GENERATORS", "Generator", "make_generator", "total_stride"]
