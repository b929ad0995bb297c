"""The evaluator processes that run JMESPath expressions off the engine's loop.

A hostile expression can hold the interpreter (and its GIL) for minutes, so
expressions are evaluated in a few long-lived children
(``executions.engine.expression_evaluator``), started when first needed, at
most ``EXECUTIONS_EXPRESSION_WORKERS`` at once; evaluations beyond that wait
their turn. A child past its bound is ended and replaced. The pool is used
from any event loop (a child's pipes are watched by the loop of the
evaluation using it), and ``stop()`` ends every child: at exit, and between
tests.
"""

import asyncio
import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from executions.engine.expression_evaluator import HEADER, MEMORY_EXIT
from executions.exceptions import ExecutionsError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHILD_MODULE = "executions.engine.expression_evaluator"
# Bytes an answer may carry beside its value (the error kinds and messages).
ANSWER_OVERHEAD = 64 * 1024
READ_CHUNK = 1024 * 1024


class EvaluationFailed(ExecutionsError):
    """The evaluator answered with an error or ended; ``kind`` says which bound or error."""

    def __init__(self, kind: str, message: str = ""):
        super().__init__(message or kind)
        self.kind = kind
        self.message = message


class Evaluator:
    """One child process, used by one evaluation at a time."""

    def __init__(self, generation: int):
        self.generation = generation
        self.process = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.stdin = self.process.stdin.fileno()
        self.stdout = self.process.stdout.fileno()
        os.set_blocking(self.stdin, False)
        os.set_blocking(self.stdout, False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def call(self, request: bytes, max_answer: int) -> dict:
        """Send one request and return its answer; raise ``EvaluationFailed`` if the child ends."""
        await self._write(HEADER.pack(len(request)) + request)
        (length,) = HEADER.unpack(await self._read(HEADER.size))
        if length > max_answer:
            raise EvaluationFailed("internal", f"the evaluator's answer has {length} bytes")
        return json.loads(await self._read(length))

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.stdin, view) :]
            except BlockingIOError:
                await _ready(self.stdin, writing=True)
            except BrokenPipeError:
                raise await self.ended() from None

    async def _read(self, size: int) -> bytes:
        buffer = bytearray()
        while len(buffer) < size:
            try:
                chunk = os.read(self.stdout, min(size - len(buffer), READ_CHUNK))
            except BlockingIOError:
                await _ready(self.stdout, writing=False)
                continue
            if not chunk:
                raise await self.ended()
            buffer += chunk
        return bytes(buffer)

    async def ended(self) -> EvaluationFailed:
        """Why the child ended, once it has (its pipe closed)."""
        for _ in range(200):
            if not self.alive:
                break
            await asyncio.sleep(0.005)
        code = self.process.returncode
        if code == -signal.SIGPROF:
            return EvaluationFailed("time")
        if code == MEMORY_EXIT:
            return EvaluationFailed("memory")
        return EvaluationFailed("internal", f"the evaluator ended with status {code}")

    def end(self) -> None:
        """End the process (its pipes stay open)."""
        if self.alive:
            self.process.kill()
        self.process.wait()

    def kill(self) -> None:
        """End the process and close its pipes."""
        self.end()
        self.process.stdin.close()
        self.process.stdout.close()


async def _ready(fd: int, *, writing: bool) -> None:
    """Wait, on the running loop, until ``fd`` is writable (or readable)."""
    loop = asyncio.get_running_loop()
    add, remove = (
        (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)
    )
    waiter = loop.create_future()
    add(fd, lambda: waiter.done() or waiter.set_result(None))
    try:
        await waiter
    finally:
        remove(fd)


class EvaluatorPool:
    """Owns the evaluator children of this process; safe to use from any thread and loop."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: list[Evaluator] = []
        self._all: set[Evaluator] = set()
        # Children alive or being handed over, idle ones included.
        self._slots = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._generation = 0

    async def call(self, request: dict, *, workers: int, wall_seconds: float, max_answer: int):
        """Evaluate ``request`` in a child; the child is ended if this does not finish."""
        body = json.dumps(request, ensure_ascii=False).encode()
        evaluator = await self._acquire(workers)
        try:
            async with asyncio.timeout(wall_seconds):
                answer = await evaluator.call(body, max_answer)
        except BaseException:
            self._retire(evaluator)
            raise
        if answer.get("error") == "memory":
            self._retire(evaluator)
        else:
            self._release(evaluator)
        return answer

    async def _acquire(self, workers: int) -> Evaluator:
        with self._lock:
            while self._idle:
                evaluator = self._idle.pop()
                if evaluator.alive:
                    return evaluator
                self._all.discard(evaluator)
                self._slots -= 1
            start = self._slots < max(1, workers)
            if start:
                self._slots += 1
            else:
                loop = asyncio.get_running_loop()
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
        if start:
            return self._start()
        try:
            handed = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_back(waiter.result())
            raise
        return handed if handed is not None else self._start()

    def _start(self) -> Evaluator:
        try:
            evaluator = Evaluator(self._generation)
        except OSError as exc:
            self._hand_back(None)
            raise EvaluationFailed("internal", f"no evaluator process could start: {exc}") from exc
        with self._lock:
            self._all.add(evaluator)
        return evaluator

    def _release(self, evaluator: Evaluator) -> None:
        """Give a healthy child to the next waiter, or keep it idle."""
        if evaluator.generation != self._generation or not evaluator.alive:
            return self._retire(evaluator)
        self._hand_back(evaluator)

    def _retire(self, evaluator: Evaluator) -> None:
        """End a child that broke or overran; its slot goes to the next waiter."""
        evaluator.kill()
        with self._lock:
            self._all.discard(evaluator)
            if evaluator.generation != self._generation:
                return
        self._hand_back(None)

    def _hand_back(self, item: Evaluator | None) -> None:
        """Hand a child (or, with None, the right to start one) to a waiter."""
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                if not waiter.done() and not loop.is_closed():
                    loop.call_soon_threadsafe(self._give, waiter, item)
                    return
            if item is None:
                self._slots -= 1
            else:
                self._idle.append(item)

    def _give(self, waiter: asyncio.Future, item: Evaluator | None) -> None:
        if waiter.done():
            self._hand_back(item)  # that evaluation gave up meanwhile
        else:
            waiter.set_result(item)

    def stop(self) -> None:
        """End every child; evaluations running now fail, later ones start new children."""
        with self._lock:
            self._generation += 1
            idle, busy = self._idle, self._all.difference(self._idle)
            waiters, self._waiters = list(self._waiters), deque()
            self._idle, self._all, self._slots = [], set(), len(waiters)
        for loop, waiter in waiters:
            # Each waiter may start a child of its own.
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._give, waiter, None)
        for evaluator in idle:
            evaluator.kill()
        for evaluator in busy:
            # Its evaluation, watching its pipes, closes them when it sees the end.
            evaluator.end()

    def pids(self) -> list[int]:
        """The process ids of the children alive now."""
        with self._lock:
            return [e.process.pid for e in self._all if e.alive]


evaluator_pool = EvaluatorPool()
atexit.register(evaluator_pool.stop)
