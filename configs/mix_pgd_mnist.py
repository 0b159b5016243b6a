"""Mixed-minibatch PGD (Kannan et al.'s M-PGD, GanDef's "Mix PGD" baseline) of the LeNet CNN on MNIST.

    python main.py --config=configs/mix_pgd_mnist.py        # tfds mnist (downloads)
    python main.py --config=configs/mix_pgd_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz               # offline
    python main.py --config=configs/mix_pgd_mnist.py:smoke  # a few steps, offline

Each step trains on the batch's clean examples and their PGD examples together: 0.5 * CE(x) + 0.5 *
CE(x_adv) (robustjax/defenses/mix_pgd.py). GanDef's MNIST setting: LeNet, PGD-40 at eps 0.3 with steps
of 0.01 ("PGD-1"), "original and PGD-1 examples"; GanDef's Table 2 reports 99.17% clean and 95.56%
under PGD-40 for Mix PGD. GanDef names no optimizer or epochs for the baselines ("the same as the
original papers").

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
    c.defense.name = "mix_pgd"
    c.defense.attack = {"attack": "pgd", "eps": 0.3, "step_size": 0.01, "num_steps": 40, "random_start": True}
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
        c.defense.attack.num_steps = 2
        c.defense.eps_ramp_epochs = 0.0
    return c
