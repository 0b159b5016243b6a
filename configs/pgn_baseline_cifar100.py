"""The PGN paper's comparison rows on CIFAR-100 (Table 2): as configs/pgn_baseline_cifar10.py, on
CIFAR-100, with Table 2's training radius eps = 0.02 by default (chosen there so that the benign
accuracy of FGM-AT and PGD-AT matches the naive network's).

    python main.py --config=configs/pgn_baseline_cifar100.py:method=naive
    python main.py --config=configs/pgn_baseline_cifar100.py:method=fgm_at
    python main.py --config=configs/pgn_baseline_cifar100.py:method=pgd_at,eps=0.05
    python main.py --config=configs/pgn_baseline_cifar100.py:smoke                # synthetic stand-in

Config arguments: ``method``, ``eps``, ``width``, ``smoke`` (see configs/pgn_baseline_cifar10.py).
"""

import importlib.util
import os


def get_config(arg=None):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pgn_baseline_cifar10.py")
    spec = importlib.util.spec_from_file_location("pgn_baseline_cifar10", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.baseline("cifar100", 0.02, arg)
