"""The evaluation's config helpers: linf_suite / l2_suite put AutoAttack and many-step PGD beside the
paper's attacks and build curves with a relative step; add_metrics; shrink_for_smoke caps every loop
count of the evaluation (robustjax/config.py)."""

from __future__ import annotations

import inspect

import pytest

from robustjax.attacks import ATTACKS
from robustjax.config import (SMOKE_AUTOATTACK, SMOKE_CAPS, SMOKE_DIAGNOSTICS, add_metrics, base_config, l2_suite,
                              linf_suite, shrink_for_smoke, validate)
from tests.test_config import CONFIGS, load_config

LINF_SUITE_CONFIGS = [n for n in CONFIGS if "linf_suite(" in open(f"configs/{n}").read()]


def _pgd_at(eps=0.3):
    c = base_config()
    c.defense = {"name": "pgd_at", "attack": {"attack": "pgd", "eps": eps, "step_size": 0.01, "num_steps": 40}}
    return c


def test_linf_suite_adds_autoattack_and_many_step_pgd_at_the_defense_eps():
    c = linf_suite(_pgd_at(0.3), [0.1, 0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3, 0.4])
    a = c.eval.attacks
    assert set(a) == {"fgsm_0p1", "fgsm_0p3", "pgd40_0p1", "pgd40_0p3", "pgd1000_0p3", "aa_0p3"}
    assert a.aa_0p3.to_dict() == {"attack": "autoattack", "eps": 0.3, "norm": "linf", "version": "standard"}
    assert a.pgd1000_0p3.num_steps == 1000 and a.pgd1000_0p3.step_size == 0.01 and a.pgd1000_0p3.random_start
    assert a.pgd40_0p3.step_size == 0.01  # the paper's protocol is kept as it is
    [curve] = c.eval.curves.values()
    assert "step_size" not in curve and curve.rel_step_size == pytest.approx(0.01 / 0.3)  # the paper's step at 0.3
    validate(c)


def test_linf_suite_main_eps_outside_the_list_gets_its_few_step_pgd_and_falls_back_to_the_largest():
    c = linf_suite(_pgd_at(0.2), [0.1, 0.3], pgd_steps=10, step_size=0.05)
    assert {"pgd10_0p2", "pgd1000_0p2", "aa_0p2"} <= set(c.eval.attacks)
    assert c.eval.attacks.pgd1000_0p2.step_size == pytest.approx(0.05)
    c = linf_suite(base_config(), [0.1, 0.3], pgd_steps=10, step_size=0.1, many_steps=0, autoattack=False)
    assert set(c.eval.attacks) == {"fgsm_0p1", "fgsm_0p3", "pgd10_0p1", "pgd10_0p3"}
    c = linf_suite(base_config(), [0.01, 0.03], pgd_steps=10, step_size=0.03, strong_eps=0.02)
    assert c.eval.attacks.pgd1000_0p02.step_size == pytest.approx(0.005)  # min(step, eps / 4)
    assert c.eval.attacks.aa_0p02.eps == 0.02


def test_l2_suite_has_the_l2_attacks_minimal_norms_with_radii_and_a_relative_curve():
    c = l2_suite(_pgd_at(0.5), [0.5, 1.0], pgd_steps=20, curve_grid=[0.0, 0.5, 1.0, 2.0], radii=[1.5, 2.0],
                 strong_eps=1.0)
    a = c.eval.attacks
    assert {"fgm_0p5", "fgm_1", "pgd20_l2_0p5", "pgd20_l2_1", "pgd1000_l2_1", "aa_l2_1", "deepfool", "cw_l2"} == set(a)
    assert a.aa_l2_1.norm == "l2" and a.pgd1000_l2_1.norm == "l2" and a.fgm_1.norm == "l2"
    assert a.cw_l2.radii == [1.5, 2.0] and a.cw_l2.num_steps == 100 and a.deepfool.norm == "l2"
    assert c.eval.curves.pgd20_l2.rel_step_size == 0.25
    validate(c)


def test_add_metrics_selects_metrics_by_name_and_validate_checks_them():
    c = add_metrics(base_config(), "empirical_robustness", "loss_sensitivity", rho_adv={"norm": "linf"})
    assert set(c.eval.metrics) == {"empirical_robustness", "loss_sensitivity", "rho_adv"}
    assert c.eval.metrics.rho_adv.to_dict() == {"metric": "rho_adv", "norm": "linf"}
    validate(c)
    add_metrics(c, rho_adv={"norm": "l3"})
    with pytest.raises(ValueError, match=r"config\.eval\.metrics\.rho_adv\.norm: 'l3'"):
        validate(c)


