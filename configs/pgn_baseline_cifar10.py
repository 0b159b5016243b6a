"""The PGN paper's comparison rows on CIFAR-10 (Table 3): the same classifier, data, optimizer, EMA, budget
and evaluation as configs/pgn_cifar10.py, trained by plain training, FGM-AT or L2 PGD-AT.

    python main.py --config=configs/pgn_baseline_cifar10.py:method=naive          # the "Baseline" row
    python main.py --config=configs/pgn_baseline_cifar10.py:method=fgm_at         # Goodfellow et al., eps 0.1
    python main.py --config=configs/pgn_baseline_cifar10.py:method=pgd_at,eps=0.2 # Madry et al., another eps
    python main.py --config=configs/pgn_baseline_cifar10.py:smoke                 # a few steps

Config arguments: ``method`` (naive | fgm_at | pgd_at, default pgd_at), ``eps`` (the L2 training radius,
default 0.1 as in Table 3), ``width`` and ``smoke`` as in configs/pgn_cifar10.py. FGM-AT is the ``fgm_at``
defense (alpha 0: adversarial examples only); PGD-AT takes Table 1's 10 iterations
of 0.25 eps from a random start. Built by robustjax.defenses.pgn.baseline_config.
"""

from robustjax.config import config_module, parse_arg
from robustjax.defenses.pgn import baseline_config


def baseline(dataset: str, default_eps: float, arg=None):
    """The comparison row ``arg`` names for PGN's ``dataset`` config (see the module docstring)."""
    args = parse_arg(arg, {"smoke": False, "width": 1.0, "method": "pgd_at", "eps": default_eps})
    pgn_arg = f"width={args['width']}" + (",smoke" if args["smoke"] else "")
    pgn = config_module("pgn_cifar10.py", __file__).paper_config(dataset, pgn_arg)
    c = baseline_config(pgn, args["method"], eps=float(args["eps"]))
    if args["smoke"] and args["method"] == "pgd_at":
        c.defense.attack.num_steps = 2
    return c


def get_config(arg=None):
    return baseline("cifar10", 0.1, arg)
