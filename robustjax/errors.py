"""Errors that mean "the input is wrong", as opposed to "robustjax is broken".

    from robustjax import errors
    try:
        experiment.run(config, workdir)
    except errors.UserError as e:     # a bad config, missing data, a workdir that holds another run...
        print(e)                      # the message says what is wrong and how to fix it

``main.py`` prints a ``UserError`` as one line and exits with status 2 (``--verbosity=1`` or
``ROBUSTJAX_TRACEBACK=1`` shows the traceback too); any other exception keeps its traceback, because it
is a bug to report. ``UserError`` subclasses ``ValueError``, so code that catches ``ValueError`` for bad
input keeps working. ``docs/reliability.md`` lists where each of these is raised.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input that robustjax recognised; the message names it and says how to fix it."""


class ConfigError(UserError):
    """A config field is missing, unknown, or out of range (the message names ``config.<field>``)."""


class DataError(UserError):
    """A dataset file or split is malformed (wrong layout, dtype, labels, NaN pixels...)."""


class CheckpointMismatchError(UserError):
    """A work directory's checkpoints were written by a different model (a leaf's shape or dtype differs)."""


class ConfigChangedError(UserError):
    """Resuming a work directory with a config that changes training (the message names the fields)."""
