"""The README's two commands stay true: CI runs exactly the README's test command."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_the_two_commands():
    commands = _readme_commands()
    assert commands[0] == "pip install -e . && python main.py --config=configs/quickstart.py"
    assert commands[1].startswith('pip install -e ".[test]" && python -m pytest')


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    assert _readme_commands()[1] in ci
