"""Evaluation: the attack suite from config, metrics, curves, and the report.

    results = evaluate.evaluate(defense, state, test_ds, config.eval, key, bounds=info.bounds)
    evaluate.report.write(workdir, results, title="...")
"""

from robustjax.evaluate import report, specs
from robustjax.evaluate.suite import BUDGET_ATTACKS, MINIMAL_ATTACKS, evaluate, get_attack

__all__ = ["BUDGET_ATTACKS", "MINIMAL_ATTACKS", "evaluate", "get_attack", "report", "specs"]
