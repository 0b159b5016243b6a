"""Zantedeschi et al.'s comparison as configured (configs/gda_brelu_{mnist,cifar10}.py): the paper's settings
per dataset and defense, every ``:defense=`` x ``:model=`` variant builds and traces a training step, and
(slow) the smoke variant on the ResNet with bounded ReLUs trains and runs the whole evaluation.

    python -m pytest -q -p no:xdist tests/test_gda_brelu.py -m "not slow"
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import experiment
from tests.test_config import load_config

# dataset -> (GDA sigma, feature-squeezing bits, FGSM-AT eps, largest curve eps), the paper's Sec. 4.1 / Figs. 3-5
PAPER = {"mnist": (0.3, 1, 0.3, 1.0), "cifar10": (0.05, 3, 0.05, 0.3)}
DEFENSE_NAMES = {"none": "standard", "gda": "gda", "feature_squeezing": "feature_squeezing",
                 "label_smoothing": "label_smoothing", "fgsm_at": "fgsm_at", "vat": "vat"}


def _load(dataset, arg=None):
    return load_config(f"gda_brelu_{dataset}.py", arg)


@pytest.mark.parametrize("dataset", sorted(PAPER))
def test_configs_hold_the_papers_settings(dataset):
    sigma, bits, at_eps, curve_max = PAPER[dataset]
    c = _load(dataset)
    assert c.data.name == dataset and c.model.name == "zantedeschi_cnn" and c.model.activation == "relu"
    assert (c.defense.name, c.defense.copies, c.defense.sigma) == ("gda", 10, sigma)
    b = _load(dataset, "brelu,model=resnet")
    assert (b.model.name, b.model.activation, b.model.brelu_t) == ("zantedeschi_resnet", "brelu", 1.0)
    assert _load(dataset, "defense=feature_squeezing").defense.bit_depth == bits
    assert _load(dataset, "defense=fgsm_at").defense.attack.to_dict() == {"attack": "fgsm", "eps": at_eps}
    assert _load(dataset, "defense=label_smoothing").defense.true_label_weight == 0.9
    assert _load(dataset, "defense=vat").defense.eps == 2.1
    a = c.eval.attacks
    assert a.deepfool100.num_steps == 100 and a.cw_l2_k2p3.confidence == 2.3
    gauss = [s for s in a.values() if s.attack == "rand_fgsm" and s.get("random_init") == "gaussian"]
    sign = [s for s in a.values() if s.attack == "rand_fgsm" and s.get("random_init") == "sign"]
    assert gauss and sign and all(s.alpha == 0.05 for s in gauss) and all("alpha" not in s for s in sign)
    assert {s.attack for s in a.values()} >= {"fgsm", "pgd", "autoattack", "deepfool", "cw_l2"}
    assert max(c.eval.curves.fgsm.eps_grid) == curve_max and c.eval.curves.rfgsm_gauss.random_init == "gaussian"
    assert {"empirical_robustness", "train_distance", "loss_sensitivity"} <= set(c.eval.metrics)
    transfers = [m for m in c.eval.metrics.values() if m.metric == "transfer"]
    assert transfers and all(m.model.name == "zantedeschi_resnet" for m in transfers)
    j = _load(dataset, "jsma=1").eval.attacks.jsma
    assert (j.theta, j.gamma) == (0.1, 1.0)
    assert (j.saliency, j.reuse_features) == ("target_probability", True)   # ART 0.x's JSMA, the paper's library


@pytest.mark.parametrize("arg, message", [
    ("defense=gdaa", r"config argument defense='gdaa': valid values are \['feature_squeezing', 'fgsm_at', 'gda'"),
    ("model=resnet18", r"config argument model='resnet18': valid values are \['cnn', 'resnet'\]"),
])
def test_a_bad_argument_is_named_with_the_valid_values(arg, message):
    with pytest.raises(ValueError, match=message):
        _load("mnist", arg)


@pytest.mark.parametrize("dataset", sorted(PAPER))
@pytest.mark.parametrize("defense", sorted(DEFENSE_NAMES))
@pytest.mark.parametrize("model", ["cnn", "resnet,brelu"])
def test_every_variant_builds_and_traces_a_training_step(dataset, defense, model):
    """Each compared defense on each network: the smoke config builds and the training step traces
    (``jax.eval_shape``: shapes and dtypes checked, nothing compiled)."""
    c = _load(dataset, f"defense={defense},model={model},smoke")
    assert c.defense.name == DEFENSE_NAMES[defense]
    built, train_ds, _, info, _ = experiment.build(c)
    batch = {k: jnp.asarray(v) for k, v in train_ds.get(np.arange(c.data.batch_size)).items()}
    state = jax.eval_shape(built.init, jax.random.PRNGKey(0), batch)
    new, metrics = jax.eval_shape(built.phases[0].train_step, state, batch, jax.random.PRNGKey(1))
    assert jax.tree.structure(new) == jax.tree.structure(state) and metrics["loss"].shape == ()
    logits = jax.eval_shape(lambda st, x: built.classifier(st)(x), state, batch["image"])
    assert logits.shape == (len(batch["label"]), info.num_classes)


@pytest.mark.slow
def test_smoke_resnet_brelu_runs_the_whole_evaluation(tmp_path):
    """GDA + BReLU on the paper's ResNet, smoke size: every attack, curve and metric of the paper's
    evaluation runs and lands in results.json (about a minute and a half on two CPU cores)."""
    c = _load("mnist", "model=resnet,brelu,jsma=0,smoke")
    c.train.progress = c.eval.progress = False
    # conftest turns XLA's optimisations off (fast compiles for small tests); this run executes dozens of
    # attack loops, which then run many times slower (over 20 minutes instead of about one).
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        results = experiment.run(c, str(tmp_path))
    finally:
        jax.config.update("jax_disable_most_optimizations", before)
    assert set(results["attacks"]) == set(c.eval.attacks)
    for label, r in results["attacks"].items():
        assert r["budget_violations"] == 0 and r["robust_accuracy"] <= results["clean_accuracy"] + 1e-9, label
    for label in c.eval.curves:
        points = results["curves"][label]["points"]
        assert points[0]["eps"] == 0.0 and points[0]["robust_accuracy"] == pytest.approx(results["clean_accuracy"])
    assert set(results["metrics"]) == set(c.eval.metrics)
    for label, m in results["metrics"].items():
        assert m["value"] is None or np.isfinite(m["value"]), label
    assert results["metrics"]["loss_sensitivity"]["value"] > 0


@pytest.mark.slow
def test_gda_brelu_cnn_learns_real_mnist(mnist_npz, tmp_path):
    """The paper's CNN with every activation bounded at t = 1 and Gaussian copies (sigma 0.3) still learns
    MNIST: 150 steps on 3,000 real images reach over 85% on 300 test images (the bound does not choke it)."""
    c = _load("mnist", "brelu,smoke")
    c.data.source, c.data.path, c.data.train_size, c.data.test_size = "npz", mnist_npz, 3000, 300
    c.data.batch_size, c.train.steps, c.model.width, c.defense.copies = 64, 150, 0.5, 2
    c.eval.attacks = {"fgsm_0p1": {"attack": "fgsm", "eps": 0.1}}
    c.eval.curves, c.eval.metrics, c.eval.figures = {}, {}, []
    c.eval.diagnostics.enabled = False
    c.eval.num_examples = c.eval.batch_size = 300
    c.train.progress = c.eval.progress = False
    assert (c.model.name, c.model.activation, c.defense.sigma) == ("zantedeschi_cnn", "brelu", 0.3)
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        results = experiment.run(c, str(tmp_path))
    finally:
        jax.config.update("jax_disable_most_optimizations", before)
    assert results["clean_accuracy"] > 0.85, results["clean_accuracy"]
    assert results["attacks"]["fgsm_0p1"]["robust_accuracy"] <= results["clean_accuracy"]


def _bench():
    from benchmarks import gda_brelu_mnist

    return gda_brelu_mnist


def test_tables_script_gives_every_row_the_same_budget_and_the_resnet_as_black_box_source(tmp_path):
    """benchmarks/gda_brelu_mnist.py: every row validates with its budget; the defense rows craft their
    transfers on the undefended ResNet row with the same capped C&W as their white-box one; the other
    architecture rows keep only Table 1's FGSM."""
    from robustjax.config import validate

    bench = _bench()

    class A:  # the parsed arguments config_arg() and overrides() read
        npz, paper, train, epochs, eval, cw_search, cw_steps, no_jsma = "x.npz", False, 1000, 2.0, 64, 3, 20, False
        out, dataset = str(tmp_path), "mnist"

    source = tmp_path / bench.SOURCE   # what validation asks of a transfer source: a run directory
    (source / "checkpoints").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    kinds = {}
    for name, (_, kind) in bench.ROWS.items():
        c = bench.load_config(bench.CONFIG, bench.config_arg(name, A))
        if kind == "arch":
            bench.light_eval(c)
        bench.overrides(A, c)
        validate(c)
        kinds[name] = kind
        assert (c.data.train_size, c.train.epochs, c.eval.num_examples, c.data.path) == (1000, 2.0, 64, "x.npz"), name
        if kind == "arch":
            assert set(c.eval.attacks) == {"fgsm_0p1"} and set(c.eval.curves) == {"fgsm"} and not c.eval.metrics
            continue
        assert {"aa_0p3", "pgd1000_0p3", "cw_l2_k2p3", "deepfool100", "jsma"} <= set(c.eval.attacks), name
        assert (c.eval.attacks.cw_l2_k2p3.binary_search_steps, c.eval.attacks.cw_l2_k2p3.num_steps) == (3, 20)
        transfers = {k: m for k, m in c.eval.metrics.items() if m.metric == "transfer"}
        assert len(transfers) == 5 and all(m.source == str(source) for m in transfers.values()), name
        assert transfers["transfer_cw_l2_k2p3"].attack.num_steps == 20
    assert kinds[bench.SOURCE] == "arch" and list(bench.ROWS)[0] == bench.SOURCE   # the source runs first
    assert sum(k == "full" for k in kinds.values()) == 7
    A.no_jsma = True
    assert "jsma" not in bench.load_config(bench.CONFIG, bench.config_arg("gda_brelu", A)).eval.attacks


