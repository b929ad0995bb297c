"""A process whose clock differs from the database's."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

from django.utils import timezone


@contextmanager
def process_clock_off_by(seconds: float) -> Iterator[None]:
    """This process's clock runs ``seconds`` ahead (negative: behind) the database's."""
    real = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: real() + timedelta(seconds=seconds)):
        yield
