"""A TCP proxy between the client and the real server that misbehaves on purpose:
refuses WebSocket upgrades, drops or holds back a socket's events, cuts sockets,
or never answers event streams."""

import asyncio
import json
import threading
from dataclasses import dataclass, field

REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass
class Frame:
    raw: bytes
    opcode: int
    payload: bytes

    def seq(self) -> int | None:
        """The seq of the event this text frame carries; None for other frames."""
        if self.opcode != 1:
            return None
        try:
            message = json.loads(self.payload)
        except ValueError:
            return None
        return message.get("seq") if isinstance(message, dict) else None


@dataclass
class Proxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_port``, on a loop of its own (a thread).

    * ``refuse_websocket``: every upgrade is answered 403, as some proxies do;
    * ``late_seqs``: socket events with these seqs are held back, and passed on right
      after the next event that is not (once each);
    * ``cuts``: the Nth socket is cut (TCP closed, no close frame) once ``cuts[N]``
      events went through it; later sockets are left alone;
    * ``silent_after``: the first socket passes this many events, then nothing either way;
    * ``silent_paths``: requests whose path holds one of these are never answered.

    ``requests`` holds the first line of every request, in order.
    """

    upstream_port: int
    refuse_websocket: bool = False
    late_seqs: set[int] = field(default_factory=set)
    cuts: list[int] = field(default_factory=list)
    silent_after: int | None = None
    silent_paths: tuple[str, ...] = ()
    requests: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._sockets = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def websocket_requests(self) -> list[str]:
        return [line.split()[1] for line in self.requests if "/api/v1/ws/" in line]

    def __enter__(self) -> "Proxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info) -> None:
        async def stop():
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self, reader, writer) -> None:
        upstream = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            upgrade = b"\r\nupgrade: websocket" in head.lower()
            if upgrade and self.refuse_websocket:
                writer.write(REFUSAL)
                return await writer.drain()
            if any(path in line for path in self.silent_paths):
                await reader.read()  # until the client gives up
                return
            upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            if upgrade:
                return await self._socket(head, (reader, writer), upstream)
            upstream[1].write(head)
            await asyncio.gather(self._pipe(reader, upstream[1]), self._pipe(upstream[0], writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].transport.abort()

    async def _socket(self, head: bytes, client, upstream) -> None:
        number, self._sockets = self._sockets, self._sockets + 1
        # Without permessage-deflate each frame stands alone: one can be dropped.
        lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"sec-websocket-ext")]
        upstream[1].write(b"\r\n".join(lines))
        client[1].write(await upstream[0].readuntil(b"\r\n\r\n"))
        cut = self.cuts[number] if number < len(self.cuts) else None
        silent = self.silent_after if number == 0 else None
        passed = {"events": 0}
        held: list[Frame] = []
        inbound = asyncio.ensure_future(self._pipe(client[0], upstream[1], passed, silent))
        try:
            while True:
                frame = await read_frame(upstream[0])
                seq = frame.seq()
                if seq in self.late_seqs:
                    self.late_seqs.discard(seq)
                    held.append(frame)
                    continue
                if silent is not None and passed["events"] >= silent:
                    continue
                for late in [frame, *held]:
                    client[1].write(late.raw)
                held = []
                await client[1].drain()
                if seq is not None:
                    passed["events"] += 1
                if cut is not None and passed["events"] >= cut:
                    return  # the caller closes the client's connection: no close frame
        finally:
            inbound.cancel()

    async def _pipe(self, reader, writer, passed=None, silent=None) -> None:
        while data := await reader.read(65536):
            if silent is not None and passed["events"] >= silent:
                continue
            writer.write(data)
            await writer.drain()
        writer.close()


async def read_frame(reader) -> Frame:
    head = await reader.readexactly(2)
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    extra = b""
    if length == 126:
        extra = await reader.readexactly(2)
        length = int.from_bytes(extra, "big")
    elif length == 127:
        extra = await reader.readexactly(8)
        length = int.from_bytes(extra, "big")
    mask = await reader.readexactly(4) if head[1] & 0x80 else b""
    sent = await reader.readexactly(length)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(sent)) if mask else sent
    return Frame(raw=head + extra + mask + sent, opcode=opcode, payload=payload)
