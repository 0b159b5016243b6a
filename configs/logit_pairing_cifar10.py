"""Adversarial logit pairing (Kannan et al.; GanDef's "Logit Pairing" baseline) of allCNN on CIFAR-10.

    python main.py --config=configs/logit_pairing_cifar10.py        # tfds cifar10 (downloads)
    python main.py --config=configs/logit_pairing_cifar10.py --config.data.source=npz \
        --config.data.path=/path/to/cifar10_subset.npz              # offline: a 10k-image subset
    python main.py --config=configs/logit_pairing_cifar10.py:smoke  # a few steps, offline

Loss: 0.5 * CE(x) + 0.5 * CE(x_adv) + lambda * mean((z(x) - z(x_adv))^2) with x_adv the PGD example of x
(robustjax/defenses/logit_pairing.py). lambda = 0.01: GanDef found that the MNIST weight made training
diverge on CIFAR-10 whatever the optimizer, learning rate, initialisation or weight decay, "until the
weight of logit comparison loss is decreased to 0.01". Its Table 2 reports for Logit Pairing 84.21%
clean, 51.63% under FGSM, 44.09% under BIM, 46.53% under PGD-7 and 43.28% under PGD-20.

GanDef's CIFAR-10 setting: allCNN (its Table 4: input dropout 0.2, dropout 0.5 after each downsampling),
train-time PGD of 7 iterations ("PGD-1") at eps 8/255 with steps of 2/255 on "original and PGD-1
examples"; evaluation FGSM, BIM, PGD-7 and PGD-20 at 8/255 with steps of 2/255. GanDef gives no
optimizer, epochs or BIM iteration count ("the same as the original papers"). Chosen here: Adam 1e-3,
batch 128, 100 epochs; PGD with a random start; BIM with 10 iterations (Kurakin et al.'s min(eps + 4,
1.25 eps) in 1/255 units); the first 1,000 test images.
"""

from robustjax.config import base_config, optimizer, parse_arg, shrink_for_smoke

EPS, STEP = 8.0 / 255.0, 2.0 / 255.0


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = "allcnn"
    c.defense.name = "logit_pairing"
    c.defense.attack = {"attack": "pgd", "eps": EPS, "step_size": STEP, "num_steps": 7, "random_start": True}
    c.defense.alpha = 0.5
    c.defense.pairing_weight = 0.01
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 0.0
    c.train.epochs = 100
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.eval.num_examples = 1000
    c.eval.attacks = {
        "fgsm_8": {"attack": "fgsm", "eps": EPS},
        "bim10_8": {"attack": "bim", "eps": EPS, "step_size": STEP, "num_steps": 10},
        "pgd7_8": {"attack": "pgd", "eps": EPS, "step_size": STEP, "num_steps": 7, "random_start": True},
        "pgd20_8": {"attack": "pgd", "eps": EPS, "step_size": STEP, "num_steps": 20, "random_start": True},
    }
    if args["smoke"]:  # one attack: a smoke run only checks that everything runs
        c.eval.attacks = {"pgd3_8": {"attack": "pgd", "eps": EPS, "step_size": STEP, "num_steps": 3}}
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        c.model.width = 0.125
        c.defense.attack.num_steps = 2
    return c
