"""Defensive distillation (Papernot et al., 2016) on MNIST, as BCGAN (Sun et al., 2019) compares against it.

    python main.py --config=configs/distillation_mnist.py                   # tfds mnist (downloads)
    python main.py --config=configs/distillation_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                         # offline
    python main.py --config=configs/distillation_mnist.py:smoke             # a few steps (offline)

Paper settings: a teacher and a student of the same architecture, both trained with their softmax at
temperature T = 100 (BCGAN: "trained with soft labels under Temperature T = 100, just the same as
original paper"), the student on the teacher's soft labels; the student is deployed at T = 1. BCGAN's
MNIST classifier has two convolutional layers and one fully connected layer; BCGAN reports distillation
at 96.9% clean, 96.0% under FGSM 0.2 / 0.4 and PGD-40, and 2.1% under C&W-L2 (Table 1): the gradient
masking that C&W's loss on the logits gets through.

Here (for one results table with the other MNIST baselines): the same classifier (``lenet``: conv5x5-32,
pool, conv5x5-64, pool, fc1024), optimizer (Adam 1e-3, batch 128), epochs and evaluation as
configs/pgd_at_mnist.py: 10 epochs for the student, and as many for the teacher (``teacher_epochs=0``
means "as long as the student phase", so ``--config.train.epochs`` sets both); FGSM and PGD-40 (step
0.01, random start) at eps 0.1 and 0.3 and a PGD-40 curve. Added for this defense: PGD-40 on the margin
loss (C&W's loss on the logits) at the same radii, and the curve on the margin loss, because the
deployed logits are ~T times larger than in training and the cross-entropy's gradient underflows to
zero on a saturated softmax; the report's ``worst_case`` takes the per-example minimum over all attacks
at a radius. What that looks like at a small budget is in docs/results.md.
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
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "distillation"
    c.defense.temperature = 100.0
    c.defense.teacher_epochs = 0.0
    c.train.epochs = 10
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.optimizers.teacher = optimizer("adam", 1e-3)
    c.train.optimizers.classifier = optimizer("adam", 1e-3)
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    margin_twins(c)
    if args["smoke"]:  # one radius, no curve: few programs to compile
        shrink_for_smoke(c)
        linf_suite(c, [0.3], pgd_steps=3, step_size=0.1, num_examples=c.eval.num_examples,
                   autoattack=False, many_steps=0)  # smoke: no AutoAttack/PGD-1000 compiles
        c.eval.curves = {}
        margin_twins(c)
    return c
