"""Boundary Conditional GAN (Sun, Zhu & Lin, 2019) on two 2-D Gaussians: the paper's demonstration (Sec.
3.2, Fig. 2), where the boundary samples can be seen next to the decision boundary.

    python main.py --config=configs/bcgan_toy2d.py --workdir=runs/bcgan_toy2d            # beta 1
    python main.py --config=configs/bcgan_toy2d.py:beta=0.1 --workdir=runs/bcgan_toy2d_b0p1
    python main.py --config=configs/bcgan_toy2d.py:smoke --workdir=/tmp/bcgan_toy2d      # a few steps

The paper: two 2-D Gaussian classes; G and D are fully connected networks with 3 hidden layers; Fig. 2
shows the generated samples for several beta, closer to the decision boundary for larger beta. It gives
no sizes, optimizer, beta values or classifier. Chosen here: ``two_gaussians`` from the ``toy2d`` source
(means (-1, 0) and (1, 0), std 0.3 before scaling into [0, 1]^2: classes that touch, so the boundary
runs between them), 2,000 training points, batch 64; the classifier an MLP with two hidden layers of 32
(Adam 1e-3, 20 epochs of pre-training, 10 of fine-tuning); G and D MLPs with hidden layers 64, 64, 64,
latent 8, Adam 2e-4 with beta1 0.5 (Odena et al.'s) for 200 epochs; beta from the config argument
``beta`` (default 1.0; Fig. 2's sweep: run beta = 0, 0.1, 1, 10); a pool of 2,000 boundary samples mixed
1:1 with clean points. Evaluation: clean accuracy, FGSM and PGD-20 at 0.05 and 0.1, PGD-1000 at 0.1
(coordinates in [0, 1]; no AutoAttack, whose DLR losses need three classes or more).

Fig. 2 itself: ``python benchmarks/bcgan_toy2d.py --gan_epochs=100 --out=docs/figures/bcgan_toy2d.png``
(this config's first two phases for beta 0, 0.1, 1, 10; docs/figures/bcgan_toy2d.png). In that run the
samples move towards the pre-trained boundary as beta grows (mean KL(U || p) 3.0, 2.7, 2.1, 0.13), and
only beta 10 puts them on it.
"""

from robustjax.config import base_config, optimizer, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "beta": 1.0})
    c = base_config()
    c.data.name, c.data.source = "two_gaussians", "toy2d"
    c.data.noise, c.data.num_points, c.data.batch_size = 0.3, 2000, 64
    c.model.name, c.model.hidden = "mlp", [32, 32]

    d = c.defense
    d.name = "bcgan"
    d.pretrain_epochs = 20.0
    d.gan_epochs = 200.0
    d.beta = float(args["beta"])
    d.latent_dim = 8
    d.mlp_hidden = [64, 64, 64]
    d.boundary_fraction = 0.5
    d.num_boundary_samples = 2000

    c.train.epochs = 10.0
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.optimizers.classifier = optimizer("adam", 1e-3)
    c.train.optimizers.generator = optimizer("adam", 2e-4, b1=0.5)
    c.train.optimizers.discriminator = optimizer("adam", 2e-4, b1=0.5)
    c.train.log_every, c.train.checkpoint_every = 100, 2000

    c.eval.num_examples = 500
    attacks = {}
    for eps, tag in ((0.05, "0p05"), (0.1, "0p1")):
        attacks[f"fgsm_{tag}"] = {"attack": "fgsm", "eps": eps}
        attacks[f"pgd20_{tag}"] = {"attack": "pgd", "eps": eps, "rel_step_size": 0.125, "num_steps": 20,
                                   "random_start": True}
    attacks["pgd1000_0p1"] = {"attack": "pgd", "eps": 0.1, "rel_step_size": 0.01, "num_steps": 1000,
                              "random_start": True}
    c.eval.attacks = attacks

    if args["smoke"]:
        shrink_for_smoke(c)
        d.pretrain_epochs = d.gan_epochs = 0.5  # 2 steps each (128 points, batch 32)
        d.mlp_hidden = [8, 8, 8]
        d.num_boundary_samples = 64
    return c