def test_tables_script_on_cifar10_blackbox_keeps_table5s_transfers_and_autoattack(tmp_path):
    """gda_brelu_mnist.py --dataset cifar10 --blackbox: each defense row validates on the CIFAR-10 config with
    only the paper's Table 5 transfers (crafted on the ResNet row) and AutoAttack at 0.05, chunked; the
    tables name Table 5 and the CIFAR-10 radii."""
    from robustjax.config import validate

    bench = _bench()
    ds = bench.DATASETS["cifar10"]

    class A:
        npz, paper, train, epochs, eval, cw_search, cw_steps, no_jsma = "x.npz", False, 1000, 2.0, 64, 3, 20, False
        out, dataset = str(tmp_path), "cifar10"

    source = tmp_path / bench.SOURCE
    (source / "checkpoints").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    for name in bench.DEFENSE_ROWS:
        c = bench.load_config(ds["config"], bench.config_arg(name, A))
        bench.blackbox_eval(c, ds["strong"])
        bench.overrides(A, c)
        validate(c)
        assert c.data.name == "cifar10" and (c.data.train_size, c.eval.num_examples) == (1000, 64), name
        assert list(c.eval.attacks) == ["aa_0p05"] and c.eval.attacks.aa_0p05.chunk_size == 32, name
        assert c.eval.attacks.aa_0p05.eps == 0.05 and not c.eval.curves and not c.eval.diagnostics.enabled
        assert {m.metric for m in c.eval.metrics.values()} == {"transfer"}, name
        assert len(c.eval.metrics) == 4 and all(m.source == str(source) for m in c.eval.metrics.values()), name
        assert c.eval.metrics.transfer_cw_l2_k2p3.attack.num_steps == 20
    cnn = {"clean_accuracy": 0.4, "attacks": {"aa_0p05": {"robust_accuracy": 0.01}},
           "metrics": {"transfer_fgsm_0p1": {"value": 0.3}}}
    md, _ = bench.tables({"cnn": cnn}, None, None, None, "cifar10")
    assert "**Table 5.**" in md and "| cnn | 30.00 |" in md
    strong = next(line for line in md.splitlines() if line.startswith("| cnn | 0.400 |"))
    assert strong.startswith("| cnn | 0.400 | - | - | - | - | - | 0.010 | - | - |")   # AutoAttack 0.05, 6th


