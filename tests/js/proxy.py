"""A small HTTP proxy in front of the test server, as a network in the way would be.

``mode`` says what it does, and may change while connections are open:

* ``"pass"``: everything goes through as it comes;
* ``"refuse-upgrade"``: a WebSocket handshake is answered 403 by the proxy
  itself; plain HTTP (event streams, long-polls) goes through as it comes;
* ``"buffer"``: a handshake is passed on and its 101 answered, but no frame
  of the server's reaches the client any more; an HTTP answer reaches it only
  once complete (an event stream: never while it lasts).

It also serves files of its own under ``/__test__/`` (the pages and modules a
test loads), so that they share the proxy's origin with the API.
"""

import asyncio
import mimetypes
import threading
from pathlib import Path

TYPES = {".js": "text/javascript", ".html": "text/html", ".map": "application/json"}


class Proxy:
    def __init__(self, upstream_port: int, files: dict[str, Path]):
        self.upstream_port = upstream_port
        #: ``/__test__/<prefix>/<path>`` is served from ``files[prefix] / path``.
        self.files = files
        #: Pages by name, served at ``/__test__/page/<name>``.
        self.pages: dict[str, str] = {}
        self.mode = "pass"
        #: The handshakes the proxy refused or passed on, as (mode, path).
        self.upgrades: list[tuple[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Proxy":
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(5)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _serve(self):
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request_line, *lines = head.decode("latin-1").split("\r\n")
        target = request_line.split(" ")[1]
        upgrade = any(
            line.lower().startswith("upgrade:") and "websocket" in line.lower() for line in lines
        )
        try:
            if target.startswith("/__test__/"):
                await self._file(writer, target)
            elif upgrade:
                self.upgrades.append((self.mode, target))
                if self.mode == "refuse-upgrade":
                    await self._answer(writer, 403, b"text/plain", b"no websockets here")
                else:
                    await self._forward(reader, writer, head, upgrade=True)
            else:
                await self._forward(reader, writer, close_after(request_line, lines), upgrade=False)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _file(self, writer, target: str) -> None:
        _, _, prefix, rest = target.split("?")[0].split("/", 3)
        if prefix == "page" and rest in self.pages:
            return await self._answer(writer, 200, b"text/html", self.pages[rest].encode())
        root = self.files.get(prefix)
        path = (root / rest).resolve() if root else None
        if path is None or not path.is_file() or root.resolve() not in path.parents:
            return await self._answer(writer, 404, b"text/plain", b"not found")
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        await self._answer(writer, 200, kind.encode(), path.read_bytes())

    async def _answer(self, writer, status: int, kind: bytes, body: bytes) -> None:
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            % (status, kind, len(body))
            + body
        )
        await writer.drain()

    async def _forward(self, reader, writer, head: bytes, *, upgrade: bool) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(head)
        to_server = asyncio.ensure_future(pipe(reader, up_writer))
        try:
            if upgrade:  # the handshake's answer goes through in every mode
                writer.write(await up_reader.readuntil(b"\r\n\r\n"))
                await writer.drain()
            await self._answer_back(up_reader, writer, to_server)
        finally:
            to_server.cancel()
            up_writer.close()

    async def _answer_back(self, up_reader, writer, to_server) -> None:
        """The server's bytes to the client, or held while buffering; the client going
        away ends it."""
        held = []
        while True:
            reading = asyncio.ensure_future(up_reader.read(65536))
            done, _ = await asyncio.wait({reading, to_server}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:
                reading.cancel()
                return  # the client closed its side
            data = reading.result()
            if not data:
                break
            if self.mode == "buffer":
                held.append(data)
                continue
            writer.write(b"".join(held) + data)
            held = []
            await writer.drain()
        writer.write(b"".join(held))
        await writer.drain()


def close_after(request_line: str, lines: list[str]) -> bytes:
    """The request's head with ``Connection: close``: one request per connection, so
    that each answer ends where its connection does."""
    kept = [line for line in lines if line and not line.lower().startswith("connection:")]
    return ("\r\n".join([request_line, *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


async def pipe(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
