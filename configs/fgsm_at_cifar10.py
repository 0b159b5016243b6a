"""FGSM adversarial training (Goodfellow et al.; BCGAN's baseline) of ResNet-18 on CIFAR-10.

    python main.py --config=configs/fgsm_at_cifar10.py           # eps 0.03 (tfds cifar10)
    python main.py --config=configs/fgsm_at_cifar10.py:eps=0.01  # BCGAN's other model
    python main.py --config=configs/fgsm_at_cifar10.py --config.model.name=zantedeschi_cnn \
        --config.defense.attack.eps=0.05                         # Zantedeschi et al.'s setting
    python main.py --config=configs/fgsm_at_cifar10.py --config.data.source=npz \
        --config.data.path=/path/to/cifar10_subset.npz           # offline: a 10k-image subset
    python main.py --config=configs/fgsm_at_cifar10.py:smoke     # a few steps, offline

Objective: 0.5 * J(x) + 0.5 * J(x + eps * sign(grad_x J)) (Goodfellow et al.'s alpha = 0.5).
BCGAN (Table 1) trains two FGSM models on CIFAR-10, eps 0.01 and 0.03 (config argument ``eps``), with
ResNet-18, and evaluates FGSM at 0.01 and 0.03, PGD with 8 iterations and C&W L2 on 1,000 test images;
it reports 78.5% clean, 53.0% under FGSM 0.03 and 35.5% under PGD for eps 0.03. Zantedeschi et al. train
their CNN at eps 0.05 (the override above).

BCGAN gives no optimizer, schedule, PGD radius or PGD step. Chosen here: the usual ResNet-18 CIFAR-10
recipe (SGD 0.1, momentum 0.9, weight decay 5e-4, 200 epochs, learning rate x0.1 at epochs 100 and 150,
batch 128); PGD-8 at each FGSM radius with steps of 0.25 * eps and a random start; C&W L2 with this
library's defaults (9 binary-search steps of 1000 iterations).
"""

from robustjax.config import base_config, optimizer, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps": 0.03})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = "resnet18"
    c.defense.name = "fgsm_at"
    c.defense.attack = {"attack": "fgsm", "eps": float(args["eps"])}
    c.defense.alpha = 0.5
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 0.0
    c.train.epochs = 200
    c.train.optimizer = optimizer("sgd", 0.1, momentum=0.9, weight_decay=5e-4, schedule="step",
                                  decay_epochs=[100, 150], decay_factor=0.1)
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.num_examples = 1000
    attacks = {}
    for eps, tag in ((0.01, "0p01"), (0.03, "0p03")):
        attacks[f"fgsm_{tag}"] = {"attack": "fgsm", "eps": eps}
        attacks[f"pgd8_{tag}"] = {"attack": "pgd", "eps": eps, "rel_step_size": 0.25, "num_steps": 8,
                                  "random_start": True}
    attacks["cw_l2"] = {"attack": "cw_l2"}
    c.eval.attacks = attacks
    if args["smoke"]:  # one attack: a smoke run only checks that everything runs
        c.eval.attacks = {"pgd3_0p03": {"attack": "pgd", "eps": 0.03, "rel_step_size": 0.5, "num_steps": 3}}
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        c.model.width = 0.125
    return c
