"""The lock-free counter and histogram read as prometheus_client's own would."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from executions.metrics import onethread

BUCKETS = (0.01, 0.1, 1)
VALUES = (0.0, 0.01, 0.05, 0.1, 0.5, 1, 7)


def test_the_page_has_the_same_series_as_prometheus_clients_own(monkeypatch):
    theirs = CollectorRegistry()
    counter = Counter("sent", "Sent.", ["kind"], registry=theirs)
    histogram = Histogram("late_seconds", "Late.", ["kind"], buckets=BUCKETS, registry=theirs)
    ours = CollectorRegistry()
    monkeypatch.setattr(onethread, "REGISTRY", ours)
    our_counter = onethread.OneThreadCounter("sent", "Sent.", ["kind"])
    our_histogram = onethread.OneThreadHistogram("late_seconds", "Late.", ["kind"], BUCKETS)

    for value in VALUES:
        counter.labels("a").inc()
        histogram.labels("a").observe(value)
        our_counter.cell("a")[0] += 1
        our_histogram.cell("a").observe(value)
    counter.labels("b").inc(3)
    our_counter.cell("b")[0] += 3

    def samples(registry):
        return sorted(
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for family in registry.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        )

    assert samples(ours) == samples(theirs)
    assert b'late_seconds_bucket{kind="a",le="0.1"} 4.0' in generate_latest(ours)
