"""L2 PGD adversarial training (Madry et al.; the perturbation-generator paper's baseline) on CIFAR-100.

    python main.py --config=configs/pgd_at_l2_cifar100.py        # tfds cifar100
    python main.py --config=configs/pgd_at_l2_cifar100.py:smoke  # a few steps, offline

The ``pgd_at`` defense (robustjax/defenses/pgd_at.py: cross-entropy on the adversarial examples only)
with an L2 PGD spec: eps 0.02 on CIFAR-100 (config argument ``eps``; the paper's Table 2), 10 iterations
("PGD iter"), random start. The paper names no step: chosen, 0.25 * eps (Madry et al.'s 2.5 * eps /
iterations). The paper reports, with the benign accuracy matched to the baseline's, 0.7000 clean,
0.2139 under FGM 0.5 and a mean C&W L2 of 0.1305 for this model.

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
    args = parse_arg(arg, {"smoke": False, "eps": 0.02})
    c = base_config()
    c.data.name, c.data.source = "cifar100", "tfds"
    c.data.batch_size = 128
    c.model.name = "convpool_cnn"
    c.model.dropout, c.model.input_dropout = 0.0, 0.0
    c.defense.name = "pgd_at"
    eps = float(args["eps"])
    c.defense.attack = {"attack": "pgd", "norm": "l2", "eps": eps, "step_size": 0.25 * eps,
                        "num_steps": 10, "random_start": True}
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
        c.defense.attack.num_steps = 2
    return c
