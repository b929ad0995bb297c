"""The README's Configuration table is the declared settings', and every setting is declared."""

import re
from pathlib import Path

from django.conf import settings

from executions.env import configuration_table
from project import readme
from project.conf import every_setting

ROOT = Path(__file__).resolve().parents[2]
CODE = ("executions", "realtime", "project", "dashboard")


def test_the_readme_table_is_the_one_the_declarations_make():
    documented = readme.documented_table((ROOT / "README.md").read_text())

    assert documented == configuration_table(every_setting()), (
        "README.md's Configuration table is out of date: run python -m project.readme"
    )


def test_each_row_names_a_variable_with_its_default_and_meaning():
    rows = readme.documented_table((ROOT / "README.md").read_text()).splitlines()[2:]
    assert len(rows) == len(every_setting()) > 80
    assert "| `EXECUTIONS_LEASE_SECONDS` | `30` | a runner that has not renewed its claim" in (
        "\n".join(rows)
    )
    assert "| `EXECUTIONS_MAINTENANCE` | on |" in "\n".join(rows)
    assert "| `EXECUTIONS_HTTP_ALLOWED_HOSTS` | empty |" in "\n".join(rows)


def test_each_variable_is_declared_once():
    names = [setting.name for setting in every_setting()]
    assert len(names) == len(set(names))


def test_every_declared_variable_is_a_django_setting():
    assert [s.name for s in every_setting() if not hasattr(settings, s.name)] == []


def test_no_code_reads_the_environment_but_the_declarations():
    readers = re.compile(r"os\.environ(?!\.setdefault\(\"DJANGO_SETTINGS_MODULE\")|os\.getenv")
    found = [
        str(path.relative_to(ROOT))
        for package in CODE
        for path in (ROOT / package).rglob("*.py")
        if readers.search(path.read_text())
    ]
    assert found == ["executions/env.py"]


def test_the_write_puts_the_table_in_place_of_the_old_one():
    text = "# Service\n\n## Configuration\n\nIntro.\n\n| a |\n| b |\n\nAfter.\n\n## Next\n"

    written = readme.with_table(text, "| new |\n")

    assert written == "# Service\n\n## Configuration\n\nIntro.\n\n| new |\n\nAfter.\n\n## Next\n"
