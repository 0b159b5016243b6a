"""Defensive distillation (Papernot et al., 2016) on CIFAR-10, as BCGAN (Sun et al., 2019) compares against it.

    python main.py --config=configs/distillation_cifar10.py                 # tfds cifar10 (downloads)
    python main.py --config=configs/distillation_cifar10.py --config.data.source=npz \
        --config.data.path=/path/to/cifar10_subset.npz                # offline: the 10k-image subset
    python main.py --config=configs/distillation_cifar10.py:smoke           # a few steps (offline)

Paper settings (BCGAN, Sec. 4.1): teacher and student trained with soft labels at temperature T = 100,
the student deployed at T = 1; the CIFAR-10 classifier is ResNet18; attacks FGSM at eps 0.01 and 0.03,
PGD with 8 iterations, C&W-L2 (1,000 test images). BCGAN's Table 1: distillation 84.9% clean, 75.7 /
75.5% under FGSM 0.01 / 0.03, 75.1% under PGD, 0.0% under C&W-L2.

Chosen here (the papers do not say): both networks SGD 0.01 with momentum 0.9, batch 128, 50 epochs
each (``teacher_epochs=0``: as long as the student phase); PGD-8 with step 0.0075 (a quarter of 0.03)
and a random start at both FGSM radii (BCGAN does not give PGD's radius); beside each PGD on the
cross-entropy the same PGD on the margin loss (C&W's loss on the logits), and the PGD-8 curve over eps 0
.. 0.04 on the margin loss: the deployed logits are ~T times larger than in training, and the
cross-entropy's gradient underflows to zero on a saturated softmax (docs/results.md shows it on MNIST).
"""

from robustjax.config import base_config, linf_suite, optimizer, parse_arg, shrink_for_smoke


def margin_twins(c):
    """Adds a PGD on the margin loss (``<label>_margin``) beside every PGD of ``c.eval.attacks``, and puts
    every curve on the margin loss (on the cross-entropy a curve would trace the masking)."""
    attacks = dict(c.eval.attacks)
    for label, spec in list(attacks.items()):
        if spec["attack"] == "pgd":
            attacks[f"{label}_margin"] = {**spec, "loss": "margin"}
    c.eval.attacks = attacks
    c.eval.curves = {f"{label}_margin": {**spec, "loss": "margin"} for label, spec in dict(c.eval.curves).items()}
    return c


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = "resnet18"
    c.defense.name = "distillation"
    c.defense.temperature = 100.0
    c.defense.teacher_epochs = 0.0
    c.train.epochs = 50
    c.train.optimizer = optimizer("sgd", 0.01, momentum=0.9)
    c.train.optimizers.teacher = optimizer("sgd", 0.01, momentum=0.9)
    c.train.optimizers.classifier = optimizer("sgd", 0.01, momentum=0.9)
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    linf_suite(c, [0.01, 0.03], pgd_steps=8, step_size=0.0075, curve_grid=[0.0, 0.01, 0.02, 0.03, 0.04])
    margin_twins(c)
    if args["smoke"]:  # one radius, no curve: few programs to compile
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        linf_suite(c, [0.03], pgd_steps=2, step_size=0.0075, num_examples=c.eval.num_examples,
                   autoattack=False, many_steps=0)  # smoke: no AutoAttack/PGD-1000 compiles
        c.eval.curves = {}
        margin_twins(c)
        c.model.width = 0.125
    return c
