"""TRADES (Zhang et al. 2019) of the LeNet CNN on MNIST.

    python main.py --config=configs/trades_mnist.py        # tfds mnist (downloads)
    python main.py --config=configs/trades_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz              # offline
    python main.py --config=configs/trades_mnist.py:smoke  # a few steps, offline

Loss: CE(f(x), y) + beta * KL(p(x) || p(x_adv)), beta = 6, with x_adv from PGD-40 (eps 0.3, steps of
0.01, random start) ascending that KL rather than the cross-entropy (robustjax/defenses/trades.py).
beta = 6 is Zhang et al.'s 1/lambda = 6. Their MNIST attack is this PGD, started at x + 0.001 * N(0, I);
here PGD's uniform random start in the eps ball (at x itself the KL's gradient is zero).

Setting shared by every MNIST config of the comparison table: LeNet, Adam 1e-3, batch 128, 10 epochs,
the train-time eps ramped from 0 over 2 epochs, evaluation FGSM and PGD-40 (step 0.01, random start) at
eps 0.1 and 0.3 (first 1,000 test images) and a PGD-40 curve over eps 0 ... 0.4 (see fgsm_at_mnist.py).
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "trades"
    c.defense.attack = {"attack": "pgd", "eps": 0.3, "step_size": 0.01, "num_steps": 40, "random_start": True}
    c.defense.beta = 6.0
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
