"""L2 FGM adversarial training (the perturbation-generator paper's Goodfellow baseline) on CIFAR-10.

    python main.py --config=configs/fgm_at_cifar10.py        # tfds cifar10
    python main.py --config=configs/fgm_at_cifar10.py --config.data.source=npz \
        --config.data.path=/path/to/cifar10_subset.npz       # offline: a 10k-image subset
    python main.py --config=configs/fgm_at_cifar10.py:smoke  # a few steps, offline

The ``fgm_at`` defense is the ``fgsm_at`` module (robustjax/defenses/fgsm_at.py) with an L2 FGM spec:
x_adv = x + eps * grad_x J / ||grad_x J||_2, eps 0.1 on CIFAR-10 (config argument ``eps``; the paper's
Table 3). alpha = 0 (adversarial examples only): the paper lists an "Adv Coefficient" of 1.0, read here
as CleverHans' adv_coeff (the adversarial term's weight; the clean term gets 1 - adv_coeff). The paper
reports, with the benign accuracy matched to the baseline's, 0.9180 clean,
0.6335 under FGM 0.5 and a mean C&W L2 of 0.4196 for this model.

The perturbation-generator paper's training setting (its Table 1), shared by its baselines: ConvPool-CNN
(``convpool_cnn``) without dropout (Table 1's "Dropout -"), Adam 5e-4, batch 128, EMA of the weights
0.998, no weight decay, 200 epochs ("Max Epochs"). Its evaluation, all L2: FGM at 0.5, MIM
at 0.5 with 100 iterations, DeepFool with 100 iterations and C&W L2 with 100 iterations (accuracy for
the first two, the mean and median L2 norm of the successful perturbations for the last two). The paper
gives no MIM step and no C&W search length: chosen here, MIM steps of 0.06 and C&W with 5 binary-search
steps (both CleverHans' defaults, the library the paper used).
"""

from robustjax.config import base_config, optimizer, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps": 0.1})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = "convpool_cnn"
    c.model.dropout, c.model.input_dropout = 0.0, 0.0
    c.defense.name = "fgm_at"
    eps = float(args["eps"])
    c.defense.attack = {"attack": "fgm", "norm": "l2", "eps": eps}
    c.defense.alpha = 0.0
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 0.0
    c.train.epochs = 200
    c.train.optimizer = optimizer("adam", 5e-4)
    c.train.ema_decay = 0.998
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.num_examples = 1000
    c.eval.attacks = {
        "fgm_l2_0p5": {"attack": "fgm", "norm": "l2", "eps": 0.5},
        "mim100_l2_0p5": {"attack": "mim", "norm": "l2", "eps": 0.5, "step_size": 0.06, "num_steps": 100},
        "deepfool100": {"attack": "deepfool", "norm": "l2", "num_steps": 100},
        "cw_l2_100": {"attack": "cw_l2", "num_steps": 100, "binary_search_steps": 5},
    }
    if args["smoke"]:  # one attack: a smoke run only checks that everything runs
        c.eval.attacks = {"fgm_l2_0p5": {"attack": "fgm", "norm": "l2", "eps": 0.5}}
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        c.model.width = 0.125
    return c
