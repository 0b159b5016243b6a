"""FGSM adversarial training (Goodfellow et al.) of the Madry/LeNet CNN on MNIST.

    python main.py --config=configs/fgsm_at_mnist.py          # tfds mnist (downloads)
    python main.py --config=configs/fgsm_at_mnist.py:eps=0.2  # BCGAN's first setting
    python main.py --config=configs/fgsm_at_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                 # offline
    python main.py --config=configs/fgsm_at_mnist.py:smoke    # a few steps, offline

Objective: alpha * J(x) + (1 - alpha) * J(x + eps * sign(grad_x J)), alpha = 0.5 (Goodfellow et al.;
Zantedeschi et al. write the same objective and name no alpha; BCGAN says nothing of it either).
Train radius (config argument ``eps``): 0.3 by default, Zantedeschi et al.'s MNIST setting and the
comparison table's evaluation radius; BCGAN trains two models, ``eps=0.2`` and ``eps=0.4``.

Setting shared by every MNIST config of the comparison table (so the rows compare; pgd_at_mnist.py has
the same): LeNet (conv5x5-32, pool, conv5x5-64, pool, fc1024), Adam 1e-3, batch 128, 10 epochs; each
train-time attack's eps ramped linearly from 0 over the first 2 epochs (pgd_at_mnist.py needs that to
train at all; the papers train without one); evaluation FGSM and PGD-40 (step 0.01, random start) at
eps 0.1 and 0.3 on the first 1,000 test images, and a PGD-40 curve over eps 0 ... 0.4.
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps": 0.3})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "fgsm_at"
    c.defense.attack = {"attack": "fgsm", "eps": float(args["eps"])}
    c.defense.alpha = 0.5
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
