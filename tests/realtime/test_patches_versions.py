"""Each patch refuses, at start-up, a library at a version it was not written for."""

import re
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from realtime import patches
from realtime.patches import daphne as daphne_patch
from realtime.patches import versions

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
PATCHED = sorted({name for patch in patches.PATCHES for name in patch.SUPPORTED})


@pytest.fixture
def installed_at(monkeypatch):
    """Make ``distribution`` look installed at ``version`` (None: not installed)."""

    def at(distribution: str, version: str | None) -> None:
        found = versions.metadata.version

        def version_of(name: str) -> str:
            if name != distribution:
                return found(name)
            if version is None:
                raise versions.metadata.PackageNotFoundError(name)
            return version

        monkeypatch.setattr(versions.metadata, "version", version_of)

    return at


def test_the_installed_libraries_are_the_supported_ones():
    patches.check_versions()


@pytest.mark.parametrize("distribution", PATCHED)
def test_start_up_refuses_a_patched_library_at_another_version(distribution, installed_at):
    installed_at(distribution, "99.0")
    name = re.escape(distribution)
    with pytest.raises(ImproperlyConfigured, match=rf"{name} .*, but {name} 99\.0 is installed"):
        apps.get_app_config("realtime").ready()


def test_the_error_names_the_patch_the_versions_and_what_to_do(installed_at):
    installed_at("daphne", "4.3.0")
    with pytest.raises(ImproperlyConfigured) as raised:
        daphne_patch.install()
    assert str(raised.value) == (
        "realtime.patches.daphne was written for daphne 4.2.3, but daphne 4.3.0 is installed. "
        "Install daphne==4.2.3 (requirements.txt), or check realtime.patches.daphne against "
        "4.3.0 as docs/patches.md says and add it to its SUPPORTED."
    )


def test_a_missing_library_is_named_too(installed_at):
    installed_at("channels-redis", None)
    with pytest.raises(ImproperlyConfigured, match=r"channels-redis is not installed\."):
        patches.check_versions()


def test_requirements_pin_every_patched_library_at_a_supported_version():
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).strip().lower()] = version.strip()
    for patch in patches.PATCHES:
        for distribution, supported in patch.SUPPORTED.items():
            assert pins.get(distribution) in supported, (patch.__name__, distribution)
