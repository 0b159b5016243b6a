"""The PGN paper's comparison rows on CIFAR-100 (Table 2): as configs/pgn_baseline_cifar10.py, on
CIFAR-100, with Table 2's training radius eps = 0.02 by default (chosen there so that the benign
accuracy of FGM-AT and PGD-AT matches the naive network's).

    python main.py --config=configs/pgn_baseline_cifar100.py:method=naive
    python main.py --config=configs/pgn_baseline_cifar100.py:method=fgm_at
    python main.py --config=configs/pgn_baseline_cifar100.py:method=pgd_at,eps=0.05
    python main.py --config=configs/pgn_baseline_cifar100.py:smoke                # synthetic stand-in

Config arguments: ``method``, ``eps``, ``width``, ``smoke`` (see configs/pgn_baseline_cifar10.py).
"""

from robustjax.config import config_module


def get_config(arg=None):
    return config_module("pgn_baseline_cifar10.py", __file__).baseline("cifar100", 0.02, arg)
