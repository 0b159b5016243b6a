"""flax.linen models: classifiers of the papers, shared layers, and ``make(config)``.

    from robustjax import models
    model = models.make({"name": "lenet", "activation": "brelu", "brelu_t": 1.0}, num_classes=10)
    logits = model.apply(model.init(jax.random.key(0), x), x)      # x: float32 NHWC in [0, 1]

``MODELS`` is an explicit dict (no registry filled by import side effects); the conventions every
model follows are in :mod:`robustjax.models.classifiers`. Generators and discriminators live in
``generators.py`` / ``discriminators.py`` and build on :mod:`robustjax.models.layers`.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Any, Callable, Mapping

import flax.linen as nn

from robustjax.models import layers
from robustjax.models.classifiers import (
    ALLCNN_VARIANTS,
    MLP,
    AllCNN,
    Classifier,
    ConvPoolCNN,
    CWMnist,
    DenseNet40,
    LeNet,
    PGNConvPoolCNN,
    ResNet18,
    SmallCNN,
    ZantedeschiCNN,
    ZantedeschiResNet,
    first_conv_activations,
    param_count,
    scale_width,
)

MODELS: dict[str, type[Classifier]] = {
    "cw_mnist": CWMnist,
    "lenet": LeNet,
    "allcnn": AllCNN,
    "convpool_cnn": ConvPoolCNN,
    "pgn_convpool_cnn": PGNConvPoolCNN,
    "zantedeschi_cnn": ZantedeschiCNN,
    "zantedeschi_resnet": ZantedeschiResNet,
    "resnet18": ResNet18,
    "densenet40": DenseNet40,
    "mlp": MLP,
    "small_cnn": SmallCNN,
}


# ----------------------------------------------------------------------------------------------
# Config validation: one checker per field name; each returns the cleaned value or raises.


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _positive_float(field: str) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if not _number(v) or not v > 0:
            raise ValueError(f"config.model.{field}: must be a number > 0; got {v!r}")
        return float(v)

    return check


def _rate(field: str) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if not _number(v) or not 0.0 <= v < 1.0:
            raise ValueError(f"config.model.{field}: must be a dropout rate in [0, 1); got {v!r}")
        return float(v)

    return check


def _positive_int(field: str) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
            raise ValueError(f"config.model.{field}: must be an int >= 1; got {v!r}")
        return int(v)

    return check


def _choice(field: str, options: tuple) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v not in options:
            raise ValueError(f"config.model.{field}: must be one of {options}; got {v!r}")
        return v

    return check


def _bool(field: str) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"config.model.{field}: must be True or False; got {v!r}")
        return v

    return check


def _hidden(v: Any) -> tuple[int, ...]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise ValueError(f"config.model.hidden: must be a list of layer sizes, e.g. [64, 64]; got {v!r}")
    sizes = tuple(v)
    ok = all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in sizes)
    if not sizes or not ok:
        raise ValueError(f"config.model.hidden: must be a non-empty list of ints >= 1, e.g. [64, 64]; got {v!r}")
    return tuple(int(n) for n in sizes)


def _channel_stats(field: str) -> Callable[[Any], tuple[float, ...] | None]:
    def check(v: Any) -> tuple[float, ...] | None:
        if v is None:
            return None
        if _number(v):
            v = (v,)
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise ValueError(f"config.model.{field}: must be None or a list of per-channel numbers; got {v!r}")
        vals = tuple(v)
        if not vals or not all(_number(a) for a in vals):
            raise ValueError(f"config.model.{field}: must be None or a non-empty list of numbers; got {v!r}")
        if field == "std" and not all(a > 0 for a in vals):
            raise ValueError(f"config.model.std: values must be > 0; got {v!r}")
        return tuple(float(a) for a in vals)

    return check


def _depth(v: Any) -> int:
    if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 7 or (v - 4) % 3:
        raise ValueError(f"config.model.depth: must be an int 3n + 4 with n >= 1 (40 for DenseNet-40); got {v!r}")
    return int(v)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "width": _positive_float("width"),
    "activation": _choice("activation", layers.ACTIVATIONS),
    "brelu_t": _positive_float("brelu_t"),
    "mean": _channel_stats("mean"),
    "std": _channel_stats("std"),
    "dropout": _rate("dropout"),
    "input_dropout": _rate("input_dropout"),
    "downsample": _choice("downsample", ("max_pool", "conv")),
    "variant": _choice("variant", ALLCNN_VARIANTS),
    "pool_size": _choice("pool_size", (2, 3)),
    "batch_norm": _bool("batch_norm"),
    "preact": _bool("preact"),
    "growth_rate": _positive_int("growth_rate"),
    "depth": _depth,
    "hidden": _hidden,
}


def model_fields(name: str) -> tuple[str, ...]:
    """The config fields model ``name`` accepts besides ``name`` (e.g. ``width``, ``dropout``)."""
    cls = _lookup(name)
    return tuple(
        f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name", "num_classes")
    )


def _lookup(name: Any) -> type[Classifier]:
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), list(MODELS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"config.model.name: unknown model name {name!r}{hint}; valid names: {sorted(MODELS)}")
    return MODELS[name]


def make(model_cfg: Mapping[str, Any], num_classes: int) -> nn.Module:
    """The classifier a model config names.

    Args:
      model_cfg: a ``ConfigDict`` or mapping with ``name`` (a key of ``MODELS``) and any of that
        model's fields (see :func:`model_fields`): ``width``, ``activation``, ``brelu_t``, ``mean``,
        ``std`` for all; ``dropout`` (cw_mnist, allcnn, convpool_cnn, densenet40), ``input_dropout``
        (allcnn, convpool_cnn), ``downsample`` and ``variant`` (allcnn), ``pool_size`` (convpool_cnn),
        ``batch_norm`` (zantedeschi_resnet), ``preact`` (resnet18), ``growth_rate`` and ``depth``
        (densenet40), ``hidden`` (mlp). Fields left out take the module's defaults; a field set to
        None (other than mean/std) is treated as left out.
      num_classes: number of logits (>= 0; 0 returns penultimate features).

    Returns:
      An unbound flax module: ``model.init(key, x)``, ``model.apply(variables, x, train=...)``.

    Raises:
      ValueError: on an unknown name, a field the model does not have, or an invalid value.
    """
    cfg = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    if "name" not in cfg:
        raise ValueError(f"config.model.name: missing; a model config needs a 'name'; valid names: {sorted(MODELS)}")
    name = cfg.pop("name")
    cls = _lookup(name)
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0 (0 = return features); got {num_classes!r}")
    if "num_classes" in cfg:
        given = cfg.pop("num_classes")
        if given is not None and given != num_classes:
            raise ValueError(
                f"config.model.num_classes={given!r} disagrees with the dataset's {num_classes}; drop it from the "
                "model config (the number of classes comes from the data)"
            )
    valid = model_fields(name)
    unknown = sorted(k for k in cfg if k not in valid)
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(valid), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"config.model.{unknown[0]}: model {name!r} has no field(s) {unknown}{hint}; "
                         f"its fields are {list(valid)}")
    kwargs = {}
    for key, value in cfg.items():
        if value is None and key not in ("mean", "std"):
            continue
        kwargs[key] = _CHECKS[key](value) if key in _CHECKS else value
    return cls(num_classes=int(num_classes), **kwargs)


def check_config(model_cfg: Mapping[str, Any]) -> None:
    """Checks a model config (name, fields, values) without building parameters; raises ValueError
    naming the field (``config.model.<field>: ...``). The number of classes comes later, from the data."""
    make(model_cfg, 10)


__all__ = [
    "MODELS",
    "check_config",
    "AllCNN",
    "CWMnist",
    "Classifier",
    "ConvPoolCNN",
    "DenseNet40",
    "LeNet",
    "MLP",
    "PGNConvPoolCNN",
    "ResNet18",
    "SmallCNN",
    "ZantedeschiCNN",
    "ZantedeschiResNet",
    "first_conv_activations",
    "layers",
    "make",
    "model_fields",
    "param_count",
    "scale_width",
]
