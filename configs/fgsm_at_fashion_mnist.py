"""FGSM adversarial training (Goodfellow et al.; BCGAN's baseline) of the LeNet CNN on Fashion-MNIST.

    python main.py --config=configs/fgsm_at_fashion_mnist.py           # eps 0.15 (tfds fashion_mnist)
    python main.py --config=configs/fgsm_at_fashion_mnist.py:eps=0.05  # BCGAN's other model
    python main.py --config=configs/fgsm_at_fashion_mnist.py --config.data.source=idx \
        --config.data.path=/usr/share/datasets/fashion-mnist           # offline: the official IDX files
    python main.py --config=configs/fgsm_at_fashion_mnist.py:smoke     # a few steps, offline

Objective: 0.5 * J(x) + 0.5 * J(x + eps * sign(grad_x J)) (Goodfellow et al.'s alpha = 0.5).
BCGAN (Table 1) trains two FGSM models on Fashion-MNIST, eps 0.05 and 0.15 (config argument ``eps``),
with a classifier of "two convolutional layers and one fully-connected layer" (here LeNet: conv5x5-32,
pool, conv5x5-64, pool, fc1024), and evaluates FGSM at 0.05 and 0.15, PGD-40 and C&W L2; it reports
89.0% clean, 76.0% under FGSM 0.15 and 14.9% under PGD for eps 0.15.

BCGAN gives no optimizer, epochs, PGD radius or PGD step. Chosen here: those of the MNIST comparison
(Adam 1e-3, batch 128, 10 epochs); PGD-40 at each FGSM radius with steps of 0.01 and a random start; C&W
L2 with this library's defaults, on the first 1,000 test images.
"""

from robustjax.config import base_config, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps": 0.15})
    c = base_config()
    c.data.name, c.data.source = "fashion_mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "fgsm_at"
    c.defense.attack = {"attack": "fgsm", "eps": float(args["eps"])}
    c.defense.alpha = 0.5
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 0.0
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    c.eval.num_examples = 1000
    attacks = {}
    for eps, tag in ((0.05, "0p05"), (0.15, "0p15")):
        attacks[f"fgsm_{tag}"] = {"attack": "fgsm", "eps": eps}
        attacks[f"pgd40_{tag}"] = {"attack": "pgd", "eps": eps, "step_size": 0.01, "num_steps": 40,
                                   "random_start": True}
    attacks["cw_l2"] = {"attack": "cw_l2"}
    c.eval.attacks = attacks
    if args["smoke"]:  # one attack: a smoke run only checks that everything runs
        c.eval.attacks = {"pgd3_0p15": {"attack": "pgd", "eps": 0.15, "step_size": 0.05, "num_steps": 3}}
        shrink_for_smoke(c)
    return c
