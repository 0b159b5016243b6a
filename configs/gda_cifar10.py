"""Gaussian data augmentation (Zantedeschi et al.), with ReLU or bounded ReLU, of their CNN on CIFAR-10.

    python main.py --config=configs/gda_cifar10.py        # tfds cifar10 (downloads)
    python main.py --config=configs/gda_cifar10.py:brelu  # GDA + BRELU (t = 1)
    python main.py --config=configs/gda_cifar10.py --config.data.source=npz \
        --config.data.path=/path/to/cifar10_subset.npz    # offline: a 10k-image subset
    python main.py --config=configs/gda_cifar10.py:smoke  # a few steps, offline

Each example and ten copies of it with N(0, 0.05^2) noise per pixel, clipped to [0, 1]
(robustjax/defenses/gda.py; the paper: "ten noisy samples for each original one, with standard deviation
... 0.05 for CIFAR10"). Config argument ``brelu``: bounded ReLU min(max(x, 0), 1) everywhere (GDA +
BRELU); without it GDA + RELU. The clean example stays and the copies are clipped (the paper's open
points; see gda.py and gda_mnist.py).

Zantedeschi et al.'s CIFAR-10 setting: their CNN (``zantedeschi_cnn``: conv8x8-64, conv6x6-128,
conv5x5-128, fc), evaluated white-box with FGSM over eps 0 ... 0.3 (their Fig. 5), Random + FGSM (a
Gaussian step of 0.05 taken from the budget: ``random_init="gaussian"``), DeepFool (100 iterations) and C&W
L2 (confidence 2.3);
their CIFAR-10 table (Table 5) holds black-box transfers from an undefended ResNet, which this config
does not run. The paper gives no optimizer or epochs. Chosen here: Adam 1e-3, batch 128, 50 epochs; the
first 1,000 test images; FGSM at 0.05 and 0.1, Random + FGSM at 0.1, and PGD-20 at 0.05 (steps of 0.25 *
eps, random start: a multi-step attack the paper did not run, for an honest upper bound); C&W with this
library's search defaults. configs/gda_brelu_cifar10.py runs the paper's whole evaluation (both
Random + FGSMs, JSMA, its metrics and transfers, AutoAttack, PGD-1000) and its compared defenses.
"""

from robustjax.config import base_config, optimizer, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "brelu": False})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = "zantedeschi_cnn"
    c.model.activation = "brelu" if args["brelu"] else "relu"
    c.model.brelu_t = 1.0
    c.defense.name = "gda"
    c.defense.copies = 10
    c.defense.sigma = 0.05
    c.defense.keep_clean = True
    c.defense.clip = True
    c.train.epochs = 50
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.num_examples = 1000
    c.eval.attacks = {
        "fgsm_0p05": {"attack": "fgsm", "eps": 0.05},
        "fgsm_0p1": {"attack": "fgsm", "eps": 0.1},
        "rand_fgsm_0p1": {"attack": "rand_fgsm", "eps": 0.1, "alpha": 0.05, "random_init": "gaussian"},
        "pgd20_0p05": {"attack": "pgd", "eps": 0.05, "rel_step_size": 0.25, "num_steps": 20, "random_start": True},
        "deepfool100": {"attack": "deepfool", "num_steps": 100},
        "cw_l2": {"attack": "cw_l2", "confidence": 2.3},
    }
    c.eval.curves = {"fgsm": {"attack": "fgsm", "eps_grid": [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3]}}
    if args["smoke"]:  # one attack and no curve: a smoke run only checks that everything runs
        c.eval.attacks = {"pgd3_0p05": {"attack": "pgd", "eps": 0.05, "rel_step_size": 0.5, "num_steps": 3}}
        c.eval.curves = {}
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        c.model.width = 0.125
        c.defense.copies = 2
    return c