def test_shrink_for_smoke_caps_every_loop_count_of_the_evaluation():
    c = linf_suite(_pgd_at(0.3), [0.3], pgd_steps=40, step_size=0.01, curve_grid=[0.0, 0.1, 0.2, 0.3])
    c.eval.attacks.sq = {"attack": "square", "eps": 0.3, "num_queries": 5000}
    c.eval.attacks.cw = {"attack": "cw_l2", "binary_search_steps": 9, "num_steps": 1000}
    c.eval.attacks.pgd = {"attack": "pgd", "eps": 0.3, "rel_step_size": 0.25, "num_steps": 40}
    add_metrics(c, "empirical_robustness", rho_adv={"num_bisection": 12, "num_steps": 20, "num_examples": 500},
                td={"metric": "train_distance", "attack": "pgd"},  # a label that is also an attack's name
                tr={"metric": "transfer", "source": "standard", "steps": 500, "batch_size": 128,
                    "attack": {"attack": "pgd", "eps": 0.3, "rel_step_size": 0.25, "num_steps": 40}})
    shrink_for_smoke(c)
    a = c.eval.attacks
    assert a.pgd1000_0p3.num_steps == a.pgd40_0p3.num_steps == 3
    assert a.aa_0p3.attacks == list(SMOKE_AUTOATTACK)
    assert (a.aa_0p3.num_steps, a.aa_0p3.num_queries, a.aa_0p3.num_targets) == (3, 10, 2)  # defaults capped too
    assert a.sq.num_queries == 10 and a.cw.binary_search_steps == 2 and a.cw.num_steps == 3
    assert "restarts" not in a.aa_0p3  # None (the version's) stays unset
    m = c.eval.metrics
    assert m.rho_adv.num_examples == 32 and "num_examples" not in m.empirical_robustness  # 0: the 32 evaluated
    assert c.eval.num_examples == 32
    assert m.rho_adv.num_bisection == 2 and m.rho_adv.num_steps == 3
    assert m.tr.steps == 4 and m.tr.batch_size == 32 and m.tr.attack.num_steps == 3
    assert m.td.to_dict() == {"metric": "train_distance", "attack": "pgd"}  # no pgd defaults poured into it
    d = c.eval.diagnostics
    assert d.num_examples == 32 and all(d[k] == v for k, v in SMOKE_DIAGNOSTICS.items())
    assert c.eval.curves.pgd40.eps_grid == [0.0, 0.1]
    assert SMOKE_CAPS["num_steps"] == 3
    validate(c)


@pytest.mark.parametrize("name", LINF_SUITE_CONFIGS)
def test_every_paper_config_has_autoattack_and_pgd1000_and_its_smoke_variant_caps_them(name):
    """Every config on linf_suite evaluates with AutoAttack and PGD-1000. The smoke variant of a paper's
    own config (ATGAN) keeps the whole suite, capped; the baselines' MNIST smoke variants replace it with
    one cheap attack (test_baselines runs every one of them), and whatever they keep is capped too."""
    full, smoke = load_config(name), load_config(name, "smoke")
    keeps_suite = any(s.attack == "autoattack" for s in smoke.eval.attacks.values())
    assert keeps_suite or not name.startswith("atgan_"), name
    for c in (full, smoke) if keeps_suite else (full,):
        aa = [s for s in c.eval.attacks.values() if s.attack == "autoattack" and s.get("adaptive", True)]
        many = [s for s in c.eval.attacks.values() if s.attack == "pgd" and s.num_steps >= 1000 or
                (c is smoke and s.attack == "pgd" and s.num_steps <= 3)]
        assert len(aa) == 1 and many, name
        for curve in c.eval.curves.values():  # a stepping attack scales its step with each radius
            steps = "step_size" in inspect.signature(ATTACKS[curve.attack]).parameters
            assert "step_size" not in curve and ("rel_step_size" in curve or not steps), curve
    if keeps_suite:
        [aa] = [s for s in smoke.eval.attacks.values() if s.attack == "autoattack" and s.get("adaptive", True)]
        assert aa.attacks == list(SMOKE_AUTOATTACK) and aa.num_steps == 3 and aa.num_queries == 10
    assert all(s.get("num_steps", 0) <= 3 for s in smoke.eval.attacks.values())
    assert smoke.eval.diagnostics.many_steps <= 6 and smoke.eval.diagnostics.num_examples <= 32
