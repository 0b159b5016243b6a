"""Prints the README's N-th ```bash command block (1-based): .ci/run runs README command 1 from here,
so CI runs exactly what the README says. tests/test_readme.py uses the same reader."""

import os
import re
import sys

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


def commands(path: str = README) -> list[str]:
    with open(path) as f:
        return re.findall(r"```bash\n(.+?)\n```", f.read(), flags=re.S)


if __name__ == "__main__":
    print(commands()[int(sys.argv[1]) - 1])
