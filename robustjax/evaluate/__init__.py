"""Evaluation: the attack suite from config, metrics, curves, and the report.

    results = evaluate.evaluate(defense, state, test_ds, config.eval, key, bounds=info.bounds)
    paths, markdown = evaluate.report.write(workdir, results, title="...", pictures=results["_pictures"])
"""

from robustjax.evaluate import figures, report, specs
from robustjax.evaluate.suite import BUDGET_ATTACKS, MINIMAL_ATTACKS, evaluate, get_attack

__all__ = ["BUDGET_ATTACKS", "MINIMAL_ATTACKS", "evaluate", "figures", "get_attack", "report", "specs"]
