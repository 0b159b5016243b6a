"""Feature squeezing (Xu et al., 2018) on MNIST, as Zantedeschi et al. (2017) compare against it: 1-bit
pixels in front of the classifier.

    python main.py --config=configs/feature_squeezing_mnist.py              # tfds mnist (downloads)
    python main.py --config=configs/feature_squeezing_mnist.py --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz                         # offline
    python main.py --config=configs/feature_squeezing_mnist.py --config.defense.median_size=2   # + 2x2 median
    python main.py --config=configs/feature_squeezing_mnist.py:smoke        # a few steps (offline)

Paper settings (Zantedeschi et al., Sec. 4.1): "reducing the color depth to 1 bit for MNIST and 3 bits
for CIFAR10, as the authors suggested in Xu et al."; no median filter. Their Table 2 (white-box FGSM with
minimal perturbation) puts feature squeezing at 35.6% accuracy and robustness 0.143, below the plain
CNN's 0.202; in the black-box tables it is among the best. Xu et al. also use a 2x2 median filter on
MNIST (``--config.defense.median_size=2``).

Chosen here: the classifier trains on squeezed images (``train_on_squeezed=True``: the inputs it sees
deployed; Xu et al. squeeze in front of a normally trained model, ``train_on_squeezed=False``). For one
results table with the other MNIST baselines: the classifier, optimizer and epochs of
configs/pgd_at_mnist.py (``lenet``, Adam 1e-3, batch 128, 10 epochs) and its evaluation (FGSM and PGD-40,
step 0.01, random start, at eps 0.1 and 0.3; a PGD-40 curve), attacking through BPDA (the squeezer's
values, the identity's gradient), plus every attack again as the naive attacker (``<label>_naive``,
``"adaptive": False``: it differentiates the squeezed classifier as deployed, whose gradient is zero).
"""

from robustjax.config import base_config, linf_suite, optimizer, parse_arg, shrink_for_smoke


def naive_twins(c):
    """Adds the naive attacker (``<label>_naive``, ``"adaptive": False``) beside every attack of ``c.eval``."""
    attacks = dict(c.eval.attacks)
    for label, spec in list(attacks.items()):
        attacks[f"{label}_naive"] = {**spec, "adaptive": False}
    c.eval.attacks = attacks
    return c


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.defense.name = "feature_squeezing"
    c.defense.bit_depth = 1
    c.defense.median_size = 0
    c.defense.train_on_squeezed = True
    c.train.epochs = 10
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    naive_twins(c)
    if args["smoke"]:  # one radius, no curve: few programs to compile
        shrink_for_smoke(c)
        linf_suite(c, [0.3], pgd_steps=3, step_size=0.1, num_examples=c.eval.num_examples,
                   autoattack=False, many_steps=0)  # smoke: no AutoAttack/PGD-1000 compiles
        c.eval.curves = {}
        naive_twins(c)
    return c
