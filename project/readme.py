"""The README's Configuration table, made from the declared settings.

``python -m project.readme`` writes it into README.md; ``--check`` only says
whether README.md holds it (exit status 1 when it does not).
"""

import sys
from pathlib import Path

from executions.env import configuration_table
from project.conf import every_setting

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "\n## Configuration\n"


def table_span(readme: str) -> tuple[int, int]:
    """Where the Configuration section's table starts and ends in ``readme``."""
    section = readme.index(SECTION) + len(SECTION)
    start = readme.index("\n| ", section) + 1
    end = start
    while end < len(readme) and readme.startswith("|", end):
        end = readme.index("\n", end) + 1
    return start, end


def documented_table(readme: str) -> str:
    start, end = table_span(readme)
    return readme[start:end]


def with_table(readme: str, table: str) -> str:
    start, end = table_span(readme)
    return readme[:start] + table + readme[end:]


def main(argv: list[str]) -> int:
    readme = README.read_text()
    table = configuration_table(every_setting())
    if "--check" in argv:
        if documented_table(readme) == table:
            return 0
        print("README.md's Configuration table is out of date: run python -m project.readme")
        return 1
    README.write_text(with_table(readme, table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
