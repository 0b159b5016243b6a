"""Feature squeezing (Xu et al., 2018) on CIFAR-10, as Zantedeschi et al. (2017) compare against it: 3-bit
pixels in front of the classifier.

    python main.py --config=configs/feature_squeezing_cifar10.py            # tfds cifar10 (downloads)
    python main.py --config=configs/feature_squeezing_cifar10.py --config.data.source=npz \
        --config.data.path=/path/to/cifar10_subset.npz                # offline: the 10k-image subset
    python main.py --config=configs/feature_squeezing_cifar10.py:smoke      # a few steps (offline)

Paper settings (Zantedeschi et al., Sec. 4.1): 3-bit colour depth on CIFAR-10 (Xu et al.'s choice), in
front of Zantedeschi et al.'s CNN (conv8x8-64, conv6x6-128, conv5x5-128, softmax: ``zantedeschi_cnn``);
FGSM over eps 0 .. 0.3 (Figure 5). Xu et al. also use a 2x2 median filter on CIFAR-10
(``--config.defense.median_size=2``).

Chosen here (the papers do not say): the classifier trains on squeezed images (``train_on_squeezed``);
Adam 1e-3, batch 128, 50 epochs; the CIFAR-10 evaluation of configs/distillation_cifar10.py (BCGAN's
radii: FGSM and PGD-8, step 0.0075, random start, at eps 0.01 and 0.03; a PGD-8 curve over eps 0 ..
0.04), through BPDA, and every attack again as the naive attacker (``<label>_naive``).
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
    c.data.name, c.data.source = "cifar10", "tfds"
    c.data.batch_size = 128
    c.model.name = "zantedeschi_cnn"
    c.defense.name = "feature_squeezing"
    c.defense.bit_depth = 3
    c.defense.median_size = 0
    c.defense.train_on_squeezed = True
    c.train.epochs = 50
    c.train.optimizer = optimizer("adam", 1e-3)
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    linf_suite(c, [0.01, 0.03], pgd_steps=8, step_size=0.0075, curve_grid=[0.0, 0.01, 0.02, 0.03, 0.04])
    naive_twins(c)
    if args["smoke"]:  # one radius, no curve: few programs to compile
        shrink_for_smoke(c, train_size=64, test_size=16, batch_size=16, steps=2)
        linf_suite(c, [0.03], pgd_steps=2, step_size=0.0075, num_examples=c.eval.num_examples,
                   autoattack=False, many_steps=0)  # smoke: no AutoAttack/PGD-1000 compiles
        c.eval.curves = {}
        naive_twins(c)
        c.model.width = 0.125
    return c
