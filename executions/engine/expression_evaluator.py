"""Evaluates JMESPath expressions for the engine in a process of its own.

Started by ``executions.engine.expressions`` as
``python -m executions.engine.expression_evaluator``; it imports nothing but
jmespath and the standard library, so it starts fast and holds no sockets.
Each request and answer is one frame: a 4-byte big-endian length, then that
many bytes of UTF-8 JSON. A request carries its own bounds:

* ``cpu_seconds``: CPU time for the whole request; past it the kernel ends
  the process (SIGPROF), however busy the interpreter is in C code.
* ``memory_bytes``: the process's address space (``RLIMIT_AS``); an
  allocation past it fails, the answer is ``{"error": "memory"}`` and the
  process exits, since a heap that ran out may be in no state to go on.
* ``output_bytes``: the answer's value as compact JSON; a larger one is
  ``{"error": "output"}``, found by a count that stops at the limit.

The answer is ``{"value": ...}`` (or ``{"truthy": bool}`` when the request
asks only that), or ``{"error": kind, "message": ...}``. End of input ends
the process.
"""

import json
import os
import resource
import signal
import struct
import sys
from typing import Any, BinaryIO

import jmespath
from jmespath.exceptions import JMESPathError

HEADER = struct.Struct(">I")
# Below the server: an evaluation can only use the CPU the server leaves.
NICENESS = 10
# The exit status after a failed allocation, when even the answer could not be sent.
MEMORY_EXIT = 3


def is_falsy(value: Any) -> bool:
    """JMESPath's falsy values: false, null, and empty strings, lists and objects."""
    return value is None or value is False or value in ("", [], {})


def read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    body = stream.read(length)
    return body if len(body) == length else None


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def json_longer_than(value: Any, limit: int) -> bool:
    """Whether ``value`` as JSON is surely longer than ``limit`` bytes.

    Counts a lower bound of its length, following shared references as the
    encoder would, and stops as soon as the count passes ``limit``.
    """
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            # Each member takes at least '"":0,' (5 bytes) beside its key.
            size += 1 + sum(len(key) + 5 for key in item)
            if size > limit:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            # Each element takes at least one byte and a separator.
            size += 1 + 2 * len(item)
            if size > limit:
                return True
            stack.extend(item)
        elif isinstance(item, str):
            size += len(item) + 1
        else:
            size += 1
        if size > limit:
            return True
    return False


def evaluate(request: dict) -> bytes:
    """The answer to one request, as JSON bytes."""
    value = jmespath.search(request["expression"], request["data"])
    if request.get("truthy"):
        return json.dumps({"truthy": not is_falsy(value)}).encode()
    limit = request["output_bytes"]
    if json_longer_than(value, limit):
        return error("output")
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    if len(encoded) > limit:
        return error("output")
    return b'{"value":' + encoded + b"}"


def error(kind: str, message: str = "") -> bytes:
    return json.dumps({"error": kind, "message": message}).encode()


def answer(raw: bytes) -> bytes:
    """Decode, bound and evaluate one request; any failure becomes an error answer."""
    request = json.loads(raw)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (request["memory_bytes"], hard))
    # Zero would disarm the timer: the bound is never less than a millisecond.
    signal.setitimer(signal.ITIMER_PROF, max(request["cpu_seconds"], 0.001))
    try:
        return evaluate(request)
    except JMESPathError as exc:
        return error("jmespath", str(exc))
    except RecursionError:
        return error("depth")
    except (TypeError, ValueError) as exc:
        return error("invalid", f"{type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def main() -> None:
    os.nice(NICENESS)
    # The default action of SIGPROF ends the process: the CPU bound holds in C code too.
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (raw := read_frame(stdin)) is not None:
        try:
            body = answer(raw)
        except MemoryError:
            body = None
        if body is None:
            try:
                write_frame(stdout, error("memory"))
            finally:
                os._exit(MEMORY_EXIT)
        write_frame(stdout, body)


if __name__ == "__main__":
    main()
