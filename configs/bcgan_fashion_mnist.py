"""Boundary Conditional GAN (Sun, Zhu & Lin, 2019) on Fashion-MNIST: the paper's Tables 1-2 and Fig. 4.

    python main.py --config=configs/bcgan_fashion_mnist.py --workdir=runs/bcgan_fmnist       # tfds (downloads)
    python main.py --config=configs/bcgan_fashion_mnist.py --workdir=runs/bcgan_fmnist \
        --config.data.source=idx --config.data.path=/usr/share/datasets/fashion-mnist   # offline
    python main.py --config=configs/bcgan_fashion_mnist.py:smoke --workdir=/tmp/bcgan_smoke  # a few steps

Offline, the data come from the official IDX files (``source=idx``: the folder holding
``train-images-idx3-ubyte.gz`` and the other three, gzipped or not). Debian and Ubuntu package them:
``apt-get install dataset-fashion-mnist`` puts Zalando's files under /usr/share/datasets/fashion-mnist/;
any other copy works too (https://github.com/zalandoresearch/fashion-mnist).

Everything as configs/bcgan_mnist.py (the same classifier, ``lenet``, as the Fashion-MNIST baselines
configs/fgsm_at_fashion_mnist.py; the same AC-GAN, optimizers, lengths, beta, pool of 60,000 boundary
samples and 1:1 mixing), with the paper's Fashion-MNIST radii: FGSM at 0.05 and 0.15, PGD-40 (step 0.01,
random start) at both, the headline at 0.15 (the paper gives no PGD radius: its larger FGSM radius),
PGD-1000 and AutoAttack at 0.15, C&W-L2 on 1,000 test images, rho_adv (L2) on 200, the decision plane
with sigma 1 and m 1000. The paper reports for BCGAN 85.4% clean, 83.8 / 83.8% under FGSM 0.05 / 0.15,
83.6% under PGD, 85.9% under C&W-L2 and rho_adv 1.70. docs/results.md ("The same table on
Fashion-MNIST") has this config beside the Table 1 rows at a CPU budget (benchmarks/bcgan_table.py,
10,000 images, 3 epochs a phase): there BCGAN is no more robust than the original, as on MNIST.
"""

from robustjax.config import config_module


def get_config(arg=None):
    return config_module("bcgan_mnist.py", __file__).paper_config("fashion_mnist", arg)
