"""L2 PGD adversarial training (Madry et al.; the perturbation-generator paper's PGD baseline) on MNIST.

    python main.py --config=configs/pgd_at_l2_mnist.py        # tfds mnist (downloads)
    python main.py --config=configs/pgd_at_l2_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                 # offline
    python main.py --config=configs/pgd_at_l2_mnist.py:smoke  # a few steps, offline

The ``pgd_at`` defense (robustjax/defenses/pgd_at.py: cross-entropy on the adversarial examples only)
with an L2 PGD spec: 10 iterations (the paper's "PGD iter"), random start. The paper trains on CIFAR
only (pgd_at_l2_cifar10.py, pgd_at_l2_cifar100.py) and names no step size. Chosen here: L2 eps 2.0
(config argument ``eps``; as fgm_at_mnist.py) and a step of 0.25 * eps (Madry et al.'s 2.5 * eps /
iterations).

Setting shared by every MNIST config of the comparison table: LeNet, Adam 1e-3, batch 128, 10 epochs,
the train-time eps ramped from 0 over 2 epochs, evaluation FGSM and PGD-40 (step 0.01, random start) at
L-inf eps 0.1 and 0.3 (first 1,000 test images) and a PGD-40 curve over eps 0 ... 0.4 (see
fgsm_at_mnist.py).
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps": 2.0})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "pgd_at"
    eps = float(args["eps"])
    c.defense.attack = {"attack": "pgd", "norm": "l2", "eps": eps, "step_size": 0.25 * eps, "num_steps": 10,
                        "random_start": True}
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 2.0
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    if args["smoke"]:  # one attack and no curve: a smoke run only checks that everything runs
        c.eval.attacks = {"fgsm_0p3": {"attack": "fgsm", "eps": 0.3}}
        c.eval.curves = {}
        shrink_for_smoke(c)
        c.defense.attack.num_steps = 2
        c.defense.eps_ramp_epochs = 0.0
    return c
