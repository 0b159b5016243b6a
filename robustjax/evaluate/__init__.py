"""Evaluation: the attack suite from config, metrics, gradient-masking diagnostics, transfer, the report.

    results = evaluate.evaluate(defense, state, test_ds, config.eval, key, bounds=info.bounds, train_ds=train_ds)
    paths, markdown = evaluate.report.write(workdir, results, title="...", pictures=results["_pictures"])
    table = evaluate.transfer.transfer_matrix(["runs/a", "runs/b"], {"attack": "fgsm", "eps": 0.1})
"""

from robustjax.evaluate import diagnostics, figures, metrics, report, specs, transfer
from robustjax.evaluate.suite import BUDGET_ATTACKS, MINIMAL_ATTACKS, evaluate, get_attack
from robustjax.evaluate.transfer import transfer_matrix

__all__ = ["BUDGET_ATTACKS", "MINIMAL_ATTACKS", "diagnostics", "evaluate", "figures", "get_attack", "metrics",
           "report", "specs", "transfer", "transfer_matrix"]
