"""Image classifiers (and an MLP for 2-D data) of the papers robustjax reproduces, as flax.linen modules.

    model = LeNet(num_classes=10, activation="brelu", brelu_t=1.0)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    logits = model.apply(variables, x)                        # x: float32 NHWC in [0, 1]

Shared conventions (the training loop, the defenses and the attacks rely on them):

- ``__call__(x, train=False)``: ``x`` is float32 NHWC in [0, 1] ([B, D] for :class:`MLP`); returns logits
  ``[B, num_classes]``. Input normalization (``mean``/``std``, per channel) happens inside the module,
  so attack budgets stay in pixel units.
- ``num_classes == 0`` returns the penultimate feature vector ``[B, F]`` instead of logits (the input
  of the final dense layer), so AC-GAN discriminators (ATGAN, GanDef) can put their own heads on it.
- Each model sows its first conv layer's post-activation output as ``("intermediates", "first_conv")``
  (an MLP its first hidden layer); read it with :func:`first_conv_activations`. Nothing is sown during
  ``init``, so the initial variables hold only ``params`` (and ``batch_stats``).
- ``width`` multiplies every hidden channel/unit count (rounded, at least 1); ``activation`` is one of
  ``layers.ACTIVATIONS`` and ``brelu_t`` the bound of the bounded ReLU (Zantedeschi et al.).
- BatchNorm: ``nn.BatchNorm(use_running_average=not train, momentum=0.9)``; dropout draws from the
  ``"dropout"`` rng and is active only when ``train=True``.
- Every 2x2 max pool is :func:`layers.max_pool_2x2` (reshape form; its gradient is far cheaper on CPU
  than ``lax.reduce_window``'s, see ``layers``).

Parameter counts (10 classes, width 1): cw_mnist 312,202 and lenet 3,274,634 and zantedeschi_cnn
710,218 and zantedeschi_resnet 333,514 (28x28x1); small_cnn 38,282 (16x16x1); allcnn 1,369,848
(``variant="table4"``: 1,406,794), convpool_cnn 1,369,738, pgn_convpool_cnn 2,334,730, resnet18 11,173,962,
densenet40 1,019,722 (32x32x3). tests/test_models.py and tests/test_gandef.py (allcnn table4) recompute
them by hand.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from robustjax.models import layers
from robustjax.types import Array, PRNGKey, PyTree

HE_NORMAL = nn.initializers.he_normal()
ALLCNN_VARIANTS = ("released_code", "table4")  # AllCNN's last 1x1 conv: 10 wide, or 192 (GanDef Table 4)


def scale_width(n: int, width: float) -> int:
    """``n * width`` rounded half up, at least 1 (how every model applies its width multiplier)."""
    return max(1, int(n * width + 0.5))


class Classifier(nn.Module):
    """Fields and helpers common to every classifier here (not a model by itself).

    Attributes:
      num_classes: number of logits; 0 returns the penultimate features instead.
      width: multiplier on every hidden channel/unit count.
      activation: one of ``layers.ACTIVATIONS``.
      brelu_t: bound of the bounded ReLU (``activation="brelu"``).
      mean: per-channel mean subtracted inside the model (None: no shift).
      std: per-channel std the input is divided by inside the model (None: no scaling).
    """

    num_classes: int = 10
    width: float = 1.0
    activation: str = "relu"
    brelu_t: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    # -- helpers used inside the subclasses' compact __call__ ---------------------------------------

    def _ch(self, n: int) -> int:
        return scale_width(n, self.width)

    def _act(self, x: Array) -> Array:
        return layers.activation_fn(self.activation, self.brelu_t)(x)

    def _prepare(self, x: Array, image: bool = True) -> Array:
        name = type(self).__name__
        if image and x.ndim != 4:
            raise ValueError(f"{name} expects images [B, H, W, C] (float32 in [0, 1]); got shape {x.shape}")
        if not image and x.ndim < 2:
            raise ValueError(f"{name} expects [B, D] inputs; got shape {x.shape}")
        x = jnp.asarray(x, jnp.float32)
        for field in ("mean", "std"):
            v = getattr(self, field)
            if v is not None and len(v) not in (1, x.shape[-1]):
                raise ValueError(
                    f"{name}.{field} has {len(v)} values but the input has {x.shape[-1]} channels "
                    f"(last axis); give 1 or {x.shape[-1]} values"
                )
        if self.mean is not None:
            x = x - jnp.asarray(self.mean, x.dtype)
        if self.std is not None:
            x = x / jnp.asarray(self.std, x.dtype)
        return x

    def _sow_first(self, h: Array) -> None:
        if not self.is_initializing():
            self.sow("intermediates", "first_conv", h)

    def _head(self, h: Array) -> Array:
        if self.num_classes == 0:
            return h
        return nn.Dense(self.num_classes, name="head")(h)

    def _dropout(self, h: Array, rate: float, train: bool) -> Array:
        return nn.Dropout(rate)(h, deterministic=not train)


def _flatten(h: Array) -> Array:
    return h.reshape(h.shape[0], -1)


class CWMnist(Classifier):
    """The Carlini-Wagner MNIST CNN (Carlini & Wagner, "Towards Evaluating the Robustness of Neural
    Networks", 2017, Table 1 "MNIST model"); ATGAN's "plain CNN" and its MNIST discriminator body.

    conv3x3-32, conv3x3-32, maxpool 2x2, conv3x3-64, conv3x3-64, maxpool 2x2, fc200, dropout, fc200,
    out. Convolutions are VALID as in the authors' Keras code (28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4),
    dropout sits after the first fc200 (Table 2: rate 0.5).

    Attributes:
      dropout: dropout rate after the first fully connected layer (0 disables it).
    """

    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x)
        h = self._act(nn.Conv(self._ch(32), (3, 3), padding="VALID", name="conv1")(h))
        self._sow_first(h)
        h = self._act(nn.Conv(self._ch(32), (3, 3), padding="VALID", name="conv2")(h))
        h = layers.max_pool_2x2(h)
        h = self._act(nn.Conv(self._ch(64), (3, 3), padding="VALID", name="conv3")(h))
        h = self._act(nn.Conv(self._ch(64), (3, 3), padding="VALID", name="conv4")(h))
        h = layers.max_pool_2x2(h)
        h = _flatten(h)
        h = self._act(nn.Dense(self._ch(200), name="fc1")(h))
        h = self._dropout(h, self.dropout, train)
        h = self._act(nn.Dense(self._ch(200), name="fc2")(h))
        return self._head(h)


class LeNet(Classifier):
    """LeNet as in GanDef (Liu et al., "GanDef: A GAN based Adversarial Training Defense for Neural
    Network Classifier", 2019, Table 3: the MNIST classifier); also Madry et al.'s MNIST network.

    conv5x5-32 SAME, maxpool 2x2, conv5x5-64 SAME, maxpool 2x2, fc1024, out, as in Table 3 (and the
    same authors' later public code): 28x28 -> dense 3136 -> 1024. Table 3 puts each ReLU after its
    pool; here the activation comes before each pool (the same function for the monotone activations
    offered here). Table 3's "Default" initialization is TensorFlow's; flax's default is used.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x)
        h = self._act(nn.Conv(self._ch(32), (5, 5), padding="SAME", name="conv1")(h))
        self._sow_first(h)
        h = layers.max_pool_2x2(h)
        h = self._act(nn.Conv(self._ch(64), (5, 5), padding="SAME", name="conv2")(h))
        h = layers.max_pool_2x2(h)
        h = _flatten(h)
        h = self._act(nn.Dense(self._ch(1024), name="fc1")(h))
        return self._head(h)


class AllCNN(Classifier):
    """allCNN as in GanDef (Liu et al., 2019, Table 4: the CIFAR-10 classifier), after Springenberg et
    al.'s All-CNN-C ("Striving for Simplicity: The All Convolutional Net", 2015, Table 2).

    dropout(0.2) on the input; 3 x conv3x3-96 SAME, downsample, dropout(0.5); 3 x conv3x3-192 SAME,
    downsample, dropout(0.5); conv3x3-192 VALID, conv1x1-192, conv1x1-C; global average pool; fc out.
    Every conv is followed by the activation and uses He-normal kernels; the fc has flax's default
    initialization. Two variants differ only in the last 1x1 conv's width C:

    - ``variant="table4"``: C = 192, exactly GanDef's Table 4 (conv1x1x192 twice, global average pool,
      Dense 10). This is the one ``configs/gandef_cifar10.py`` uses. With ``num_classes=0`` the
      features are the pooled 192 * width channels.
    - ``variant="released_code"`` (the default, for the configs and tests written before Table 4 was at
      hand): C = 10, the head of the GanDef authors' later public TensorFlow code (their zero-knowledge
      GanDef CIFAR-10 classifier: conv1x1-10 + ReLU, global average pool, then the fc). The features
      are then only 10 * width wide.

    ``downsample="max_pool"`` is Table 4's 2x2 max pool after the third conv of a stage; ``"conv"`` is
    Springenberg's All-CNN-C proper (the third conv of a stage has stride 2, no pool).

    Attributes:
      dropout: rate after each downsampling (0.5 in both papers).
      input_dropout: rate on the input image (0.2 in both papers).
      downsample: "max_pool" (GanDef) or "conv" (All-CNN-C, stride-2 conv).
      variant: "table4" (last 1x1 conv 192 wide, GanDef's Table 4) or "released_code" (10 wide).
    """

    dropout: float = 0.5
    input_dropout: float = 0.2
    downsample: str = "max_pool"
    variant: str = "released_code"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.downsample not in ("max_pool", "conv"):
            raise ValueError(f"AllCNN.downsample must be 'max_pool' or 'conv'; got {self.downsample!r}")
        if self.variant not in ALLCNN_VARIANTS:
            raise ValueError(f"AllCNN.variant must be one of {ALLCNN_VARIANTS}; got {self.variant!r}")
        conv = lambda f, k, s, p, name: nn.Conv(  # noqa: E731
            self._ch(f), (k, k), strides=(s, s), padding=p, kernel_init=HE_NORMAL, name=name
        )
        h = self._prepare(x)
        h = self._dropout(h, self.input_dropout, train)
        i = 0
        for f in (96, 192):
            for j in range(3):
                i += 1
                stride = 2 if (j == 2 and self.downsample == "conv") else 1
                h = self._act(conv(f, 3, stride, "SAME", f"conv{i}")(h))
                if i == 1:
                    self._sow_first(h)
            if self.downsample == "max_pool":
                h = layers.max_pool_2x2(h)
            h = self._dropout(h, self.dropout, train)
        h = self._act(conv(192, 3, 1, "VALID", "conv7")(h))
        h = self._act(conv(192, 1, 1, "SAME", "conv8")(h))
        h = self._act(conv(192 if self.variant == "table4" else 10, 1, 1, "SAME", "conv9")(h))
        h = layers.global_avg_pool(h)
        return self._head(h)


class ConvPoolCNN(Classifier):
    """ConvPool-CNN-C (Springenberg et al., "Striving for Simplicity: The All Convolutional Net", 2015,
    Table 2): ``convpool_cnn``, the benchmarks' CIFAR-10 speed model (``benchmarks/common.py``).

    Not the PGN paper's "ConvPool-CNN" (Table 1 of "Adversarial Training with Perturbation Generator
    Networks": 64-512 channels, average pooling, no dropout): that one is :class:`PGNConvPoolCNN`,
    ``pgn_convpool_cnn``.

    dropout(0.2) on the input; 3 x conv3x3-96 SAME, maxpool 3x3 stride 2, dropout(0.5); 3 x conv3x3-192
    SAME, maxpool 3x3 stride 2, dropout(0.5); conv3x3-192 VALID, conv1x1-192, conv1x1-num_classes,
    global average pool -> logits (32x32 input: 32 -> 16 -> 8 -> 6).
    One deviation: the paper puts a ReLU on the class-score conv; here the scores are linear, so no
    logit is clipped at zero (a clipped logit has no gradient, which would mask attacks). With
    ``num_classes=0`` the features are the pooled 192-channel map before the class-score conv.

    Attributes:
      dropout: rate after each pooling (0.5 in the paper).
      input_dropout: rate on the input image (0.2 in the paper).
      pool_size: 3 (the paper: overlapping 3x3 windows, stride 2, SAME) or 2 (2x2 stride 2 in the fast
        reshape form; much cheaper gradients on CPU).
    """

    dropout: float = 0.5
    input_dropout: float = 0.2
    pool_size: int = 3

    def _pool(self, h: Array) -> Array:
        if self.pool_size == 2:
            return layers.max_pool_2x2(h)
        if self.pool_size == 3:
            return nn.max_pool(h, (3, 3), strides=(2, 2), padding="SAME")
        raise ValueError(f"ConvPoolCNN.pool_size must be 2 or 3; got {self.pool_size!r}")

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        conv = lambda f, k, p, name: nn.Conv(  # noqa: E731
            self._ch(f), (k, k), padding=p, kernel_init=HE_NORMAL, name=name
        )
        h = self._prepare(x)
        h = self._dropout(h, self.input_dropout, train)
        i = 0
        for f in (96, 192):
            for _ in range(3):
                i += 1
                h = self._act(conv(f, 3, "SAME", f"conv{i}")(h))
                if i == 1:
                    self._sow_first(h)
            h = self._pool(h)
            h = self._dropout(h, self.dropout, train)
        h = self._act(conv(192, 3, "VALID", "conv7")(h))
        h = self._act(conv(192, 1, "SAME", "conv8")(h))
        if self.num_classes == 0:
            return layers.global_avg_pool(h)
        h = nn.Conv(self.num_classes, (1, 1), kernel_init=HE_NORMAL, name="head")(h)
        return layers.global_avg_pool(h)


class PGNConvPoolCNN(Classifier):
    """The PGN paper's "ConvPool-CNN" (Table 1 of "Adversarial Training with Perturbation Generator
    Networks"): ``pgn_convpool_cnn``, the classifier of ``robustjax/defenses/pgn.py`` and its baselines.

    conv3x3-64, conv3x3-128, avgpool 2x2, conv3x3-128, conv3x3-256, avgpool 2x2, conv3x3-256,
    conv3x3-512, avgpool 2x2, conv3x3-num_classes, global average pool -> logits (32x32 input:
    32 -> 16 -> 8 -> 4). Every conv is SAME with a bias; no dropout, no BatchNorm (Table 1: "Dropout -",
    "Weight Decay 0"). 2,334,730 parameters for 10 classes.

    Not Springenberg's ConvPool-CNN-C (:class:`ConvPoolCNN`, ``convpool_cnn``: 96/192 channels, 3x3 max
    pooling, dropout), a different network of the same name.

    Table 1 gives no activation or initialisation. Its layer list is exactly the all-convolutional model
    of the CleverHans library the paper says it used (filters 64 << scale), so that model's choices are
    taken: leaky ReLU (slope 0.2) after every conv, the class-score conv included (its scores are
    therefore never clipped at zero: slope 0.2 below it, so no gradient is masked), and He-normal kernels.
    ``activation`` may override the leaky ReLU. With ``num_classes=0`` the features are the globally
    pooled 512-channel map before the class-score conv.
    """

    activation: str = "leaky_relu"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        conv = lambda f, name: nn.Conv(f, (3, 3), padding="SAME", kernel_init=HE_NORMAL, name=name)  # noqa: E731
        h = self._prepare(x)
        i = 0
        for f1, f2 in ((64, 128), (128, 256), (256, 512)):
            for f in (f1, f2):
                i += 1
                h = self._act(conv(self._ch(f), f"conv{i}")(h))
                if i == 1:
                    self._sow_first(h)
            h = layers.avg_pool_2x2(h)
        if self.num_classes == 0:
            return layers.global_avg_pool(h)
        h = self._act(conv(self.num_classes, "head")(h))
        return layers.global_avg_pool(h)


class ZantedeschiCNN(Classifier):
    """The CNN of Zantedeschi et al. ("Efficient Defenses Against Adversarial Attacks", 2017, Sec. 4:
    the Cleverhans/ART basic CNN they defend with bounded ReLUs and Gaussian augmentation).

    conv8x8-64 stride 2 SAME, conv6x6-128 stride 2 VALID, conv5x5-128 stride 1 VALID, flatten, fc out
    (28x28: 14 -> 5 -> 1; 32x32: 16 -> 6 -> 2). Use ``activation="brelu"`` for the paper's defense.
    The paper lists only filters and kernel sizes ("Conv2D(64, 8x8) - Conv2D(128, 6x6) - Conv2D(128, 5x5) -
    Softmax(10)"); strides and padding are the Cleverhans basic CNN's (2, 2, 1), the network this listing
    matches. 710,218 parameters for 10 classes on 28x28x1.
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x)
        h = self._act(nn.Conv(self._ch(64), (8, 8), strides=(2, 2), padding="SAME", name="conv1")(h))
        self._sow_first(h)
        h = self._act(nn.Conv(self._ch(128), (6, 6), strides=(2, 2), padding="VALID", name="conv2")(h))
        h = self._act(nn.Conv(self._ch(128), (5, 5), padding="VALID", name="conv3")(h))
        return self._head(_flatten(h))


class ZantedeschiResNet(Classifier):
    """The residual network of Zantedeschi et al. (2017, Sec. 4.1), as the paper lists it.

    The paper: "Conv2D(64, 8x8) - Conv2D(128, 6x6) - Conv2D(128, 1x1) - Conv2D(128, 1x1) - MaxPooling(3x3) -
    Softmax(10)" "with an identity short-cut between layer 2 and 6". Built here:

        h1 = act(conv8x8-64, stride 2, SAME)(x)                 # layer 1
        h2 = act(conv6x6-128, stride 2, VALID)(h1)              # layer 2: the shortcut leaves here
        r  = act(conv1x1-128)(h2)                               # layer 3
        r  = conv1x1-128(r)                                     # layer 4 (no activation before the sum)
        h  = act(h2 + r)                                        # the identity shortcut joins
        h  = maxpool 3x3, stride 3, VALID (h)                   # layer 5
        logits = dense(flatten(h))                              # layer 6: softmax(10)'s logits

    (28x28: 14 -> 5 -> 5 -> 5 -> 1; 32x32: 16 -> 6 -> 6 -> 6 -> 2.)

    Where the paper is silent or loose, and what is chosen:

    - Strides and padding are not stated. Layers 1-2 are the first two layers of the paper's CNN, the
      Cleverhans basic CNN (:class:`ZantedeschiCNN`: stride 2 SAME, stride 2 VALID); the 1x1 convs have
      stride 1 (anything else would break the identity shortcut); the pool's stride is its size (Keras'
      ``MaxPooling2D((3, 3))`` default).
    - "Between layer 2 and 6": an identity shortcut can only join where the shapes equal layer 2's output
      (128 channels, 5x5 on MNIST), i.e. after the two 1x1 convs and before the pool; the input of layer 6
      itself (after the pool) has another spatial size. So the shortcut skips layers 3-4 and the sum feeds
      layers 5-6, the one reading under which it is an identity.
    - Where the activation goes around the sum: as in He et al.'s residual block, the last conv of the
      residual branch is added before its activation, and the activation (ReLU or BReLU) follows the sum.
    - The ART release that accompanied the paper used a Keras ResNet-50-style bottleneck block instead
      (conv1x1-64, conv3x3-64, conv1x1-128); this class follows the paper's listing.

    333,514 parameters for 10 classes on 28x28x1 (tests/test_models.py counts them by hand).

    Attributes:
      batch_norm: BatchNorm after every conv (ART's ``bnorm`` option; the paper has none, off by default).
        Convs keep their bias either way.
    """

    batch_norm: bool = False

    def _bn(self, h: Array, train: bool) -> Array:
        if not self.batch_norm:
            return h
        return nn.BatchNorm(use_running_average=not train, momentum=layers.BN_MOMENTUM)(h)

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x)
        h = nn.Conv(self._ch(64), (8, 8), strides=(2, 2), padding="SAME", name="conv1")(h)
        h = self._act(self._bn(h, train))
        self._sow_first(h)
        h = nn.Conv(self._ch(128), (6, 6), strides=(2, 2), padding="VALID", name="conv2")(h)
        h = self._act(self._bn(h, train))
        r = self._act(self._bn(nn.Conv(self._ch(128), (1, 1), name="conv3")(h), train))
        r = self._bn(nn.Conv(self._ch(128), (1, 1), name="conv4")(r), train)
        h = self._act(h + r)
        h = layers.max_pool_nonoverlapping(h, 3)
        return self._head(_flatten(h))


class ResNet18(Classifier):
    """ResNet-18, CIFAR variant (He et al., "Deep Residual Learning for Image Recognition", 2016,
    Table 1 "18-layer" with the CIFAR stem): ATGAN's CIFAR-10 discriminator body.

    Post-activation (``preact=False``, the 2016 ResNet): conv3x3-64 (no max pool) -BN-act, then 4 stages
    of 2 BasicBlocks with 64, 128, 256, 512 channels (strides 1, 2, 2, 2; 1x1 conv + BN projection where
    the shape changes), global average pool, fc out. 11,173,962 parameters for 10 classes.

    Pre-activation (``preact=True``, He et al., "Identity Mappings in Deep Residual Networks", 2016: the
    network ATGAN cites as its ResNet18): conv3x3-64 with no BN or activation after it, the same 4 stages
    of pre-activation blocks (BN-act-conv-BN-act-conv; 1x1 conv projection without BN), then a final
    BN-act before the global average pool. ``first_conv`` is then the stem conv's raw output.

    Attributes:
      preact: the pre-activation ordering.
    """

    preact: bool = False

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x)
        h = nn.Conv(self._ch(64), (3, 3), padding="SAME", use_bias=False, name="stem")(h)
        if not self.preact:
            h = nn.BatchNorm(use_running_average=not train, momentum=layers.BN_MOMENTUM, name="stem_bn")(h)
            h = self._act(h)
        self._sow_first(h)
        for stage, (f, s) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2))):
            for b in range(2):
                h = layers.ResBlock(
                    self._ch(f),
                    strides=s if b == 0 else 1,
                    preact=self.preact,
                    activation=self.activation,
                    brelu_t=self.brelu_t,
                    name=f"stage{stage + 1}_block{b + 1}",
                )(h, train=train)
        if self.preact:
            h = nn.BatchNorm(use_running_average=not train, momentum=layers.BN_MOMENTUM, name="final_bn")(h)
            h = self._act(h)
        return self._head(layers.global_avg_pool(h))


class DenseNet40(Classifier):
    """DenseNet-40 (Huang et al., "Densely Connected Convolutional Networks", 2017, Table 2 "DenseNet
    (L = 40, k = 12)"): ATGAN's SVHN discriminator body.

    conv3x3-16; 3 dense blocks of (depth - 4) / 3 = 12 layers BN-act-conv3x3(growth k=12), each
    concatenated to its input; between blocks a transition BN-act-conv1x1 (no compression) and 2x2
    average pooling; then BN-act, global average pool, fc out. Convs have no bias. 1,019,722 parameters
    for 10 classes. The first conv has no activation of its own (BN-act comes before each next conv),
    so ``first_conv`` is that conv's raw output.

    Attributes:
      growth_rate: channels each layer adds (k).
      depth: L; (depth - 4) must be divisible by 3.
      dropout: rate after each conv inside the blocks and transitions (the paper: 0.2 without data
        augmentation, 0 with it).
    """

    growth_rate: int = 12
    depth: int = 40
    dropout: float = 0.0

    def _bn_act(self, h: Array, train: bool) -> Array:
        return self._act(nn.BatchNorm(use_running_average=not train, momentum=layers.BN_MOMENTUM)(h))

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.depth < 7 or (self.depth - 4) % 3:
            raise ValueError(f"DenseNet40.depth must be 3n + 4 with n >= 1; got {self.depth!r}")
        n = (self.depth - 4) // 3
        k = self._ch(self.growth_rate)
        h = self._prepare(x)
        h = nn.Conv(self._ch(16), (3, 3), padding="SAME", use_bias=False, name="conv1")(h)
        self._sow_first(h)
        for block in range(3):
            for _ in range(n):
                y = nn.Conv(k, (3, 3), padding="SAME", use_bias=False)(self._bn_act(h, train))
                y = self._dropout(y, self.dropout, train)
                h = jnp.concatenate([h, y], axis=-1)
            if block < 2:
                h = nn.Conv(h.shape[-1], (1, 1), use_bias=False)(self._bn_act(h, train))
                h = self._dropout(h, self.dropout, train)
                h = layers.avg_pool_2x2(h)
        h = self._bn_act(h, train)
        return self._head(layers.global_avg_pool(h))


class MLP(Classifier):
    """A multilayer perceptron for 2-D (or any flat) data, e.g. the toy2d datasets.

    Dense(hidden[0])-act, ..., Dense(hidden[-1])-act, fc out. Inputs ``[B, D]``; anything with more
    axes is flattened to ``[B, -1]``. The first hidden layer is sown as ``first_conv``.

    Attributes:
      hidden: hidden layer sizes (each scaled by ``width``).
    """

    hidden: tuple[int, ...] = (64, 64)

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x, image=False)
        h = _flatten(h)
        for i, n in enumerate(self.hidden):
            h = self._act(nn.Dense(self._ch(n), name=f"fc{i + 1}")(h))
            if i == 0:
                self._sow_first(h)
        return self._head(h)


class SmallCNN(Classifier):
    """A small CNN for the quickstart (16x16 digits; trains in seconds on a CPU). Not from a paper.

    conv3x3-16 SAME, maxpool 2x2, conv3x3-32 SAME, maxpool 2x2, fc64, out (16x16x1: 38,282 parameters
    for 10 classes).
    """

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        h = self._prepare(x)
        h = self._act(nn.Conv(self._ch(16), (3, 3), padding="SAME", name="conv1")(h))
        self._sow_first(h)
        h = layers.max_pool_2x2(h)
        h = self._act(nn.Conv(self._ch(32), (3, 3), padding="SAME", name="conv2")(h))
        h = layers.max_pool_2x2(h)
        h = self._act(nn.Dense(self._ch(64), name="fc1")(_flatten(h)))
        return self._head(h)


def first_conv_activations(
    model: nn.Module,
    variables: Mapping[str, Any],
    x: Array,
    train: bool = False,
    rngs: Mapping[str, PRNGKey] | None = None,
) -> Array:
    """The first conv layer's activations that ``model`` sows (ATGAN's perceptual loss, Eq. 4 and 12).

    Runs the whole model (XLA drops the unused rest under jit). In train mode the BatchNorm statistics
    are computed from the batch and the updated statistics are discarded.

    Args:
      model: a classifier of this module.
      variables: its variables (``{"params": ..., "batch_stats": ...}``).
      x: its input.
      train: the mode to run in.
      rngs: rngs for train mode (e.g. ``{"dropout": key}``).

    Returns:
      The sown array, e.g. ``[B, 26, 26, 32]`` for :class:`CWMnist` on MNIST.
    """
    mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
    _, state = model.apply(variables, x, train=train, rngs=rngs, mutable=mutable)
    return state["intermediates"]["first_conv"][0]


def param_count(params: PyTree) -> int:
    """Number of scalars in a pytree of arrays (or of ``jax.ShapeDtypeStruct`` from ``eval_shape``).

    Pass ``variables["params"]`` to count trainable parameters only.
    """
    total = 0
    for leaf in jax.tree.leaves(params):
        n = 1
        for d in leaf.shape:
            n *= int(d)
        total += n
    return total


__all__ = [
    "AllCNN",
    "CWMnist",
    "Classifier",
    "ConvPoolCNN",
    "DenseNet40",
    "LeNet",
    "MLP",
    "PGNConvPoolCNN",
    "ResNet18",
    "SmallCNN",
    "ZantedeschiCNN",
    "ZantedeschiResNet",
    "first_conv_activations",
    "param_count",
    "scale_width",
]
