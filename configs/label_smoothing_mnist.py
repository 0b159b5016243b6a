"""Label smoothing (Zantedeschi et al.'s baseline, true-label weight 0.9) of the LeNet CNN on MNIST.

    python main.py --config=configs/label_smoothing_mnist.py        # tfds mnist (downloads)
    python main.py --config=configs/label_smoothing_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                       # offline
    python main.py --config=configs/label_smoothing_mnist.py:smoke  # a few steps, offline

Soft targets: 0.9 on the true class, 0.1 / 9 on each other class (robustjax/defenses/label_smoothing.py
turns the weight into optax's alpha = 1/9 for 10 classes). Zantedeschi et al. (Sec. 4.1) set "the weight
of the true label" to 0.9 and report that label smoothing lowers robustness (their Table 2: 37.06% under
their white-box minimal FGSM, below the undefended CNN's 52.07%).

Setting shared by every MNIST config of the comparison table: LeNet, Adam 1e-3, batch 128, 10 epochs,
evaluation FGSM and PGD-40 (step 0.01, random start) at eps 0.1 and 0.3 (first 1,000 test images) and a
PGD-40 curve over eps 0 ... 0.4 (see fgsm_at_mnist.py).
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "label_smoothing"
    c.defense.true_label_weight = 0.9
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    if args["smoke"]:  # one attack and no curve: a smoke run only checks that everything runs
        c.eval.attacks = {"fgsm_0p3": {"attack": "fgsm", "eps": 0.3}}
        c.eval.curves = {}
        shrink_for_smoke(c)
    return c
