"""GanDef on CIFAR-10 (Liu, Khalil & Khreishah, "GanDef: A GAN Based Adversarial Training Defense for
Neural Network Classifier"): allCNN (Table 4) and a discriminator on its logits; GanDef-Comb with ``:comb``.

    python main.py --config=configs/gandef_cifar10.py                        # GanDef V2 (tfds cifar10)
    python main.py --config=configs/gandef_cifar10.py:comb                   # GanDef-Comb (D as detector)
    python main.py --config=configs/gandef_cifar10.py:comb --config.data.source=npz \
        --config.data.path=$ROBUSTJAX_TEST_DATA/cifar10_subset.npz           # offline (10k-image subset)
    python main.py --config=configs/gandef_cifar10.py:smoke                  # a few steps
    python benchmarks/gandef.py --help                                       # Table 2, Fig. 4 (CPU-sized)

Config arguments: ``comb`` (deploy GanDef-Comb), ``loss`` ("v2" | "v1"), ``gamma``, ``smoke``.

From the paper (Sec. 4.1, Table 4): allCNN = dropout 0.2, 3 x conv3x3-96 SAME, maxpool 2x2, dropout
0.5, 3 x conv3x3-192 SAME, maxpool 2x2, dropout 0.5, conv3x3-192 VALID, conv1x1-192, conv1x1-192,
global average pool, Dense 10, ReLU after every conv, He init on the convs (``model.variant="table4"``);
training data original + PGD-1 examples (7 steps of 2/255 at eps 8/255, random start); GanDef V2; Comb's
threshold 0.5. Evaluation (Table 2): FGSM, BIM (steps of 2/255), PGD-1 (7 x 2/255), PGD-2 (20 x 2/255),
all at 8/255; the paper's accuracies on the adversarial examples: GanDef 84.05 / 54.14 / 46.64 / 49.21 /
45.62 (original, FGSM, BIM, PGD-1, PGD-2), Comb 63.97 / 87.61 / 76.02 / 80.39 / 73.56 (a detected
adversarial example counts as correct; Comb beats every other defense once more than 41.7% of the
test inputs are adversarial, Fig. 4).

Chosen here (the paper does not say), each a config field:
- D (``defense.d_hidden``): Dense(32)-ReLU-Dense(64)-ReLU-Dense(1) on the 10 logits (the logit
  discriminator of the authors' later public code, zero-knowledge GanDef).
- D steps per C step (``defense.d_steps``): 1; gamma (``defense.gamma``): 2.0 (both from that code).
  Measured: at a CPU budget (allCNN at width 0.25, 8 epochs of the 10k subset) gamma 2 collapsed the
  classifier to input-independent logits (chance accuracy, D at 0.5) and gamma 0.5 trained
  (docs/results.md, GanDef on the CIFAR-10 subset); lower ``gamma`` first if a run stays at chance.
- Optimizers: Adam 1e-4 for C with weight decay 1e-3 (added to the gradient: an L2 penalty, as that
  code's CIFAR-10 run), Adam 1e-3 for D; batch 128; 200 epochs (that code ran 350 epochs without PGD;
  200 is about Madry et al.'s CIFAR-10 budget of 80k steps of 128). No data augmentation.
- BIM's number of steps: 10 (CleverHans' default; the paper ran CleverHans and gives only the step).
- Beside the paper's columns: PGD-1000 and AutoAttack (standard) at 8/255; the Comb variant also runs
  every attack adaptively (``<label>_adaptive``: against classifier and detector together).
"""

from robustjax.config import base_config, optimizer, parse_arg, shrink_for_smoke
from robustjax.defenses import gandef

EPS, STEP = 8 / 255, 2 / 255


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "comb": False, "loss": "v2", "gamma": 2.0})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model = {"name": "allcnn", "variant": "table4", "downsample": "max_pool", "dropout": 0.5,
               "input_dropout": 0.2, "width": 1.0}

    d = c.defense
    d.name = "gandef"
    d.attack = {"attack": "pgd", "eps": EPS, "step_size": STEP, "num_steps": 7, "random_start": True}
    d.eps_ramp_epochs = 0.0
    d.gamma = float(args["gamma"])
    d.classifier_loss = args["loss"]
    d.d_steps = 1
    d.d_hidden = [32, 64]
    d.comb = bool(args["comb"])
    d.threshold = 0.5

    c.train.epochs = 200
    c.train.optimizer = optimizer("adam", 1e-4)
    c.train.optimizers.classifier = optimizer("adam", 1e-4, weight_decay=1e-3)
    c.train.optimizers.discriminator = optimizer("adam", 1e-3)
    c.train.log_every = 50
    c.train.checkpoint_every = 2000

    c.eval.num_examples = 1000
    c.eval.curves = {}
    attacks = gandef.table2_attacks(EPS, bim_step=STEP, pgd_step=STEP, pgd1_steps=7, pgd2_steps=20)
    if args["smoke"]:  # cheap stand-ins for the two strong attacks (shrink_for_smoke caps the rest)
        attacks["pgd1000"]["num_steps"] = 3
        attacks["autoattack"].update(attacks=["apgd-ce", "apgd-t"], num_steps=2, num_targets=1)
    if d.comb:
        attacks.update(gandef.adaptive(attacks))
    c.eval.attacks = attacks
    if args["smoke"]:
        shrink_for_smoke(c)
        d.attack.num_steps = 2
    return c
