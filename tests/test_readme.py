"""The README's two commands stay true: CI runs exactly the README's commands."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("readme_commands", os.path.join(ROOT, ".ci", "readme_commands.py"))
readme_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_commands)


def test_readme_opens_with_the_two_commands():
    commands = readme_commands.commands()
    assert commands[0] == "pip install -e . && python main.py --config=configs/quickstart.py"
    assert commands[1].startswith('pip install -e ".[test]" && python -m pytest')
    text = open(os.path.join(ROOT, "README.md")).read()
    assert text.index(commands[0]) < text.index(commands[1]) < text.index("##"), "the two commands come first"


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    assert readme_commands.commands()[1] in ci


def test_ci_runs_readme_command_1_read_from_the_readme_in_a_fresh_clone():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "command1=$(python3 .ci/readme_commands.py 1)" in ci
    assert 'git clone --quiet "$root" "$clone"' in ci and '-c "$command1"' in ci
    assert "runs/quickstart-*/report.md" in ci


def test_ci_requires_the_real_data_tests():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "export ROBUSTJAX_REQUIRE_TEST_DATA=1" in ci and "export ROBUSTJAX_TEST_DATA=" in ci


def _pytest_real_data_test(tmp_path, **env):
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if not k.startswith("ROBUSTJAX_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
         "tests/test_data.py::test_npz_mnist_subset_matches_the_file_and_is_cheap"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


def test_real_data_tests_skip_saying_what_to_set_and_fail_when_required(tmp_path):
    missing = str(tmp_path / "nowhere")
    proc = _pytest_real_data_test(tmp_path, ROBUSTJAX_TEST_DATA=missing)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout[-2000:]
    assert "set ROBUSTJAX_TEST_DATA=/dir/holding/mnist.npz" in proc.stdout
    proc = _pytest_real_data_test(tmp_path, ROBUSTJAX_TEST_DATA=missing, ROBUSTJAX_REQUIRE_TEST_DATA="1")
    assert proc.returncode != 0 and "ROBUSTJAX_REQUIRE_TEST_DATA is set" in proc.stdout, proc.stdout[-2000:]
