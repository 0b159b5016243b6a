"""L2 FGM adversarial training (Goodfellow et al.) on CIFAR-10: the PGN paper's FGM-AT row (Table 3).

    python main.py --config=configs/fgm_at_cifar10.py                 # tfds cifar10
    python main.py --config=configs/fgm_at_cifar10.py:eps=0.05        # another L2 training radius
    python main.py --config=configs/fgm_at_cifar10.py:smoke           # a few steps, synthetic stand-in data

The row of the perturbation-generator paper's comparison, with everything but the training method equal to
configs/pgn_cifar10.py (Table 1's ConvPool-CNN ``pgn_convpool_cnn``, Adam 5e-4, batch 128, EMA 0.998, 200
epochs, the L2 evaluation with AutoAttack-L2 beside the paper's attacks): this file is
``configs/pgn_baseline_cifar10.py:method=fgm_at`` under the name the baselines table uses (README,
Defenses).
The ``fgm_at`` defense with alpha 0 (adversarial examples only: Table 1's "Adv Coefficient" 1.0).
Default L2 radius 0.1 (Table 3); config arguments ``eps``, ``width``, ``smoke``.
"""

from robustjax.config import config_module


def get_config(arg=None):
    method = "method=fgm_at"
    return config_module("pgn_baseline_cifar10.py", __file__).get_config(f"{method},{arg}" if arg else method)
