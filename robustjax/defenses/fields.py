"""Each defense's config section as data: its fields, their defaults and their checks.

    FIELDS = {
        "name": fields.Field(),                                   # required
        "beta": fields.Field(6.0, fields.number(0.0)),            # default 6.0, must be >= 0
        "attack": fields.Field(None, fields.attack_spec()),       # a train-time attack spec, or None
    }
    hp = fields.read(config.defense, FIELDS, "config.defense")   # a plain dict, defaults filled in

:func:`read` is the whole of a defense's validation: a field the defense does not know is a typo and
fails with the valid names and the closest match; a missing required field, a value of the wrong type
or out of range fails naming the field. Every message starts with the field's full path
(``config.defense.attack.num_steps: ...``) so a user can find it in the config file or command line.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from typing import Any, Callable, Mapping

REQUIRED = object()  # the default of a field the config must set

Check = Callable[[Any, str], Any]  # (value, field path) -> cleaned value; raises ValueError


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: its default (``REQUIRED`` if none) and the check that cleans its value."""

    default: Any = REQUIRED
    check: Check | None = None
    doc: str = ""


def plain(value: Any) -> Any:
    """A ConfigDict / FieldReference / nested mapping as plain Python values."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "get") and hasattr(value, "keys"):
        return {k: plain(value[k]) for k in value.keys()}
    return value


def suggest(name: str, valid) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_field_error(where: str, name: str, valid, what: str = "field") -> ValueError:
    return ValueError(f"{where}.{name}: unknown {what}{suggest(name, valid)}; valid {what}s here are "
                      f"{sorted(valid)}")


def read(section: Any, fields: Mapping[str, Field], where: str,
         hints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Checks ``section`` against ``fields`` and returns it as a plain dict with defaults filled in.

    Args:
      section: a ConfigDict or mapping (e.g. ``config.defense``).
      fields: the schema: every valid field name, with its default and check.
      where: the section's path for messages (``"config.defense"``).
      hints: for names that are not fields, what to say instead (e.g. where a field moved to).

    Raises:
      ValueError: an unknown field (with the closest valid name), a missing required field, or a value
        its check rejects; the message starts with the field's path.
    """
    given = plain(section) if section is not None else {}
    unknown = sorted(set(given) - set(fields))
    if unknown:
        if hints and unknown[0] in hints:
            raise ValueError(f"{where}.{unknown[0]}: unknown field: {hints[unknown[0]]}")
        raise unknown_field_error(where, unknown[0], fields)
    out = {}
    for name, field in fields.items():
        value = given.get(name, field.default)
        if value is REQUIRED:
            raise ValueError(f"{where}.{name}: missing; this section needs it ({field.doc or 'no default'})")
        if field.check is not None:
            value = field.check(value, f"{where}.{name}")
        out[name] = value
    return out


# ----------------------------------------------------------------------------------------------
# Checks. Each returns a check ``(value, path) -> cleaned value``.


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
           allow_inf: bool = False) -> Check:
    """A real number (not a bool, not NaN) in ``[lo, hi]`` (open ends with ``lo_open``/``hi_open``)."""

    def check(v: Any, path: str) -> float:
        ok = _is_number(v) and not math.isnan(v) and (allow_inf or math.isfinite(v))
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
        if not ok:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            rng = f"in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
            raise ValueError(f"{path}: must be a number {rng}, got {v!r}")
        return float(v)

    return check


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    """An integer (a float with an integral value is accepted; a bool is not) in ``[lo, hi]``."""

    def check(v: Any, path: str) -> int:
        ok = _is_number(v) and math.isfinite(v) and float(v) == int(v)
        if ok and lo is not None:
            ok = v >= lo
        if ok and hi is not None:
            ok = v <= hi
        if not ok:
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            raise ValueError(f"{path}: must be an integer {rng}, got {v!r}")
        return int(v)

    return check


def choice(*options: Any) -> Check:
    def check(v: Any, path: str) -> Any:
        if v not in options:
            raise ValueError(f"{path}: {v!r} is not one of {list(options)}{suggest(v, options)}")
        return v

    return check


def boolean() -> Check:
    def check(v: Any, path: str) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"{path}: must be True or False, got {v!r}")
        return v

    return check


def text() -> Check:
    def check(v: Any, path: str) -> str:
        if not isinstance(v, str):
            raise ValueError(f"{path}: must be a string, got {v!r}")
        return v

    return check


def attack_spec(*, optional: bool = False, require_eps: bool = True) -> Check:
    """A train-time attack spec in the format of ``config.eval.attacks`` (``{"attack": "pgd", ...}``),
    resolved and checked by :func:`robustjax.attacks.resolve`; ``None`` allowed when ``optional``.

    The cleaned value is the plain dict (the resolved attack is built again where it is used)."""

    def check(v: Any, path: str) -> dict | None:
        from robustjax import attacks

        v = plain(v)
        if v is None or v == {}:
            if optional:
                return None
            raise ValueError(f"{path}: missing; give the train-time attack as a spec, e.g. "
                             "{'attack': 'pgd', 'eps': 0.3, 'step_size': 0.01, 'num_steps': 40}")
        if not isinstance(v, dict):
            raise ValueError(f"{path}: must be an attack spec dict such as {{'attack': 'pgd', 'eps': 0.3, "
                             f"...}}, got {v!r}")
        attacks.resolve(v, where=path, require_eps=require_eps)
        return v

    return check
