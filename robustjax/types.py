"""Type aliases shared by every part of robustjax (one place, so signatures read the same everywhere).

    from robustjax.types import LogitsFn, Batch
    def attack(logits_fn: LogitsFn, x: Array, y: Array, key: PRNGKey) -> Array: ...
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax

Array = jax.Array
PRNGKey = jax.Array
PyTree = Any

# {"image": float32 [B, H, W, C] in [0, 1], "label": int32 [B]} (evaluation batches add "mask": bool [B]).
Batch = Mapping[str, Array]
# Scalars (or small arrays) reported by a train step; the loop averages and logs them.
Metrics = Mapping[str, Array]

# x -> logits [B, K]. Closes over parameters; this is all an attack ever sees of a model.
LogitsFn = Callable[[Array], Array]
# x -> score [B]: a detector's "this input is adversarial/fake" score (higher = more suspicious).
ScoreFn = Callable[[Array], Array]
# (logits [B, K], labels [B]) -> per-example loss [B].
LossFn = Callable[[Array, Array], Array]
# attack(logits_fn, x, y, key, **hyperparameters) -> x_adv (stop_gradient'ed, same shape as x).
Attack = Callable[..., Array]
