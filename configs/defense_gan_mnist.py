"""Defense-GAN (Samangouei et al., 2018) on MNIST, as BCGAN (Sun et al., 2019) compares against it: the
input is projected onto a WGAN generator's range and the projection is classified.

    python main.py --config=configs/defense_gan_mnist.py                    # tfds mnist (downloads)
    python main.py --config=configs/defense_gan_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                         # offline
    python main.py --config=configs/defense_gan_mnist.py --config.defense.L=200 --config.defense.R=10
    python main.py --config=configs/defense_gan_mnist.py:smoke              # a few steps (offline)

Paper settings: BCGAN trains Defense-GAN's generator "with WGAN first" and runs the projection with
L = 12000 gradient steps at inference "on all datasets" (its text gives neither R nor the networks);
BCGAN's Table 1 reports Defense-GAN at 90.1% clean, 83.1 / 71.2% under FGSM 0.2 / 0.4, 77.0% under
PGD-40 and 34.4% under C&W-L2 on MNIST. Samangouei et al.'s own MNIST experiments use far fewer steps
(L = 200 with R = 10 random starts in their main tables).

Chosen here, for a CPU (the projection is the cost: L x R generator forward and backward passes per
image, for every prediction and every attack step):

- L = PROJECTION_STEPS, R = PROJECTION_STARTS, Adam on z at learning rate 0.05 (PROJECTION_LR): the
  fewest generator passes (200 per image) at which the projection stops costing accuracy. Measured by
  benchmarks/defense_gan_projection.py on a trained generator (docs/results.md, "The baselines on
  MNIST"): 100 test reconstructions all classified correctly from L = 50 on, against 77-96% with fewer
  steps, one start or learning rate 0.01; 33 ms per image per prediction on a 2-core CPU. The paper's values are one override
  away (command above).
- WGAN-GP (lambda 10, 5 critic iterations per generator step) on a DCGAN-style generator at width 0.5
  (7x7x64 -> 14x14x32 -> 28x28x1, z of 128) and a mirrored critic, Adam 5e-4 (beta1 0.5, beta2 0.9)
  for both, 10 epochs of critic iterations (938 generator steps on all of MNIST). Gulrajani et al. use
  Adam 1e-4 and train far longer; at a CPU budget the larger rate gives recognisable digits sooner.
- The classifier (``lenet``, Adam 1e-3, batch 128, 10 epochs: configs/pgd_at_mnist.py's) trains on the
  clean images (``classifier_data="clean"``, Defense-GAN's main setting).
- Evaluation: configs/pgd_at_mnist.py's FGSM and PGD-40 (step 0.01, random start) at eps 0.1 and 0.3,
  attacking through BPDA (gradient of the classifier at the input); PGD-40 at 0.3 again as the naive
  attacker (``"adaptive": False``: the projection gives it no gradient); and APGD-CE with expectation
  over transformation (``"stochastic": True``, ``"eot_iter": 4``, 25 steps) at 0.3, averaging its
  gradients over fresh random starts of the projection. Every prediction draws fresh starts. No PGD
  curve, and the first 200 test images instead of 1,000 (the time).
"""

from robustjax.config import base_config, linf_suite, optimizer, parse_arg, shrink_for_smoke

PROJECTION_STEPS = 50
PROJECTION_STARTS = 4
PROJECTION_LR = 0.05


def adaptive_naive_and_eot(c, eps, *, pgd_steps, step_size, apgd_steps, eot_iter):
    """Adds, at ``eps``, the naive PGD (``"adaptive": False``) and APGD-CE with expectation over
    transformation (``"stochastic": True``) to ``c.eval.attacks``."""
    tag = f"{eps:g}".replace(".", "p")
    attacks = dict(c.eval.attacks)
    attacks[f"pgd{pgd_steps}_{tag}_naive"] = {"attack": "pgd", "eps": float(eps), "step_size": step_size,
                                              "num_steps": pgd_steps, "random_start": True, "adaptive": False}
    attacks[f"apgd_eot_{tag}"] = {"attack": "apgd", "eps": float(eps), "num_steps": apgd_steps, "loss": "ce",
                                  "stochastic": True, "eot_iter": eot_iter}
    c.eval.attacks = attacks
    return c


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"

    d = c.defense
    d.name = "defense_gan"
    d.latent_dim = 128
    d.generator_width = 0.5
    d.critic_width = 0.5
    d.gan_epochs = 10.0
    d.critic_iters = 5
    d.gp_weight = 10.0
    d.L = PROJECTION_STEPS
    d.R = PROJECTION_STARTS
    d.projection_lr = PROJECTION_LR
    d.classifier_data = "clean"
    d.bpda_gradient_at = "input"

    c.train.epochs = 10
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.optimizers.generator = optimizer("adam", 5e-4, b1=0.5, b2=0.9)
    c.train.optimizers.critic = optimizer("adam", 5e-4, b1=0.5, b2=0.9)
    c.train.optimizers.classifier = optimizer("adam", 1e-3)
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, num_examples=200)
    adaptive_naive_and_eot(c, 0.3, pgd_steps=40, step_size=0.01, apgd_steps=25, eot_iter=4)

    if args["smoke"]:
        shrink_for_smoke(c)
        linf_suite(c, [0.3], pgd_steps=3, step_size=0.1, num_examples=c.eval.num_examples,
                   autoattack=False, many_steps=0)  # smoke: no AutoAttack/PGD-1000 compiles
        del c.eval.attacks["fgsm_0p3"]  # PGD adaptive and naive, and APGD-EOT: fewer programs to compile
        adaptive_naive_and_eot(c, 0.3, pgd_steps=3, step_size=0.1, apgd_steps=3, eot_iter=2)
        d.latent_dim = 16
        d.generator_width = d.critic_width = 0.125
        d.gan_epochs = 1.0
        d.critic_iters = 2
        d.L, d.R = 3, 2
    return c
