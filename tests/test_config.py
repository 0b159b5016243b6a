"""Config validation fails before training, naming the field; config files and their args load."""

import json
import os

import pytest

from robustjax.config import base_config, load_config_file, parse_arg, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".py"))


def load_config(name, arg=None):
    return load_config_file(os.path.join(ROOT, "configs", name), arg)


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", [None, "smoke"])
def test_every_config_file_validates(name, arg):
    validate(load_config(name, arg))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_smoke_variant_is_small_offline_and_marked(name):
    c = load_config(name, "smoke")
    assert c.smoke and not load_config(name).smoke
    assert c.train.steps <= 10 and c.data.train_size <= 256 and c.eval.num_examples <= 64
    assert c.data.source in ("synthetic", "digits", "toy2d"), "a smoke run must not need a download or a file"


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: setattr(c.data, "batch_size", 0), "data.batch_size"),
        (lambda c: setattr(c.data, "source", "ftp"), "data.source"),
        (lambda c: setattr(c.data, "train_size", -5), "data.train_size"),
        (lambda c: setattr(c.train, "epochs", -1.0), "train.epochs"),
        (lambda c: setattr(c.train.optimizer, "name", "adagrad"), "train.optimizer.name"),
        (lambda c: setattr(c.train.optimizer, "learning_rate", -0.1), "train.optimizer.learning_rate"),
        (lambda c: setattr(c.train, "ema_decay", 1.5), "train.ema_decay"),
        (lambda c: setattr(c.model, "width", 0.0), "model.width"),
        (lambda c: c.defense.update({"eps": -0.3}), "config.defense.eps: unknown field"),
        (lambda c: c.eval.attacks.update({"p": {"attack": "pgd", "eps": -1.0}}), "eval.attacks.p.eps"),
        (lambda c: c.eval.attacks.update({"p": {"eps": 0.1}}), "eval.attacks.p.attack"),
        (lambda c: c.eval.curves.update({"c": {"attack": "pgd", "eps_grid": [0.1, -0.2]}}),
         r"eval.curves.c.eps_grid\[1\]"),
        (lambda c: c.data.update({"batchsize": 3}), "data.batchsize"),
        (lambda c: c.update({"sed": 1}), "config.sed"),
        (lambda c: setattr(c.data, "source", "npz"), "data.path"),
        (lambda c: setattr(c.eval, "preset", "quik"), r"eval.preset: 'quik' is not one of.*did you mean 'quick'"),
    ],
)
def test_bad_values_name_the_field(mutate, field):
    c = base_config()
    mutate(c)
    with pytest.raises(ValueError, match=field):
        validate(c)


def test_unknown_field_lists_valid_ones():
    c = base_config()
    c.train.update({"epoch": 3})
    with pytest.raises(ValueError, match=r"unknown field.*'epochs'"):
        validate(c)


def test_quick_eval_preset_caps_loop_counts_of_every_spec_and_records_them():
    from robustjax.config import apply_eval_preset

    c = load_config("gda_brelu_mnist.py")
    full, record = apply_eval_preset(c.eval)
    assert record is None and full is c.eval                       # "full": the config as it is
    c.eval.preset = "quick"
    before = c.eval.to_dict()
    e, record = apply_eval_preset(c.eval)
    assert c.eval.to_dict() == before                              # the config is not changed
    ch = record["changed"]
    assert record["preset"] == "quick"
    assert ch["attacks.pgd1000_0p3.num_steps"] == [1000, 200] and e.attacks.pgd1000_0p3.num_steps == 200
    assert ch["attacks.aa_0p3.num_queries"] == [5000, 1000] and ch["attacks.aa_0p3.num_targets"] == [9, 3]
    assert ch["attacks.aa_0p3.chunk_size"] == [None, 32]
    assert ch["attacks.cw_l2_k2p3.num_steps"] == [1000, 200] and ch["attacks.cw_l2_k2p3.binary_search_steps"] == [9, 5]
    assert ch["metrics.transfer_cw_l2_k2p3.attack.num_steps"] == [1000, 200]      # a metric's attack spec
    assert "attacks.pgd40_0p3.num_steps" not in ch and e.attacks.pgd40_0p3.num_steps == 40   # under the cap
    assert e.attacks.deepfool100.num_steps == 100 and e.num_examples == c.eval.num_examples
    again, record_again = apply_eval_preset(e)                     # applied twice (the suite gets the copy):
    assert record_again == record and again.to_dict() == e.to_dict()   # nothing capped again, same record
    validate_copy = c.copy_and_resolve_references()
    capped = e.to_dict()
    assert json.loads(capped.pop("preset_record")) == record      # the copy carries its record
    validate_copy.eval = capped
    validate(validate_copy)
    c.eval.preset = "quik"                                          # a typo must not run a weaker evaluation
    with pytest.raises(ValueError, match=r"eval.preset: 'quik' is not one of.*did you mean 'quick'"):
        apply_eval_preset(c.eval)


def test_parse_arg():
    assert parse_arg("smoke,eps_t=8", {"smoke": False, "eps_t": 4.0}) == {"smoke": True, "eps_t": 8.0}
    assert parse_arg(None, {"smoke": False}) == {"smoke": False}
    with pytest.raises(ValueError, match=r"unknown config argument 'smok'.*\['smoke'\]"):
        parse_arg("smok", {"smoke": False})
    with pytest.raises(ValueError, match="expected float"):
        parse_arg("eps_t=big", {"eps_t": 4.0})


def test_config_files_load_by_path_and_relative_to_another_file(tmp_path):
    from robustjax.config import config_module

    c = load_config_file(os.path.join(ROOT, "configs", "atgan_mnist.py"), "eps_t=0.2")
    assert c.defense.attack.eps == 0.2
    # A config building on another names it relative to its own file, as configs/fgm_at_cifar10.py does.
    module = config_module("pgn_baseline_cifar10.py", relative_to=os.path.join(ROOT, "configs", "any.py"))
    assert module.get_config("method=fgm_at").defense.name == "fgm_at"
    with pytest.raises(FileNotFoundError, match="no config file"):
        config_module(str(tmp_path / "nope.py"))
