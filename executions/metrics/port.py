"""A worker's metrics on a port of its own (``manage.py worker --metrics-port``).

A worker serves no HTTP otherwise, so this is a small listener in a thread of
its own: ``GET /metrics`` answers the page to a scrape that may read it
(``metrics_access_problem``, with the peer's address), anything else 404.
"""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from executions.metrics.access import metrics_access_problem
from executions.metrics.registry import metrics_page

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"


class MetricsRequest(BaseHTTPRequestHandler):
    """One scrape of the port."""

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != METRICS_PATH:
            return self.answer(404, b"Metrics are at /metrics.\n")
        problem = metrics_access_problem(
            address=self.client_address[0], authorization=self.headers.get("Authorization")
        )
        if problem is not None:
            return self.answer(403, problem.encode() + b"\n")
        body, content_type = metrics_page()
        self.answer(200, body, content_type)

    def answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        logger.debug("metrics scrape: " + format, *args)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True


class MetricsServer6(MetricsServer):
    address_family = socket.AF_INET6


class MetricsPort:
    """This process's metrics listener: ``start`` on a port, ``stop``; one at a time."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int] | None:
        """Where it listens (the port chosen, for port 0), or None when stopped."""
        server = self._server
        return None if server is None else server.server_address[:2]

    def start(self, *, port: int, address: str = "127.0.0.1") -> None:
        """Listen on ``address:port``; raises ``OSError`` when it cannot."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("The metrics port is open already; stop it first.")
            kind = MetricsServer6 if ":" in address else MetricsServer
            server = kind((address, port), MetricsRequest)
            threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()
            self._server = server
        logger.info("Serving metrics on %s:%s%s", *server.server_address[:2], METRICS_PATH)

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


metrics_port = MetricsPort()
