"""Compare finished runs: ``python -m robustjax.report RUN_DIR [RUN_DIR ...] [--out DIR]``.

    python -m robustjax.report runs/pgd_at_mnist-eps_t0.1-* runs/pgd_at_mnist-eps_t0.3-* --eps 0.1,0.2,0.3

Writes ``comparison.md``, ``comparison.csv``, ``curves.png``, ``pointwise.csv`` and (when the runs saved
saliency maps) ``saliency.png`` into ``--out`` (default ``runs/compare-<timestamp>``) and prints the
Markdown; what each holds is in ``robustjax/evaluate/compare.py``. Exit status 2 (one line on stderr) for a
directory that is not a finished run or a bad argument.
"""

from __future__ import annotations

import argparse
import sys
import time

from robustjax.evaluate import compare


def _eps_list(text: str) -> list[float]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "/" in part:  # 8/255
            num, _, den = part.partition("/")
            value = float(num) / float(den)
        else:
            value = float(part)
        if value < 0:
            raise argparse.ArgumentTypeError(f"eps must be >= 0, got {part}")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("give at least one eps, e.g. --eps 0.1,0.2 or --eps 8/255")
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m robustjax.report", description=(
        "One comparison over several runs: a table of clean and per-attack accuracy (rows = runs), the "
        "family of robustness curves, point-wise tables at chosen test eps, and saliency maps across runs."))
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="work directories written by main.py")
    p.add_argument("--out", default=None, help="where to write (default: runs/compare-<timestamp>)")
    p.add_argument("--eps", type=_eps_list, default=None,
                   help="test eps for the point-wise tables and the curve figure's vertical lines, e.g. "
                        "0.1,0.2,0.3 or 8/255,12/255 (default: every grid point all curves share)")
    p.add_argument("--metric", choices=compare.METRICS, default="robust_accuracy",
                   help="robust_accuracy (correct clean and attacked) or accuracy_on_adversarial (as ATGAN reports)")
    p.add_argument("--curve", default=None, help="the curve label to compare (default: the one most runs have)")
    p.add_argument("--example", type=int, default=0, help="which saved test image the saliency figure shows")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        runs = [compare.load_run(d) for d in args.runs]
        paths, markdown = compare.write(runs, out, eps=args.eps, metric=args.metric, curve=args.curve,
                                        example=args.example)
    except (compare.RunError, ValueError) as e:
        print(f"[robustjax] error: {e}", file=sys.stderr)
        return 2
    print(markdown)
    print(f"[robustjax] comparison: {paths['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
