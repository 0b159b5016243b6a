"""Gaussian data augmentation (Zantedeschi et al.), with ReLU or bounded ReLU, of the LeNet CNN on MNIST.

    python main.py --config=configs/gda_mnist.py        # GDA + RELU (tfds mnist)
    python main.py --config=configs/gda_mnist.py:brelu  # GDA + BRELU (t = 1)
    python main.py --config=configs/gda_mnist.py:brelu --config.data.source=npz \
        --config.data.path=/path/to/mnist.npz           # offline
    python main.py --config=configs/gda_mnist.py:smoke  # a few steps, offline

Each example and ten copies of it with N(0, 0.3^2) noise per pixel, clipped to [0, 1]
(robustjax/defenses/gda.py; the paper's Sec. 4.1: "ten noisy samples for each original one, with
standard deviation 0.3 for MNIST"). Config argument ``brelu``: every activation of the network becomes
the bounded ReLU min(max(x, 0), t) with t = 1 (``config.model.activation = "brelu"``, ``brelu_t``), the
paper's GDA + BRELU; without it, GDA + RELU. Whether the clean example stays, and the clipping, are the
paper's open points (the objective of Sec. 3.2 has only noisy terms, its text "augments" the training
set): chosen here, it stays and the copies are clipped; ``config.defense.keep_clean`` and ``clip``
switch them. Zantedeschi et al. report (their Table 2, white-box FGSM of minimal perturbation) 73.96%
accuracy for GDA + RELU and 69.56% for GDA + BRELU against 52.07% for the undefended CNN.

Setting shared by every MNIST config of the comparison table: LeNet, Adam 1e-3, batch 128 (each batch
becomes 128 x 11 rows here), 10 epochs, evaluation FGSM and PGD-40 (step 0.01, random start) at eps 0.1
and 0.3 (first 1,000 test images) and a PGD-40 curve over eps 0 ... 0.4 (see fgsm_at_mnist.py).
"""

from robustjax.config import base_config, linf_suite, parse_arg, shrink_for_smoke


def get_config(arg=None):
    args = parse_arg(arg, {"smoke": False, "brelu": False})
    c = base_config()
    c.data.name, c.data.source = "mnist", "tfds"
    c.data.batch_size = 128
    c.model.name = "lenet"
    c.model.activation = "brelu" if args["brelu"] else "relu"
    c.model.brelu_t = 1.0
    c.defense.name = "gda"
    c.defense.copies = 10
    c.defense.sigma = 0.3
    c.defense.keep_clean = True
    c.defense.clip = True
    c.train.epochs = 10
    c.train.optimizer.learning_rate = 1e-3
    c.train.log_every = 50
    c.train.checkpoint_every = 200
    linf_suite(c, [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    if args["smoke"]:  # one attack and no curve: a smoke run only checks that everything runs
        c.eval.attacks = {"fgsm_0p3": {"attack": "fgsm", "eps": 0.3}}
        c.eval.curves = {}
        shrink_for_smoke(c)
        c.defense.copies = 2
    return c
