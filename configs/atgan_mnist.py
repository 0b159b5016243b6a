"""ATGAN on MNIST (Wang et al., "Improving Global Adversarial Robustness Generalization With
Adversarially Trained GAN"): C&W CNN discriminator body, Table 1's MNIST generator.

    python main.py --config=configs/atgan_mnist.py                              # tfds mnist (downloads)
    python main.py --config=configs/atgan_mnist.py:eps_t=0.2,frac=0.5           # eps_t 0.2, FracAT 50%
    python main.py --config=configs/atgan_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz --config.data.train_size=10000 \
        --config.train.epochs=2 --config.defense.attack.num_steps=10 --config.defense.attack.step_size=0.04   # CPU
    python main.py --config=configs/atgan_mnist.py:smoke                         # a few steps

Config arguments: ``eps_t`` (train radius in pixel units, default 0.3), ``frac`` (FracAT: fraction of
each batch made adversarial, default 1.0), ``smoke``.

Paper settings (MNIST): discriminator body = the C&W MNIST CNN, loss network the same CNN pre-trained
on clean data; generator Conv(8,3,1)-BN-ReLU, Conv(16,3,2)-BN-ReLU, Conv(32,3,2)-BN-ReLU,
4 x ResBlock(32), TransConv(16,3,2)-BN-ReLU, TransConv(8,3,2)-BN-ReLU, Conv(1,3,1), tanh; training PGD
40 steps of 0.01 (L-inf, eps_t); Adam 1e-3 for both networks; batch 128; 50 epochs; alpha = beta = 1,
gamma = 10. Evaluation: clean accuracy, FGSM and PGD-40 (step 0.01, random start) at eps_i in
{0.1, ..., 0.5}, and a PGD-40 robustness curve over eps.

Chosen here (the paper does not say): the loss network is pre-trained for 10 epochs
with Adam 1e-3 (``config.defense.loss_net_epochs``; 0 together with
``--config.defense.loss_net_workdir=DIR`` reuses the loss network or classifier of an earlier run).
On a CPU, lower ``defense.attack.num_steps`` (and raise ``attack.step_size``), ``data.train_size`` and
``train.epochs``; ``defense.eps_ramp_epochs`` adds a linear eps curriculum (PGD-AT
at eps 0.3 from scratch stalls at chance without one: docs/results.md).
"""

from robustjax.config import base_config, linf_suite, optimizer, parse_arg, shrink_for_smoke

EPS_GRID = [0.1, 0.2, 0.3, 0.4, 0.5]


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps_t": 0.3, "frac": 1.0})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "cw_mnist"

    d = c.defense
    d.name = "atgan"
    eps_t = float(args["eps_t"])
    d.attack = {"attack": "pgd", "eps": eps_t, "step_size": 0.01, "num_steps": 40, "random_start": True}
    d.adv_fraction = float(args["frac"])
    d.eps_ramp_epochs = 0.0
    d.alpha, d.beta, d.gamma = 1.0, 1.0, 10.0
    d.generator = "mnist"
    d.generator_width = 1.0
    d.generator_loss = "nonsaturating"
    d.loss_net_epochs = 10.0
    d.loss_net_workdir = ""

    c.train.epochs = 50
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.optimizers.generator = optimizer("adam", 1e-3)
    c.train.optimizers.discriminator = optimizer("adam", 1e-3)
    c.train.optimizers.loss_net = optimizer("adam", 1e-3)
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    linf_suite(c, EPS_GRID, pgd_steps=40, step_size=0.01, curve_grid=[0.0] + EPS_GRID)

    if args["smoke"]:
        linf_suite(c, [eps_t], pgd_steps=3, step_size=0.1, curve_grid=[0.0, eps_t])
        shrink_for_smoke(c)
        d.attack.num_steps = 2
        d.attack.step_size = 0.1
        d.generator_width = 0.25
        d.loss_net_epochs = 0.5
    return c
