"""ATGAN on SVHN (Wang et al., "Improving Global Adversarial Robustness Generalization With
Adversarially Trained GAN"): DenseNet40 discriminator body, Table 1's SVHN generator.

    python main.py --config=configs/atgan_svhn.py                      # tfds svhn_cropped (downloads)
    python main.py --config=configs/atgan_svhn.py:eps_t=8              # eps_t = 8/255 (the default)
    python main.py --config=configs/atgan_svhn.py:eps_t=4,frac=0.5     # eps_t = 4/255, FracAT 50%
    python main.py --config=configs/atgan_svhn.py:smoke                # a few steps (tests: tfds mock)

Config arguments: ``eps_t`` (train radius; 0 = ATGAN without adversarial training, attacks then at the
obfuscation test's radius; in 1/255 units as in the paper: ``eps_t=8`` means 8/255;
``config.defense.attack.eps`` holds it in pixel units), ``frac`` (FracAT: fraction of each batch made
adversarial, default 1.0), ``smoke``.

SVHN comes through tfds (``svhn_cropped``): on a connected machine the first run downloads and prepares
it; offline the run stops at once with a message naming the dataset, the data_dir and the ways out.

Paper settings (SVHN): discriminator body DenseNet40, loss network the same DenseNet40 pre-trained on
clean data; generator Conv(64,4,2)-BN-LReLU(0.2), Conv(128,4,2)-BN-LReLU, TransConv(128,4,2)-BN-LReLU,
TransConv(64,4,2)-BN-LReLU, Conv(3,3,1) (+ tanh into [0, 1]); training PGD 7 steps of 2/255 (L-inf,
eps_t); G: Adam 2e-4, betas (0.5, 0.999); D: SGD 0.1, momentum 0.9, learning rate x0.1 at epochs 20
and 30; batch 64; 40 epochs; alpha = beta = 1, gamma = 10.

Chosen here (the paper does not say): the loss network is pre-trained for 5 epochs
with Adam 1e-3 (``defense.loss_net_epochs``; 0 with ``defense.loss_net_workdir=DIR`` reuses an earlier
run's); no weight decay (add ``--config.train.optimizers.discriminator.weight_decay=5e-4`` if wanted);
FGSM at eps_t beside PGD. Evaluation (Sec. 4.2, Table 5's caption): white-box PGD-7 of 2/255 at eps_i in
{2, 4, ..., 20}/255 as robustness curves (Fig. 3) and point-wise tables (Table 3: eps_i 8, 12, 14 /255).
A fixed step of 2/255 with 7 steps moves a pixel at most 14/255, short of the larger eps_i: the curves
scale the step with each eps_i (``rel_step_size``: 2.5 eps_i / 7), and the paper's fixed-step PGD-7 is its
own row at eps_t (``pgd7_<eps_t>``).
"""

from robustjax.config import base_config, linf_suite, optimizer, parse_arg, shrink_for_smoke

# eps_i of Sec. 4.2 (the robustness curves, in 1/255), and the point-wise eps_i of Tables 3-4.
EPS_GRID_255 = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
TABLE_EPS_255 = [8, 12, 14]


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "eps_t": 8.0, "frac": 1.0})
    c = base_config()
    c.data.name, c.data.source = "svhn_cropped", "tfds"
    c.data.batch_size = 64
    c.model.name = "densenet40"

    d = c.defense
    d.name = "atgan"
    eps_t = float(args["eps_t"]) / 255.0
    d.attack = {"attack": "pgd", "eps": eps_t, "step_size": 2.0 / 255.0, "num_steps": 7, "random_start": True}
    d.adv_fraction = float(args["frac"]) if eps_t > 0 else 0.0  # eps_t = 0: ATGAN without AT
    eps_eval = eps_t if eps_t > 0 else 8.0 / 255.0  # the point-wise attacks' radius (the obfuscation test's)
    d.eps_ramp_epochs = 0.0
    d.alpha, d.beta, d.gamma = 1.0, 1.0, 10.0
    d.generator = "svhn"
    d.generator_width = 1.0
    d.generator_loss = "nonsaturating"
    d.loss_net_epochs = 5.0
    d.loss_net_workdir = ""

    c.train.epochs = 40
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.optimizers.generator = optimizer("adam", 2e-4, b1=0.5, b2=0.999)
    c.train.optimizers.discriminator = optimizer("sgd", 0.1, momentum=0.9, schedule="step",
                                                 decay_epochs=[20, 30], decay_factor=0.1)
    c.train.optimizers.loss_net = optimizer("adam", 1e-3)
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    linf_suite(c, [eps_eval], pgd_steps=7, step_size=2.0 / 255.0)
    c.eval.curves = {"pgd7": {"attack": "pgd", "eps_grid": [0.0] + [e / 255.0 for e in EPS_GRID_255],
                              "rel_step_size": 2.5 / 7, "num_steps": 7, "random_start": True}}

    if args["smoke"]:
        linf_suite(c, [eps_eval], pgd_steps=3, step_size=2.0 / 255.0, curve_grid=[0.0, eps_eval])
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        c.model.depth = 7  # one layer per dense block: the pipeline, not the network, is under test
        d.attack.num_steps = 2
        d.generator_width = 0.125
        d.loss_net_epochs = 0.5
    return c
