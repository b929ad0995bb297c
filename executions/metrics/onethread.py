"""A counter and a histogram for what is measured once per message sent.

prometheus_client's take a lock at every step (two for a histogram), about
1.8 microseconds a message for the two measured at each send, a few percent
of what sending the message costs. These are stepped from one thread only,
the server's event loop that sends every message, so they need no lock: a
step is a list item incremented. Prometheus reads them as collectors
(``collect``), the same series as prometheus_client's own would give.
"""

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString


class OneThreadCounter:
    """A counter by label values; ``cell(*values)[0] += n`` steps it."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.cells: dict[tuple[str, ...], list[float]] = {}
        REGISTRY.register(self)

    def cell(self, *values: str) -> list[float]:
        found = self.cells.get(values)
        if found is None:
            found = self.cells[values] = [0.0]
        return found

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, cell in list(self.cells.items()):
            family.add_metric(values, cell[0])
        yield family


class HistogramCell:
    """One label set's buckets (not cumulative: each observation counts once), and
    the sum of what was observed."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class OneThreadHistogram:
    """A histogram by label values; ``cell(*values).observe(x)`` steps it."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(float(bound) for bound in buckets))
        self.cells: dict[tuple[str, ...], HistogramCell] = {}
        REGISTRY.register(self)

    def cell(self, *values: str) -> HistogramCell:
        found = self.cells.get(values)
        if found is None:
            found = self.cells[values] = HistogramCell(self.bounds)
        return found

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, cell in list(self.cells.items()):
            counts, running, buckets = list(cell.counts), 0, []
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                running += count
                buckets.append((floatToGoString(bound), running))
            family.add_metric(values, buckets, sum_value=cell.total)
        yield family
