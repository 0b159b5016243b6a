"""notebooks/quickstart.ipynb runs headless, top to bottom, on CPU (nbclient): its install cell is skipped
when robustjax is importable, the attacks lower the accuracy of the notebook's own model, a smoke run of a
defense trains and evaluates, and the report's figures are shown inline."""

import os
import time

import nbclient  # the test extra: pip install -e ".[test]"
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def test_quickstart_notebook_runs_on_cpu(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # the kernel's cwd
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    elapsed = time.perf_counter() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in code)
    install, device, train_cnn, attack, defense, report = code

    assert "robustjax is already installed: nothing to do" in _text(install)
    assert "runs on CPU" in _text(device) and "smoke run" in _text(device)
    assert "trained 300 steps" in _text(train_cnn)
    lines = [line for line in _text(attack).splitlines() if line.startswith("eps ")]
    assert len(lines) == 2
    for line in lines:  # "eps 0.1: clean accuracy 0.963, under FGSM 0.420, under PGD-20 0.133"
        clean, fgsm, pgd = (float(part.rsplit(" ", 1)[1]) for part in line.split(": ", 1)[1].split(", "))
        assert clean > 0.8 and pgd < clean and pgd <= fgsm + 1e-6
    assert "clean accuracy" in _text(defense) and "pgd20: robust accuracy" in _text(defense)
    workdir = tmp_path / "runs" / "notebook-quickstart-smoke"
    assert (workdir / "results.json").exists() and (workdir / "report.md").exists()
    assert _images(report) == 2  # curves.png and examples.png, inline
    assert any("text/markdown" in o.get("data", {}) for o in report.outputs)
    print(f"notebook executed in {elapsed:.1f} s")


def test_install_cell_without_robustjax_asks_where_to_install_from(tmp_path):
    """The install cell's other branch, without installing anything: a Python that cannot import robustjax
    (-S: no site-packages), run outside a checkout and without ROBUSTJAX_PIP, stops with the way out."""
    import subprocess
    import sys

    install = nbformat.read(NOTEBOOK, as_version=4).cells[1].source
    assert "pip" in install and 'find_spec("robustjax")' in install
    (tmp_path / "cwd").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ROBUSTJAX_PIP", "PYTHONPATH")}
    proc = subprocess.run([sys.executable, "-S", "-c", install], cwd=tmp_path / "cwd", env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "RuntimeError: robustjax is not installed: set ROBUSTJAX_PIP" in proc.stderr
