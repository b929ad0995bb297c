"""Every environment variable the settings read has a row in the README's Configuration table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def variables_read() -> set[str]:
    source = (ROOT / "project" / "settings.py").read_text()
    return set(re.findall(r'(?:os\.environ\.get|env_bool|env_list)\(\s*"([A-Z_0-9]+)"', source))


def variables_documented() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_0-9]+)`", table, re.MULTILINE))


def test_every_setting_is_in_the_configuration_table():
    assert len(variables_read()) > 30
    assert variables_read() - variables_documented() == set()


def test_the_table_names_no_setting_that_is_not_read():
    assert variables_documented() - variables_read() == set()
