"""Boundary Conditional GAN (Sun, Zhu & Lin, 2019) on CIFAR-10: the paper's Tables 1-2.

    python main.py --config=configs/bcgan_cifar10.py --workdir=runs/bcgan_cifar10          # tfds cifar10 (downloads)
    python main.py --config=configs/bcgan_cifar10.py --workdir=runs/bcgan_cifar10 \
        --config.data.source=npz --config.data.path=/path/to/cifar10.npz                  # offline
    python main.py --config=configs/bcgan_cifar10.py:smoke --workdir=/tmp/bcgan_smoke      # a few steps, offline

The paper defends ResNet-18 (``resnet18``) with Odena et al.'s CIFAR-10 AC-GAN (generator 4x4x384 ->
8x8x192 -> 16x16x96 -> 32x32x3, discriminator six conv blocks of 16 ... 512 channels; latent 100, Adam 2e-4
with beta1 0.5: Odena et al.'s). Chosen here (the paper gives none of them): the classifier's usual
recipe of configs/fgsm_at_cifar10.py (SGD 0.1, momentum 0.9, weight decay 5e-4, batch 128), 200 epochs of
pre-training with the rate x0.1 at epochs 100 and 150, then 20 epochs of fine-tuning that continue the
same optimizer (at its last rate, 1e-3); 50 epochs of AC-GAN; beta 1.0; a pool of 50,000 boundary
samples (one per training image), mixed 1:1 with clean examples.

Evaluation (Table 1): FGSM at 0.01 and 0.03; PGD with 8 iterations at both radii, step 0.0075 (0.25 x
0.03, configs/fgsm_at_cifar10.py's relative step) and a random start, the headline at 0.03 (the paper
gives no PGD radius: its larger FGSM radius); C&W-L2 on the first 1,000 test images; PGD-1000 and
AutoAttack at 0.03 (gradient-masking checks); Table 2's rho_adv (L2) on 200 images; the decision plane
with sigma 1 and m 1000. The paper reports for BCGAN 80.9% clean, 80.3 / 80.2% under FGSM 0.01 / 0.03,
80.2% under PGD, 80.7% under C&W-L2 and rho_adv 2.00. No result of this config is recorded yet: it
needs days of CPU (or a GPU).
"""

from robustjax.config import config_module


def get_config(arg=None):
    return config_module("bcgan_mnist.py", __file__).paper_config("cifar10", arg)
