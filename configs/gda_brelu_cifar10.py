"""Zantedeschi, Nicolae and Rawat, "Efficient Defenses Against Adversarial Attacks" (2017) on CIFAR-10: the
paper's networks, its defense (Gaussian data augmentation, bounded ReLU) and the defenses it compares,
with its evaluation plus AutoAttack and adaptive PGD-1000 (configs/gda_brelu_mnist.py is the MNIST twin;
the choices it lists hold here too).

    python main.py --config=configs/gda_brelu_cifar10.py:brelu --workdir=runs/gda_brelu_c10   # GDA + BRELU
    python main.py --config=configs/gda_brelu_cifar10.py:smoke                                # seconds, offline

Config arguments as in gda_brelu_mnist.py (``defense``, ``model``, ``brelu``, ``source``, ``jsma``,
``smoke``), with the paper's CIFAR-10 settings (Sec. 4.1): GDA sigma 0.05 (ten copies), feature squeezing
to 3 bits, FGSM adversarial training at eps 0.05, label smoothing 0.9, VAT eps 2.1. ``jsma`` is off by
default here: ART's variant may push each of the 3,072 features up to ten times (theta 0.1) before it
gives up on an example; ``jsma=1`` turns it on (the paper's Table 5 has it).

Chosen where the paper is silent: Adam 1e-3, batch 128, 50 epochs; the paper's FGSM / Random + FGSM grid
0 ... 0.3 (Fig. 5: "for bigger values, the accuracies are almost constant"); FGSM, both Random + FGSM
variants and PGD-20 (step 0.0125, random start) at eps 0.05 and 0.1; PGD-1000 and AutoAttack at 0.05
(the paper's CIFAR-10 noise level and adversarial-training eps; the usual CIFAR-10 radius 8/255 = 0.031
is a change of ``strong_eps`` below). At eps 0.05 the paper's Random + FGSM (``rfgsm_gauss_0p05``) is
Gaussian noise alone: its first step takes the whole budget, as the paper's Fig. 5 caption says. No input normalisation: the paper scales pixels to [0, 1] and says
no more.

The paper's CIFAR-10 results are black-box only (Table 5, crafted on an undefended ResNet, FGSM eps 0.1):
CNN 51.55 FGSM / 57.22 Random + FGSM / 77.76 DeepFool / 77.79 C&W; GDA + RELU 59.96 / 71.93 / 76.80 /
76.61; GDA + BRELU 55.65 / 69.43 / 74.97 / 74.78; and the white-box curves of Fig. 5.

Reproducing them (hours of CPU each; not run in CI; offline: ``--config.data.source=npz
--config.data.path=/path/to/cifar10.npz``):

    python main.py --config=configs/gda_brelu_cifar10.py:defense=none,model=resnet --workdir=runs/zbr_c10/resnet
    for d in none feature_squeezing label_smoothing fgsm_at vat gda; do
      python main.py --config=configs/gda_brelu_cifar10.py:defense=$d,source=runs/zbr_c10/resnet \
          --workdir=runs/zbr_c10/$d; done
    python main.py --config=configs/gda_brelu_cifar10.py:brelu,source=runs/zbr_c10/resnet \
        --workdir=runs/zbr_c10/gda_brelu
    python -m robustjax.report runs/zbr_c10/*
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke, zantedeschi_attacks

MODELS = {"cnn": "zantedeschi_cnn", "resnet": "zantedeschi_resnet"}
# The paper's Sec. 4.1 settings for CIFAR-10, per compared defense.
DEFENSES = {
    "none": {"name": "standard"},
    "gda": {"name": "gda", "copies": 10, "sigma": 0.05, "keep_clean": True, "clip": True},
    "feature_squeezing": {"name": "feature_squeezing", "bit_depth": 3, "median_size": 0, "train_on_squeezed": True},
    "label_smoothing": {"name": "label_smoothing", "true_label_weight": 0.9},
    "fgsm_at": {"name": "fgsm_at", "attack": {"attack": "fgsm", "eps": 0.05}, "alpha": 0.5, "adv_fraction": 1.0,
                "eps_ramp_epochs": 0.0},
    "vat": {"name": "vat", "eps": 2.1, "xi": 1e-6, "power_iterations": 1, "alpha": 1.0},
}
EPS = [0.05, 0.1]
CURVE = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3]


def _choice(args, name, table):
    if args[name] not in table:
        raise ValueError(f"config argument {name}={args[name]!r}: valid values are {sorted(table)}")
    return table[args[name]]


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "brelu": False, "defense": "gda", "model": "cnn",
                           "source": "standard", "jsma": False})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = _choice(args, "model", MODELS)
    c.model.activation = "brelu" if args["brelu"] else "relu"
    c.model.brelu_t = 1.0
    c.defense = dict(_choice(args, "defense", DEFENSES))
    c.train.epochs = 50
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    linf_suite(c, EPS, pgd_steps=20, step_size=0.0125, curve_grid=[0.0, 0.01, 0.02, 0.05, 0.1], strong_eps=0.05)
    zantedeschi_attacks(c, EPS, curve_grid=CURVE, jsma=args["jsma"], transfer_source=args["source"])
    if args["smoke"]:
        shrink_for_smoke(c)
        if c.defense.name == "gda":
            c.defense.copies = 2
        specs = list(c.eval.attacks.values()) + [m.attack for m in c.eval.metrics.values() if m.metric == "transfer"]
        for spec in specs:  # JSMA's iterations follow gamma
            if spec.attack == "jsma":
                spec.gamma = 0.02
    return c
