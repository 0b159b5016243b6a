"""Madry et al. PGD adversarial training on MNIST (eps 0.3, 40 steps of 0.01, random start).

    python main.py --config=configs/pgd_at_mnist.py                          # tfds mnist (downloads)
    python main.py --config=configs/pgd_at_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                          # offline
    python main.py --config=configs/pgd_at_mnist.py:smoke                   # a few steps

Paper settings (Madry et al. 2018, MNIST): conv5x5-32, pool, conv5x5-64, pool, fc1024; PGD with eps
0.3, 40 steps of 0.01 and a random start; 100k steps of batch 50 with Adam 1e-4. That is days on a
CPU; the default here is 10 epochs with Adam 1e-3 and a linear eps curriculum over the first 2 epochs
(without one, training at eps 0.3 from scratch stalls at chance). docs/results.md has the CPU-sized
command and numbers.
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "pgd_at"
    c.defense.attack = {"attack": "pgd", "eps": 0.3, "step_size": 0.01, "num_steps": 40, "random_start": True}
    c.defense.adv_fraction = 1.0
    c.defense.eps_ramp_epochs = 2.0
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    if args["smoke"]:
        shrink_for_smoke(c)
        c.defense.attack.num_steps = 2
        c.defense.eps_ramp_epochs = 0.0
    return c
