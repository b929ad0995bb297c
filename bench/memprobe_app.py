"""The service's ASGI application with a memory probe, for ``bench.memory`` only.

With ``MEMPROBE_DIR`` set, SIGUSR1 makes the server write, into that folder,
the live objects counted by type and (when the interpreter runs with
``PYTHONTRACEMALLOC``) a tracemalloc snapshot; then ``probe-<n>.done``.
"""

import gc
import os
import pickle
import signal
import tracemalloc
from collections import Counter
from pathlib import Path

from project.asgi import application  # noqa: F401

_count = 0


def _dump(signum, frame) -> None:
    global _count
    _count += 1
    directory = Path(os.environ["MEMPROBE_DIR"])
    gc.collect()
    types = Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.get_objects())
    (directory / f"types-{_count}.pickle").write_bytes(pickle.dumps(dict(types)))
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(directory / f"trace-{_count}.snapshot"))
    (directory / f"probe-{_count}.done").write_text("")


if os.environ.get("MEMPROBE_DIR"):
    signal.signal(signal.SIGUSR1, _dump)


def _referrers(signum, frame) -> None:
    """SIGUSR2: who keeps one of each of the types in ``MEMPROBE_REFERRERS`` alive."""
    directory = Path(os.environ["MEMPROBE_DIR"])
    names = os.environ.get("MEMPROBE_REFERRERS", "").split(",")
    gc.collect()
    lines = []
    everything = gc.get_objects()
    for name in names:
        found = [o for o in everything if type(o).__qualname__ == name]
        if not found:
            continue
        target = found[0]
        lines.append(f"{name}: {len(found)} alive")
        for referrer in gc.get_referrers(target):
            if referrer is everything or referrer is found:
                continue
            text = repr(referrer)[:160]
            lines.append(f"  <- {type(referrer).__qualname__}: {text}")
            for second in gc.get_referrers(referrer)[:6]:
                if second is everything or second is found:
                    continue
                lines.append(f"      <- {type(second).__qualname__}: {repr(second)[:120]}")
    (directory / "referrers.txt").write_text("\n".join(lines))


if os.environ.get("MEMPROBE_DIR"):
    signal.signal(signal.SIGUSR2, _referrers)
