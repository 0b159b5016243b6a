"""L2 FGM adversarial training (the perturbation-generator paper's Goodfellow baseline) on MNIST.

    python main.py --config=configs/fgm_at_mnist.py        # tfds mnist (downloads)
    python main.py --config=configs/fgm_at_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz              # offline
    python main.py --config=configs/fgm_at_mnist.py:smoke  # a few steps, offline

The ``fgm_at`` defense is the ``fgsm_at`` module (robustjax/defenses/fgsm_at.py) with an L2 FGM spec:
x_adv = x + eps * grad_x J / ||grad_x J||_2. alpha = 0 (adversarial examples only): the paper lists an
"Adv Coefficient" of 1.0, read here as CleverHans' adv_coeff (the weight of the adversarial term; the
clean one gets 1 - adv_coeff), the library the paper trained with. The paper trains on CIFAR only (eps
0.1 on CIFAR-10, 0.02 on CIFAR-100: fgm_at_cifar10.py, fgm_at_cifar100.py); for MNIST it gives no radius.
Chosen here: L2 eps 2.0 (config argument ``eps``), a usual L2 radius for MNIST.

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
    c.defense.name = "fgm_at"
    c.defense.attack = {"attack": "fgm", "norm": "l2", "eps": float(args["eps"])}
    c.defense.alpha = 0.0
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
        c.defense.eps_ramp_epochs = 0.0
    return c
