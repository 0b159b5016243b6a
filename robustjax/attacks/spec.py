"""Attack specs: plain dicts (from a config) resolved, and checked, into callable attacks.

    from robustjax import attacks
    atk = attacks.resolve({"attack": "pgd", "eps": 0.3, "step_size": 0.01, "num_steps": 40},
                          where="config.eval.attacks.pgd40")      # checked now: no model, no data
    atk.name, atk.norm, atk.eps, atk.budget                      # 'pgd', 'linf', 0.3, True
    x_adv = atk(logits_fn, x, y, key, bounds=(0.0, 1.0))          # eps from the spec
    x_adv = atk(logits_fn, x, y, key, eps=eps, bounds=(0.0, 1.0)) # eps overridden (may be traced)

This module owns the table of attacks a spec may name (``ATTACKS``, split into ``BUDGET_ATTACKS`` and
``MINIMAL_ATTACKS``); the evaluation suite and the defenses' train-time attacks resolve their specs here.

A spec is ``{"attack": name, **hyperparameters}``: the keyword-only parameters of that attack (read from
its signature), except ``bounds`` (the dataset's pixel range, passed at call time) and the PRNG key; plus
``rel_step_size``, for attacks with a ``step_size``: the step is then ``rel_step_size * eps`` at call time,
so an eps grid or an eps curriculum scales it. Values are checked by one table of per-keyword validators
(``VALIDATORS``), the norms by ``NORMS_OF``; every problem is a ValueError whose message starts with the
field path (``where`` + key) and names the valid choices.

A budget attack (one with an eps ball) without ``eps`` is refused by default: run at eps 0 it would report
clean accuracy as robust accuracy. Callers that supply eps at call time (robustness curves over an eps
grid) resolve with ``require_eps=False``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import numbers
import types
from typing import Any, Callable, Mapping

import numpy as np

# (``from module import name``: the package's attributes apgd, square, ... are the functions, not modules.)
from robustjax.attacks import core
from robustjax.attacks.apgd import LOSS_CHOICES as APGD_LOSSES
from robustjax.attacks.apgd import apgd
from robustjax.attacks.autoattack import COMPONENTS as AUTOATTACK_COMPONENTS
from robustjax.attacks.autoattack import VERSIONS as AUTOATTACK_VERSIONS
from robustjax.attacks.autoattack import autoattack
from robustjax.attacks.fab import fab
from robustjax.attacks.gradient import RANDOM_INITS, bim, fgm, fgsm, mim, pgd, rand_fgsm
from robustjax.attacks.jsma import SALIENCY_CHOICES as JSMA_SALIENCY
from robustjax.attacks.jsma import TARGET_CHOICES as JSMA_TARGETS
from robustjax.attacks.jsma import jsma
from robustjax.attacks.minimal import cw_l2, deepfool
from robustjax.attacks.square import LOSS_CHOICES as SQUARE_LOSSES
from robustjax.attacks.square import square

# Attacks a spec may name. Budget attacks search an eps ball (they need eps); minimal-perturbation attacks
# look for the smallest perturbation that fools the model (fab takes an optional eps: its acceptance radius).
BUDGET_ATTACKS = ("fgsm", "fgm", "rand_fgsm", "bim", "pgd", "mim", "apgd", "square", "autoattack")
MINIMAL_ATTACKS = ("deepfool", "cw_l2", "jsma", "fab")
ATTACKS: Mapping[str, Callable] = types.MappingProxyType({
    "fgsm": fgsm, "fgm": fgm, "rand_fgsm": rand_fgsm, "bim": bim, "pgd": pgd, "mim": mim, "apgd": apgd,
    "square": square, "autoattack": autoattack, "deepfool": deepfool, "cw_l2": cw_l2, "jsma": jsma, "fab": fab,
})

# The norms each attack with a ``norm`` keyword accepts (its default is read from its signature;
# tests/test_attacks_spec.py checks this table against the attacks themselves), and the norm of the others.
NORMS_OF: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "fgm": ("linf", "l2", "l1"), "pgd": ("linf", "l2"), "mim": ("linf", "l2"), "apgd": ("linf", "l2"),
    "square": ("linf", "l2"), "autoattack": ("linf", "l2"), "fab": ("linf", "l2"), "deepfool": ("l2", "linf"),
})
FIXED_NORM: Mapping[str, str] = types.MappingProxyType(
    {"fgsm": "linf", "rand_fgsm": "linf", "bim": "linf", "cw_l2": "l2", "jsma": "l0"})
# Losses by name (a Python caller may also pass a function where the attack accepts one).
LOSSES_OF: Mapping[str, tuple[tuple[str, ...], bool]] = types.MappingProxyType({
    **{name: (tuple(sorted(core.LOSSES)), True) for name in ("fgm", "fgsm", "rand_fgsm", "bim", "pgd", "mim")},
    "apgd": (APGD_LOSSES, True),
    "square": (SQUARE_LOSSES, False),
})
# eps must be finite for these (their step or search scales with eps).
FINITE_EPS = ("apgd", "square", "autoattack")

# Keys a spec must not hold, and why.
NOT_SPEC_KEYS = {
    "bounds": "not a spec key: the pixel range comes from the dataset; pass bounds= when calling the attack",
    "key": "not a spec key: the PRNG key is an argument of the call, atk(logits_fn, x, y, key)",
}


# --------------------------------------------------------------------------------------------------------
# Per-keyword validators: (value, attack name) -> problem (a string) or None
# --------------------------------------------------------------------------------------------------------


def _as_real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if np.ndim(value) == 0 and core.is_concrete(value) and hasattr(value, "dtype"):
        if np.issubdtype(np.asarray(value).dtype, np.floating) or np.issubdtype(np.asarray(value).dtype,
                                                                                 np.integer):
            return float(np.asarray(value))
    return None


def _number(low: float = 0.0, *, high: float | None = None, low_open: bool = False, allow_inf: bool = False):
    if high is not None:
        rng = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    else:
        rng = f"> {low:g}" if low_open else f">= {low:g}"
    expect = f"a number {rng} (inf allowed)" if allow_inf else f"a finite number {rng}"

    def check(value, name):
        v = _as_real(value)
        if v is None or math.isnan(v) or (math.isinf(v) and not allow_inf) or v < low or (low_open and v == low) \
                or (high is not None and v > high):
            return f"must be {expect}, got {value!r}"
        return None

    return check


def _eps(value, name):
    if name in FINITE_EPS:
        problem = _number()(value, name)
        return None if problem is None else problem + f" ({name} needs a finite eps)"
    return _number(allow_inf=True)(value, name)


def _count(minimum: int = 1, allow_none: bool = False):
    def check(value, name):
        return core.count_problem(value, minimum, allow_none)

    return check


def _flag(value, name):
    if isinstance(value, (bool, np.bool_)):
        return None
    return f"must be True or False, got {value!r}"


def _norm(value, name):
    valid = NORMS_OF.get(name, ())
    if value not in valid:
        return f"{value!r} is not a norm {name} supports; valid: {list(valid)}"
    return None


def _loss(value, name):
    names, callables = LOSSES_OF[name]
    if callables and callable(value):
        return None
    if value not in names:
        extra = " (or a function (logits [B, K], labels [B]) -> [B])" if callables else ""
        return f"{value!r} is not a loss {name} supports; valid: {list(names)}{extra}{_close(value, names)}"
    return None


def _choice(choices):
    def check(value, name):
        if value not in choices:
            return f"{value!r} is not one of {list(choices)}{_close(value, choices)}"
        return None

    return check


def _components(value, name):
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return f"must be a list of component names from {list(AUTOATTACK_COMPONENTS)}, got {value!r}"
    if not value:
        return "must name at least one component"
    for item in value:
        if item not in AUTOATTACK_COMPONENTS:
            return (f"{item!r} is not an AutoAttack component; valid: {list(AUTOATTACK_COMPONENTS)}"
                    f"{_close(item, AUTOATTACK_COMPONENTS)}")
    return None


def _theta(value, name):
    v = _as_real(value)
    if v is None or v == 0 or not math.isfinite(v):
        return f"must be a non-zero finite number (its sign says whether pixels go up or down), got {value!r}"
    return None


def _unroll(value, name):
    if value is None or isinstance(value, bool):
        return None
    problem = core.count_problem(value, 1)
    return None if problem is None else f"must be None, True, False or an integer >= 1, got {value!r}"


_nonneg = _number()
VALIDATORS: Mapping[str, Callable[[Any, str], str | None]] = types.MappingProxyType({
    "eps": _eps,
    "step_size": _nonneg,
    "rel_step_size": _nonneg,
    "alpha": _nonneg,
    "decay": _nonneg,
    "norm": _norm,
    "loss": _loss,
    "targeted": _flag,
    "random_start": _flag,
    "abort_early": _flag,
    "stochastic": _flag,
    "num_steps": _count(),
    "restarts": _count(),
    "num_queries": _count(),
    "binary_search_steps": _count(),
    "eot_iter": _count(),
    "num_targets": _count(),
    "num_candidates": _count(2),
    "chunk_size": _count(allow_none=True),
    "pair_chunk": _count(allow_none=True),
    "rho": _number(high=1.0),
    "momentum": _number(high=1.0),
    "p_init": _number(low_open=True, high=1.0),
    "confidence": _nonneg,
    "initial_const": _nonneg,
    "learning_rate": _number(low_open=True),
    "overshoot": _nonneg,
    "alpha_max": _number(high=1.0),
    "eta": _nonneg,
    "beta": _number(high=1.0),
    "theta": _theta,
    "gamma": _number(low_open=True, high=1.0),
    "target": _choice(JSMA_TARGETS),
    "saliency": _choice(JSMA_SALIENCY),
    "reuse_features": _flag,
    "random_init": _choice(RANDOM_INITS),
    "version": _choice(tuple(sorted(AUTOATTACK_VERSIONS))),
    "attacks": _components,
    "unroll": _unroll,
})


def _close(word: Any, choices) -> str:
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Signature:
    keywords: tuple[str, ...]     # the spec keys an attack accepts (keyword-only parameters but bounds)
    required: tuple[str, ...]     # keyword-only parameters without a default
    defaults: Mapping[str, Any]
    needs_key: bool               # the PRNG key has no default


def _signature(name: str) -> _Signature:
    params = inspect.signature(ATTACKS[name]).parameters
    kw_only = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "bounds"]
    key_param = params.get("key")
    return _Signature(
        keywords=tuple(p.name for p in kw_only),
        required=tuple(p.name for p in kw_only if p.default is inspect.Parameter.empty),
        defaults=types.MappingProxyType({p.name: p.default for p in kw_only
                                         if p.default is not inspect.Parameter.empty}),
        needs_key=key_param is not None and key_param.default is inspect.Parameter.empty,
    )


_SIGNATURES = {name: _signature(name) for name in ATTACKS}


def spec_keywords(name: str) -> tuple[str, ...]:
    """The keys a spec for attack ``name`` may hold besides ``"attack"`` (sorted)."""
    sig = _SIGNATURES[name]
    extra = ("rel_step_size",) if "step_size" in sig.keywords else ()
    return tuple(sorted(sig.keywords + extra))


def get_attack(name: str, where: str = "spec") -> Callable:
    """The attack function called ``name``.

    Raises:
      ValueError: ``"{where}.attack: 'pgdd' is not an attack; valid attacks are [...] (did you mean 'pgd'?)"``.
    """
    if not isinstance(name, str) or name not in ATTACKS:
        raise ValueError(f"{where}.attack: {name!r} is not an attack; valid attacks are {sorted(ATTACKS)}"
                         f"{_close(name, ATTACKS)}.")
    return ATTACKS[name]


# --------------------------------------------------------------------------------------------------------
# Resolved attacks
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Attack:
    """A checked attack spec, called like an attack: ``atk(logits_fn, x, y, key, *, eps=None, bounds)``.

    Attributes:
      name: the attack's name in ``ATTACKS``.
      fn: the attack function.
      hyperparameters: ``(key, value)`` pairs, sorted by key, passed to ``fn`` as they are (not ``eps``, not
        ``rel_step_size``; lists become tuples); :attr:`kwargs` as a dict.
      eps: the spec's eps, or ``None``.
      rel_step_size: step size relative to eps, or ``None``.
      norm: the norm the attack measures eps in (the spec's, else the attack's default).
      budget: True for an attack with an eps ball: a budget attack, or ``fab`` given an eps.
      where: the field path used in messages.
    """

    name: str
    fn: Callable = dataclasses.field(repr=False)
    hyperparameters: tuple[tuple[str, Any], ...]
    eps: Any
    rel_step_size: float | None
    norm: str
    budget: bool
    where: str = "spec"

    @property
    def kwargs(self) -> dict:
        return dict(self.hyperparameters)

    @property
    def takes_eps(self) -> bool:
        return "eps" in _SIGNATURES[self.name].keywords

    @property
    def spec(self) -> dict:
        """The spec this was resolved from (``{"attack": ..., **hyperparameters}``), normalised."""
        out = {"attack": self.name, **self.kwargs}
        if self.eps is not None:
            out["eps"] = self.eps
        if self.rel_step_size is not None:
            out["rel_step_size"] = self.rel_step_size
        return out

    def __call__(self, logits_fn, x, y, key=None, *, eps=None, bounds=(0.0, 1.0)):
        """Runs the attack: ``fn(logits_fn, x, y, key, bounds=bounds, eps=..., **hyperparameters)``.

        Args:
          logits_fn: ``x -> logits [B, K]``.
          x: clean batch inside ``bounds``.
          y: labels ``[B]``.
          key: PRNG key (``None`` only for attacks that do not need one).
          eps: overrides the spec's eps (a float, or a traced scalar / ``[B]`` array: one compiled function
            then serves a whole eps grid); ``rel_step_size`` scales with it.
          bounds: the dataset's pixel range ``(lo, hi)``.
        """
        kw = self.kwargs
        eps = self.eps if eps is None else eps
        if eps is not None:
            if not self.takes_eps:
                raise ValueError(f"{self.where}: {self.name} takes no eps (it looks for the smallest "
                                 f"perturbation); call it without eps=.")
            kw["eps"] = eps
            if self.rel_step_size is not None:
                kw["step_size"] = self.rel_step_size * eps
        elif self.budget:
            raise ValueError(f"{self.where}.eps: missing: {self.name} needs eps; put it in the spec or pass "
                             f"eps= to the call.")
        if key is None and _SIGNATURES[self.name].needs_key:
            raise ValueError(f"{self.where}: {self.name} needs a PRNG key, got None; e.g. jax.random.key(0).")
        return self.fn(logits_fn, x, y, key, bounds=bounds, **kw)


def _plain(spec: Any, where: str) -> dict:
    if hasattr(spec, "to_dict"):  # ml_collections.ConfigDict and friends
        spec = spec.to_dict()
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: an attack spec must be a dict {{'attack': name, **hyperparameters}}, "
                         f"got {spec!r}.")
    return dict(spec)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def resolve(spec: Mapping | Attack, where: str = "spec", *, require_eps: bool = True) -> Attack:
    """Checks an attack spec and returns the callable :class:`Attack` (no model or data needed).

    Args:
      spec: ``{"attack": name, **hyperparameters}`` (a dict, a ConfigDict, or an already resolved
        :class:`Attack`, returned as it is after the ``require_eps`` check).
      where: the spec's field path, the prefix of every message (e.g. ``"config.eval.attacks.pgd40"``).
      require_eps: refuse a budget attack without eps (default). Pass False when eps comes at call time.

    Returns:
      The resolved :class:`Attack`.

    Raises:
      ValueError: the first problem found, e.g.
        ``"config.eval.attacks.pgd40.num_step: unknown keyword for pgd; valid keywords are [...] (did you
        mean 'num_steps'?)"``.
    """
    if isinstance(spec, Attack):
        if require_eps and spec.budget and spec.eps is None:
            raise ValueError(_missing_eps(spec.name, where))
        return spec
    spec = _plain(spec, where)
    if "attack" not in spec:
        raise ValueError(f"{where}.attack: missing: name the attack, e.g. 'pgd'; valid attacks are "
                         f"{sorted(ATTACKS)}.")
    name = spec.pop("attack")
    fn = get_attack(name, where)
    sig = _SIGNATURES[name]
    valid = spec_keywords(name)
    for key in spec:
        if key in NOT_SPEC_KEYS:
            raise ValueError(f"{where}.{key}: {NOT_SPEC_KEYS[key]}.")
        if key not in valid:
            hint = _close(key, valid)
            if key == "eps_grid":
                hint = " (eps_grid belongs to the evaluation suite's curves, which strip it before resolving)"
            elif key == "eps":
                hint = f" ({name} looks for the smallest perturbation: it takes no eps)"
            raise ValueError(f"{where}.{key}: unknown keyword for {name}; valid keywords are {list(valid)}{hint}.")
    for key, value in spec.items():
        if value is None and key in sig.defaults and sig.defaults[key] is None:
            continue  # a keyword whose default is None takes None
        check = VALIDATORS.get(key)
        problem = check(value, name) if check is not None else None
        if problem is not None:
            raise ValueError(f"{where}.{key}: {problem}.")
    if "rel_step_size" in spec and "step_size" in spec:
        raise ValueError(f"{where}.rel_step_size: give step_size or rel_step_size, not both "
                         f"(step_size={spec['step_size']!r}, rel_step_size={spec['rel_step_size']!r}).")
    for key in sig.required:
        if key == "eps" or key in spec:
            continue
        if key == "step_size" and "rel_step_size" in spec:
            continue
        alt = " (or rel_step_size)" if key == "step_size" else ""
        raise ValueError(f"{where}.{key}: missing: {name} needs {key}{alt}.")
    eps = spec.pop("eps", None)
    budget = name in BUDGET_ATTACKS or eps is not None
    if eps is None and budget and require_eps:
        raise ValueError(_missing_eps(name, where))
    rel = spec.pop("rel_step_size", None)
    if rel is not None and eps is not None and math.isinf(float(eps)):
        raise ValueError(f"{where}.rel_step_size: needs a finite eps (the step is rel_step_size * eps), "
                         f"got eps={eps!r}; give step_size instead.")
    if name == "rand_fgsm" and eps is not None and spec.get("alpha") is not None \
            and spec.get("random_init", "sign") == "sign" and _as_real(spec["alpha"]) > _as_real(eps):
        raise ValueError(f"{where}.alpha: must be <= eps ({eps!r}), got {spec['alpha']!r} (with "
                         f"random_init='sign'; the Gaussian first step, random_init='gaussian', caps alpha at eps).")
    if name == "fab" and spec.get("targeted") and spec.get("num_targets") is not None:
        raise ValueError(f"{where}.num_targets: fab with targeted=True takes its targets from y; leave "
                         f"num_targets out.")
    norm = spec.get("norm", sig.defaults.get("norm", FIXED_NORM.get(name)))
    return Attack(name=name, fn=fn, hyperparameters=tuple(sorted((k, _frozen(v)) for k, v in spec.items())), eps=eps,
                  rel_step_size=rel, norm=norm, budget=budget, where=where)


def _missing_eps(name: str, where: str) -> str:
    return (f"{where}.eps: missing: {name} is a budget attack and needs eps (at eps 0 it would report clean "
            f"accuracy as robust accuracy); callers that pass eps at call time resolve with require_eps=False.")
