"""PGN on CIFAR-100, the paper's main experiment (Sec. 4, Table 2, Fig. 4-5).

    python main.py --config=configs/pgn_cifar100.py                     # tfds cifar100 (downloads)
    python main.py --config=configs/pgn_cifar100.py:c_l=25              # another c_L
    python main.py --config=configs/pgn_cifar100.py:smoke               # a few steps, synthetic stand-in

Everything as configs/pgn_cifar10.py (Table 1's settings, the same L2 evaluation, the same config
arguments ``c_l``, ``width``, ``smoke``) with the 100-class dataset: the classifier's last conv and the
generator's label input have 100 channels. The comparison rows of Table 2 are
configs/pgn_baseline_cifar100.py (FGM-AT and PGD-AT at eps 0.02 there). CIFAR-100 cannot be downloaded
on an offline machine: the smoke variant runs on synthetic stand-in data with CIFAR-100's shape and
classes.
"""

from robustjax.config import config_module


def get_config(arg=None):
    return config_module("pgn_cifar10.py", __file__).paper_config("cifar100", arg)
