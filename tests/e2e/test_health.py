"""/healthz and /readyz on the real server, with its database and its Redis taken away."""

import asyncio
import json
import threading
import urllib.error
import urllib.request

import pytest

from bench import processes
from tests.services import require_postgres_and_redis

pytestmark = pytest.mark.services


class Forwarder:
    """A TCP port that forwards to PostgreSQL until ``stop``: a database that can go down."""

    def __init__(self, target_port: int = 5432):
        self.target_port = target_port
        self.port = processes.free_port()
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.links: set = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)

    async def _start(self):
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def _stop(self):
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _link(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links.update({writer, up_writer})

        async def pipe(source, sink):
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def get(server, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def deployment(tmp_path):
    require_postgres_and_redis()
    running = processes.distributed(tmp_path, servers=1, workers=0)
    try:
        yield running
    finally:
        running.stop()


def test_ready_only_while_the_database_and_redis_answer(deployment):
    [server] = deployment.servers
    forwarder = Forwarder()
    forwarder.start()
    server.stop()
    database = deployment.env["DATABASE_URL"].replace(":5432/", f":{forwarder.port}/")
    server.env = {**deployment.env, "DATABASE_URL": database}
    server.start()
    assert get(server, "/readyz") == (200, {"status": "ok"})

    forwarder.stop()
    status, body = get(server, "/readyz")
    assert status == 503 and set(body["failed"]) == {"database"}, body
    assert get(server, "/healthz") == (200, {"status": "ok"})  # the process still answers
    forwarder.start()
    assert get(server, "/readyz") == (200, {"status": "ok"})

    deployment.redis.stop()
    status, body = get(server, "/readyz")
    assert status == 503 and set(body["failed"]) == {"redis"}, body
    assert get(server, "/healthz") == (200, {"status": "ok"})
    deployment.redis.start()
    for _ in range(20):  # the layer reconnects
        if get(server, "/readyz")[0] == 200:
            break
    assert get(server, "/readyz") == (200, {"status": "ok"})


def test_not_ready_before_the_migrations_are_applied(tmp_path):
    require_postgres_and_redis()
    database = processes.create_database()
    try:
        env = processes.base_env(DATABASE_URL=database, EXECUTIONS_RUNNER="inprocess")
        server = processes.Server(port=processes.free_port(), env=env, log=tmp_path / "server.log")
        server.start()
        try:
            status, body = get(server, "/readyz")
            assert status == 503 and "migrations not applied" in body["failed"]["database"]
            assert "manage.py migrate" in body["failed"]["database"]
            processes.manage(env, "migrate", "--verbosity", "0")
            assert get(server, "/readyz") == (200, {"status": "ok"})
        finally:
            server.stop(crash=True)
    finally:
        processes.drop_database(database)
