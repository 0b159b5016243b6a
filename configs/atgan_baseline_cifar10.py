"""The ATGAN paper's baseline on cifar10 (Sec. 4.3): ATGAN's discriminator body (the pre-activation ResNet18) without the
discrimination head, trained by PGD-AT, FracAT or standard training with everything else as in
configs/atgan_cifar10.py (data, budget, the discriminator's optimizer, the train-time attack, evaluation).

    python main.py --config=configs/atgan_baseline_cifar10.py:eps_t=8             # PGD-AT at eps_t
    python main.py --config=configs/atgan_baseline_cifar10.py:eps_t=4,frac=0.5    # FracAT
    python main.py --config=configs/atgan_baseline_cifar10.py:eps_t=0               # standard training
    python main.py --config=configs/atgan_baseline_cifar10.py:smoke                 # a few steps

Config arguments: those of configs/atgan_cifar10.py (the same units); built by
robustjax.defenses.atgan.baseline_config.
"""

from robustjax.config import config_module
from robustjax.defenses.atgan import baseline_config


def get_config(arg=None):
    return baseline_config(config_module("atgan_cifar10.py", __file__).get_config(arg))
