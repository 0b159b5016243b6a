"""L2 PGD adversarial training (Madry et al.) on CIFAR-100: the PGN paper's PGD-AT row (Table 2).

    python main.py --config=configs/pgd_at_l2_cifar100.py                 # tfds cifar100
    python main.py --config=configs/pgd_at_l2_cifar100.py:eps=0.05        # another L2 training radius
    python main.py --config=configs/pgd_at_l2_cifar100.py:smoke           # a few steps, synthetic stand-in data

The row of the perturbation-generator paper's comparison, with everything but the training method equal to
configs/pgn_cifar100.py (Table 1's ConvPool-CNN ``pgn_convpool_cnn``, Adam 5e-4, batch 128, EMA 0.998, 200
epochs, the L2 evaluation with AutoAttack-L2 beside the paper's attacks): this file is
``configs/pgn_baseline_cifar100.py:method=pgd_at`` under the name the baselines table uses (README,
Defenses).
The ``pgd_at`` defense with an L2 PGD spec: 10 iterations (Table 1's "PGD iter") of 0.25 eps from a
random start (the paper names no step; Madry et al.'s 2.5 eps / iterations).
Default L2 radius 0.02 (Table 2); config arguments ``eps``, ``width``, ``smoke``.
"""

from robustjax.config import config_module


def get_config(arg=None):
    method = "method=pgd_at"
    return config_module("pgn_baseline_cifar100.py", __file__).get_config(f"{method},{arg}" if arg else method)
