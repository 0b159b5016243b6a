"""Zantedeschi, Nicolae and Rawat, "Efficient Defenses Against Adversarial Attacks" (2017) on MNIST: the
paper's networks, its defense (Gaussian data augmentation, bounded ReLU) and the defenses it compares,
with its whole evaluation plus AutoAttack and adaptive PGD-1000.

    python main.py --config=configs/gda_brelu_mnist.py:brelu --workdir=runs/gda_brelu   # GDA + BRELU
    python main.py --config=configs/gda_brelu_mnist.py:smoke                            # seconds, offline

Config arguments (comma-separated, e.g. ``:defense=vat,model=resnet``):

- ``defense``: ``gda`` (default), ``none`` (the undefended CNN), ``feature_squeezing`` (1 bit),
  ``label_smoothing`` (true-label weight 0.9), ``fgsm_at`` (FGSM, eps 0.3), ``vat`` (eps 2.1): the rows of
  the paper's Tables 2-4, with its Sec. 4.1 settings.
- ``model``: ``cnn`` (default; ``zantedeschi_cnn``: conv8x8-64, conv6x6-128, conv5x5-128, dense) or
  ``resnet`` (``zantedeschi_resnet``: the same two first convs, two 1x1 convs under an identity shortcut,
  maxpool 3x3, dense). Strides and padding are the Cleverhans basic CNN's (the paper gives none; see
  robustjax/models/classifiers.py).
- ``brelu``: every activation becomes the bounded ReLU min(max(x, 0), t), t = 1 (GDA + BRELU).
- ``source``: where the black-box transfers are crafted (Tables 4-5): ``standard`` (default: an
  undefended ResNet trained during the evaluation, 2,000 Adam steps, once per transfer) or the workdir
  of a finished undefended ResNet run (the paper's protocol; see the commands below).
- ``jsma``: include JSMA (gamma 1, theta 0.1, ART 0.x's variant) (default on).
- ``smoke``: a few steps on synthetic data, every attack and metric capped (numbers mean nothing).

What the paper leaves open, and what is chosen:

- Training: no optimizer, batch or epochs given. Adam 1e-3, batch 128, 10 epochs (this library's MNIST
  comparison setting). GDA keeps the clean example beside its ten noisy copies (sigma 0.3) and clips the
  copies to [0, 1] (robustjax/defenses/gda.py). FGSM adversarial training: Goodfellow et al.'s 0.5/0.5
  mix, no eps ramp (none is mentioned). Feature squeezing trains on squeezed inputs and is attacked
  through BPDA (configs/feature_squeezing_mnist.py says why).
- Random + FGSM: run both as the paper describes it (a Gaussian first step of size alpha = 0.05 taken
  from the budget) and as Tramer et al. define it (a sign step of eps / 2); ``rand_fgsm``'s docstring
  gives the exact formula chosen for the paper's.
- C&W: 1,000 iterations per binary-search step instead of the authors' 10,000; JSMA's theta / gamma and
  its variant as in ART 0.x (see ``robustjax.config.zantedeschi_attacks``).
- The evaluation is white-box against the model as trained (the paper's definition, Sec. 4.3), on the
  first 1,000 test images; the paper's FGSM eps grid 0.01 ... 1 is the ``fgsm`` and ``rfgsm_gauss``
  curves; PGD-40 (step 0.01) at 0.1 and 0.3, PGD-1000 and AutoAttack at 0.3 are added (``linf_suite``).

The paper's MNIST results (Table 2, white-box minimal FGSM: accuracy / robustness / training-set
distance): CNN 52.07 / 0.202 / 3.90; GDA + RELU 73.96 / 0.440 / 10.36; GDA + BRELU 69.56 / 0.471 / 9.31.
Table 3 (loss sensitivity): CNN 0.0609, GDA + RELU 0.0244, GDA + BRELU 0.0753.

Reproducing the tables: ``benchmarks/gda_brelu_mnist.py`` runs every row of the study (the four architectures,
then the defenses, black-box examples crafted on the undefended ResNet row) at one budget and writes
Tables 1-4, Figs. 3-4 and the strong-attack table; ``docs/results.md`` has its CPU-sized run. With the
config's own settings (each run hours of quiet CPU; not run in CI):

    python benchmarks/gda_brelu_mnist.py --npz /path/to/mnist.npz --out runs/zbr_mnist --paper
    python benchmarks/gda_brelu_mnist.py --npz /path/to/mnist.npz --paper --print    # the main.py commands
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke, zantedeschi_attacks

MODELS = {"cnn": "zantedeschi_cnn", "resnet": "zantedeschi_resnet"}
# The paper's Sec. 4.1 settings for MNIST, per compared defense.
DEFENSES = {
    "none": {"name": "standard"},
    "gda": {"name": "gda", "copies": 10, "sigma": 0.3, "keep_clean": True, "clip": True},
    "feature_squeezing": {"name": "feature_squeezing", "bit_depth": 1, "median_size": 0, "train_on_squeezed": True},
    "label_smoothing": {"name": "label_smoothing", "true_label_weight": 0.9},
    "fgsm_at": {"name": "fgsm_at", "attack": {"attack": "fgsm", "eps": 0.3}, "alpha": 0.5, "adv_fraction": 1.0,
                "eps_ramp_epochs": 0.0},
    "vat": {"name": "vat", "eps": 2.1, "xi": 1e-6, "power_iterations": 1, "alpha": 1.0},
}
EPS = [0.1, 0.3]
CURVE = [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]


def _choice(args, name, table):
    if args[name] not in table:
        raise ValueError(f"config argument {name}={args[name]!r}: valid values are {sorted(table)}")
    return table[args[name]]


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "brelu": False, "defense": "gda", "model": "cnn",
                           "source": "standard", "jsma": True})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = _choice(args, "model", MODELS)
    c.model.activation = "brelu" if args["brelu"] else "relu"
    c.model.brelu_t = 1.0
    c.defense = dict(_choice(args, "defense", DEFENSES))
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    linf_suite(c, EPS, pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4], strong_eps=0.3)
    zantedeschi_attacks(c, EPS, curve_grid=CURVE, jsma=args["jsma"], transfer_source=args["source"])
    if args["smoke"]:
        shrink_for_smoke(c)
        if c.defense.name == "gda":
            c.defense.copies = 2
        specs = list(c.eval.attacks.values()) + [m.attack for m in c.eval.metrics.values() if m.metric == "transfer"]
        for spec in specs:  # JSMA stops after 2% of the features have changed
            if spec.attack == "jsma":
                spec.gamma = 0.02
    return c
