"""Settings read from environment variables, each declared once by the app that uses it.

A declaration names the variable, how its text is read, its default (written
as it would be in the environment) and its meaning, the row of the README's
Configuration table (``python -m project.readme`` writes that table).
``project.settings`` reads every declaration into a Django setting of the same
name; a value that cannot be read stops the process with an
``ImproperlyConfigured`` that names the variable. Each app's system checks
hold the same bounds against the settings as they are at run time.
"""

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
PERIODS = "smhd"


@dataclass(frozen=True)
class Kind:
    """How the text of one kind of setting is read and shown."""

    what: str  # "a number of seconds": the error says the variable must be this
    parse: Callable[[str], Any]  # raises ValueError for a text it cannot read
    empty_is_value: bool = False  # an empty variable is this value, not the default
    numeric: bool = False
    shown_plain: bool = False  # the table shows the default as a word, not as code


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, kind, default, bounds and meaning."""

    name: str
    kind: Kind
    default: str | Callable[[Mapping[str, Any]], Any]
    meaning: str
    minimum: float | None = None  # the least value allowed
    above: float | None = None  # values must be above this one
    shown: str | None = None  # the table's default, where the default's text would mislead

    def read(self, environ: Mapping[str, str], values: Mapping[str, Any]) -> Any:
        """This setting's value from ``environ``; ``values``: the settings read before it."""
        text = environ.get(self.name)
        if text is None or (text == "" and not self.kind.empty_is_value):
            if callable(self.default):
                return self.default(values)
            text = self.default
        try:
            value = self.kind.parse(text)
        except ValueError:
            value = None
        if value is None:
            raise ImproperlyConfigured(f"{self.name} must be {self.kind.what}, got {text!r}")
        if self.out_of_bounds(value):
            raise ImproperlyConfigured(f"{self.name} must be {self.expected()}, got {text!r}")
        return value

    def out_of_bounds(self, value: Any) -> bool:
        if not self.kind.numeric:
            return False
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True
        return (self.minimum is not None and value < self.minimum) or (
            self.above is not None and value <= self.above
        )

    def expected(self) -> str:
        """What a value must be: "a whole number of bytes, 1 or more"."""
        if self.above is not None:
            return f"{self.kind.what} above {self.above:g}"
        if self.minimum is not None:
            return f"{self.kind.what}, {self.minimum:g} or more"
        return self.kind.what

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` as this setting's value at run time, if anything."""
        if not self.out_of_bounds(value):
            return None
        return f"{self.name} is {value!r}; it must be {self.expected()}."

    def shown_default(self) -> str:
        """The default as the README's table shows it."""
        if self.shown is not None:
            return self.shown
        if self.kind.shown_plain:
            return str(self.default)
        return f"`{self.default}`" if self.default else "empty"


def read_all(settings: Iterable[Setting], environ: Mapping[str, str] = os.environ) -> dict:
    """Every setting's value, by name, each read after the ones before it."""
    values: dict[str, Any] = {}
    for setting in settings:
        values[setting.name] = setting.read(environ, values)
    return values


def run_time_problems(settings: Iterable[Setting], current: object) -> list[str]:
    """What is wrong with the settings as ``current`` (django.conf.settings) holds them."""
    found = (setting.problem(getattr(current, setting.name, None)) for setting in settings)
    return [problem for problem in found if problem]


def bounds_check(settings: Iterable[Setting], check_id: str) -> Callable[..., list]:
    """A system check (to register) that reports, as ``check_id`` errors, the values
    of ``settings`` outside their declared bounds as django.conf.settings holds them."""
    declared = list(settings)

    def check_declared_bounds(**kwargs) -> list[checks.Error]:
        from django.conf import settings as current

        return [checks.Error(p, id=check_id) for p in run_time_problems(declared, current)]

    return check_declared_bounds


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _boolean(text: str) -> bool | None:
    word = text.strip().lower()
    return True if word in TRUE else False if word in FALSE else None


def _rate(text: str, *, zero_is_off: bool = False) -> str:
    rate = text.strip()
    if rate == "" or (zero_is_off and rate == "0"):
        return text
    count, slash, period = rate.partition("/")
    if not (slash and int(count) >= 0 and period[:1] in PERIODS):
        raise ValueError(text)
    return text


def _words(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text

    return parse


def number(name: str, default: str, meaning: str, *, unit: str = "", **bounds: Any) -> Setting:
    """A number (``float``), of ``unit`` when one is given."""
    what = f"a number of {unit}" if unit else "a number"
    return Setting(name, Kind(what, _number, numeric=True), default, meaning, **bounds)


def seconds(name: str, default: str, meaning: str, **bounds: Any) -> Setting:
    """A duration in seconds (``float``)."""
    return number(name, default, meaning, unit="seconds", **bounds)


def integer(name: str, default: str, meaning: str, *, unit: str = "", **bounds: Any) -> Setting:
    """A whole number (``int``), of ``unit`` when one is given."""
    what = f"a whole number of {unit}" if unit else "a whole number"
    return Setting(name, Kind(what, int, numeric=True), default, meaning, **bounds)


def boolean(name: str, default: bool, meaning: str) -> Setting:
    """On or off: 1, true, yes, on or 0, false, no, off (any case)."""
    kind = Kind("on or off (1, true, yes, on or 0, false, no, off)", _boolean, shown_plain=True)
    return Setting(name, kind, "on" if default else "off", meaning)


def text(name: str, default: str | Callable, meaning: str, *, shown: str | None = None) -> Setting:
    """Any text; an empty variable is the empty text."""
    return Setting(name, Kind("a text", str, empty_is_value=True), default, meaning, shown=shown)


def text_list(name: str, default: str, meaning: str) -> Setting:
    """Comma-separated words (a ``list``); empty or unset: the default."""
    return Setting(name, Kind("comma-separated words", _words), default, meaning)


def choice(
    name: str,
    default: str | Callable,
    meaning: str,
    *,
    choices: tuple[str, ...],
    shown: str | None = None,
) -> Setting:
    """One of ``choices``, exactly as written there."""
    what = "one of " + ", ".join(repr(c) for c in choices)
    return Setting(name, Kind(what, _choice(choices)), default, meaning, shown=shown)


def rate(
    name: str,
    default: str | Callable,
    meaning: str,
    *,
    zero_is_off: bool = False,
    shown: str | None = None,
) -> Setting:
    """A rate such as ``10/minute`` (a ``str``); empty (or "0" with ``zero_is_off``): no limit."""
    off = "empty or 0" if zero_is_off else "empty"
    kind = Kind(
        f"a rate such as 10/minute (N/second, N/minute, N/hour or N/day), or {off} for no limit",
        partial(_rate, zero_is_off=zero_is_off),
        empty_is_value=True,
    )
    return Setting(name, kind, default, meaning, shown=shown)


def configuration_table(settings: Iterable[Setting]) -> str:
    """The README's Configuration table, one row a setting, in the order given."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {s.shown_default()} | {s.meaning} |" for s in settings]
    return "\n".join(rows) + "\n"