def test_tables_script_reads_each_table_from_the_results():
    bench = _bench()
    cnn = {"clean_accuracy": 0.99, "diagnostics": {"warnings": ["w1", "w2"]},
           "attacks": {"aa_0p3": {"robust_accuracy": 0.0}, "pgd1000_0p3": {"robust_accuracy": 0.02},
                       "cw_l2_k2p3": {"robust_accuracy": 0.1, "median_l2": 1.234, "success_rate": 0.9},
                       "deepfool100": {"robust_accuracy": 0.0, "median_l2": 1.5}},
           "metrics": {"empirical_robustness": {"value": 0.2, "flipped": 0.8},
                       "train_distance": {"value": 5.0, "clean_value": 6.0}, "loss_sensitivity": {"value": 0.05},
                       "transfer_fgsm_0p1": {"value": 0.9}, "transfer_deepfool100": {"value": 0.95}}}
    arch = {"clean_accuracy": 0.98, "attacks": {"fgsm_0p1": {"robust_accuracy": 0.6}}}
    matrix = {"names": ["cnn", "resnet_relu"], "accuracy_on_adversarial": [[0.5, 0.9], [0.8, 0.4]]}
    md, data = bench.tables({"resnet_relu": arch, "cnn": cnn}, matrix, None)
    assert "| cnn | 50.00 | 90.00 |" in md and "| resnet_relu | 80.00 | 40.00 |" in md          # Table 1, in %
    assert "| cnn | 99.00 | 20.00 | 0.200 | 5.00 (6.00) | 0.0500 |" in md                      # Tables 2-3
    assert "| defense | fgsm_0p1 | deepfool100 |" in md and "| cnn | 90.00 | 95.00 |" in md   # Table 4
    strong = next(line for line in md.splitlines() if line.startswith("| cnn | 0.990 |"))
    assert strong.endswith("| 0.020 | 0.000 | - | - | 1.50 | 1.23 | 0.900 | 2 |")          # PGD-1000, AA, ..., C&W
    assert "| resnet_relu |" not in md.split("**Table 2**")[1]                               # arch rows: Table 1 only
    assert set(data["rows"]) == {"cnn", "resnet_relu"} and data["table1"] is matrix
    # --jsma_matrix (rows evaluated without JSMA): row 0 crafted on the source, the diagonal white-box
    jsma = {"names": ["resnet_relu", "cnn"], "accuracy_on_adversarial": [[0.1, 0.7], [0.6, 0.2]],
            "robust_accuracy": [[0.1, 0.7], [0.6, 0.05]]}
    md, data = bench.tables({"resnet_relu": arch, "cnn": cnn}, matrix, None, jsma)
    assert "| defense | fgsm_0p1 | deepfool100 | jsma |" in md and "| cnn | 90.00 | 95.00 | 70.00 |" in md
    strong = next(line for line in md.splitlines() if line.startswith("| cnn | 0.990 |"))
    assert strong.endswith("| 0.000 | - | 0.050 | 1.50 | 1.23 | 0.900 | 2 |") and data["jsma_matrix"] is jsma


def test_saved_jsma_matrix_is_reused_only_for_the_same_runs_attack_and_budget():
    """gda_brelu_mnist.py --jsma_matrix: a re-run with another --eval or JSMA setting computes the matrix again
    instead of putting a column measured on other images or another attack beside the new ones."""
    from benchmarks import gda_brelu_mnist as bench
    from robustjax import attacks

    spec = {"attack": "jsma", "theta": 0.1, "gamma": 1.0, "saliency": "target_probability", "reuse_features": True}
    saved = {"runs": ["a", "b"], "attack": attacks.resolve(dict(spec), where="t").spec, "num_examples": 100}
    assert bench.same_matrix(saved, ["a", "b"], spec, 100)
    assert not bench.same_matrix(saved, ["a", "c"], spec, 100)
    assert not bench.same_matrix(saved, ["a", "b"], spec, 200)
    assert not bench.same_matrix(saved, ["a", "b"], {**spec, "saliency": "pairs"}, 100)
    assert not bench.same_matrix(saved, ["a", "b"], spec, 0)              # 0: all 10,000 test images
    assert bench.same_matrix({**saved, "num_examples": 10000}, ["a", "b"], spec, 0)
    assert not bench.same_matrix({}, ["a", "b"], spec, 100)
