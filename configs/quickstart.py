"""Quickstart: PGD adversarial training of a small CNN on scikit-learn's digits (no download).

    python main.py --config=configs/quickstart.py
    python main.py --config=configs/quickstart.py:smoke          # seconds; what the tests run

The 8x8 digits are resized to 16x16 and scaled to [0, 1]. Training: Madry PGD-AT at eps 0.1 (L-inf,
7 steps of 0.03, random start), Adam 2e-3. Evaluation: clean accuracy, FGSM and PGD-20 at eps 0.1, and
a PGD robustness curve over eps. Runs in under 3 minutes on 2 CPU cores.
"""

from robustjax.config import base_config, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source, c.data.image_size = "digits", "digits", 16
    c.data.batch_size = 64
    c.model.name = "small_cnn"
    c.defense.name = "pgd_at"
    c.defense.attack = {"attack": "pgd", "eps": 0.1, "step_size": 0.03, "num_steps": 7, "random_start": True}
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 0.0
    c.train.epochs = 30
    c.train.optimizer.learning_rate = 2e-3
    c.train.log_every = 25
    c.train.checkpoint_every = 200
    c.eval.num_examples = 0
    c.eval.attacks = {
        "fgsm": {"attack": "fgsm", "eps": 0.1},
        "pgd20": {"attack": "pgd", "eps": 0.1, "step_size": 0.01, "num_steps": 20, "random_start": True},
    }
    c.eval.curves = {
        "pgd": {"attack": "pgd", "eps_grid": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3], "rel_step_size": 0.25,
                "num_steps": 10, "random_start": False},
    }
    if args["smoke"]:
        shrink_for_smoke(c)
        c.defense.attack.num_steps = 2
    return c
