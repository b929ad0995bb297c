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
