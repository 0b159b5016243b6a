"""Plain training of the Madry/LeNet CNN on MNIST: the undefended baseline.

    python main.py --config=configs/standard_mnist.py                       # tfds mnist (downloads)
    python main.py --config=configs/standard_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                         # offline
    python main.py --config=configs/standard_mnist.py:smoke                 # a few steps

Model: conv5x5-32, pool, conv5x5-64, pool, fc1024 (Madry et al.'s MNIST network, GanDef's LeNet).
Adam 1e-3, batch 128, 10 epochs: the budget, model and evaluation of pgd_at_mnist.py and every MNIST
baseline config, so its row compares with theirs. Evaluation: FGSM and PGD-40 (step 0.01) at eps 0.1 and
0.3, PGD-1000 and AutoAttack at 0.3, a PGD-40 curve (config.linf_suite).
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "standard"
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    if args["smoke"]:
        shrink_for_smoke(c)
    return c
