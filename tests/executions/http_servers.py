"""Local HTTP(S) servers and a stand-in resolver for the http_request node's tests."""

import contextlib
import datetime
import functools
import gzip
import json
import socket
import ssl
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BOMB_EXPANDED_BYTES = 64 * 1024 * 1024
DRIP_BYTES = 40
DRIP_INTERVAL = 0.25
# In a ``Script``'s writes: wait until the client has streamed one more piece.
WAIT = None


@functools.cache
def gzip_bomb() -> bytes:
    """One gzip member of about 64 KiB that expands to 64 MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(BOMB_EXPANDED_BYTES // len(block))]
    return b"".join([*parts, compressor.flush()])


class Handler(BaseHTTPRequestHandler):
    server: "Server"

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path in self.server.scripts:
            self.play(self.server.scripts[self.path])
            return
        route = getattr(self, "route_" + self.path.strip("/").replace("-", "_"), None)
        if route is None:
            self.reply(404, "text/plain", b"no such path")
        else:
            route()

    def do_POST(self):
        self.server.hits.append(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"got": json.loads(body), "header": self.headers.get("X-Token")}
        self.reply(201, "application/json", json.dumps(echo).encode())

    def route_json(self):
        self.reply(200, "application/json", json.dumps({"hello": "world"}).encode())

    def route_text(self):
        self.reply(404, "text/plain; charset=utf-8", b"nothing here")

    def route_big(self):
        self.reply(200, "text/plain", b"x" * 5000)

    def route_slow(self):
        self.server.stopping.wait(1)
        self.reply(200, "text/plain", b"late")

    def route_echo(self):
        """What reached the server: the request's headers and the address it came in on."""
        seen = {
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "address": self.connection.getsockname()[0],
            "accept_encoding": self.headers.get_all("Accept-Encoding"),
        }
        self.reply(200, "application/json", json.dumps(seen).encode())

    def route_gzip(self):
        body = gzip.compress(json.dumps({"hello": "gzip"}).encode())
        self.reply(200, "application/json", body, {"Content-Encoding": "gzip"})

    def route_deflate(self):
        body = zlib.compress(b"deflated text")
        self.reply(200, "text/plain", body, {"Content-Encoding": "deflate"})

    def route_brotli(self):
        self.reply(200, "text/plain", b"\x0b\x02\x80hi\x03", {"Content-Encoding": "br"})

    def route_gzip_bomb(self):
        self.reply(200, "text/plain", gzip_bomb(), {"Content-Encoding": "gzip"})

    def route_drip(self):
        """A body sent one byte at a time, each ``DRIP_INTERVAL`` apart."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(DRIP_BYTES))
        self.end_headers()
        for _ in range(DRIP_BYTES):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            if self.server.stopping.wait(DRIP_INTERVAL):
                return

    def route_redirect(self):
        self.reply(302, "text/plain", b"", {"Location": "http://169.254.169.254/latest/"})

    def play(self, script: "Script") -> None:
        """Send ``script`` as a chunked body, one chunk a write."""
        self.protocol_version = "HTTP/1.1"
        self.send_response(script.status)
        self.send_header("Content-Type", script.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        for name, value in script.headers.items():
            self.send_header(name, value)
        self.end_headers()
        ending = [b""] if script.complete else []
        try:
            for write in [*script.writes, *ending]:
                carry_on = self.wait_for_client() if write is WAIT else self.chunk(write)
                if not carry_on:
                    return
        except OSError:
            return
        if script.hold:
            self.server.stopping.wait(10)

    def chunk(self, data: bytes) -> bool:
        """Write one chunk (the last one when ``data`` is empty); ``False`` once stopping."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        return not self.server.stopping.wait(self.server.write_interval)

    def wait_for_client(self) -> bool:
        """Wait until the client has streamed one more piece; ``False`` once stopping."""
        while not self.server.client_streamed.acquire(timeout=0.05):
            if self.server.stopping.is_set():
                return False
        return True

    def reply(self, status, content_type, body, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@dataclass
class Script:
    """A streamed response: each of ``writes`` is one chunk of the body, or ``WAIT``."""

    content_type: str
    writes: list[bytes | None]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # False: the body's last chunk is never sent.
    complete: bool = True
    # After the writes, keep the connection open until the server stops (else close it).
    hold: bool = False


class Server(ThreadingHTTPServer):
    """A server on loopback that records the paths it was asked for."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext | None = None):
        super().__init__(address, Handler)
        self.hits: list[str] = []
        self.stopping = threading.Event()
        self.sni_names: list[str | None] = []
        self.scripts: dict[str, Script] = {}
        # Released by the test's node context each time the node streams a piece.
        self.client_streamed = threading.Semaphore(0)
        self.write_interval = 0.0
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni_names.append(name)
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}"


@contextlib.contextmanager
def serving(host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
    server = Server((host, port), tls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@dataclass
class FakeDns:
    """Answers for made-up host names, in order: lookup N gets ``answers[min(N, last)]``."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def resolve(self, host: str, port) -> list[tuple]:
        count = self.lookups.count(host)
        self.lookups.append(host)
        options = self.answers[host]
        addresses = options[min(count, len(options) - 1)]
        return [_addrinfo(address, int(port or 0)) for address in addresses]


def _addrinfo(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@dataclass
class Certificates:
    """A test CA, and a server certificate from it for ``host`` only."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())


def make_certificates(directory: Path, host: str) -> Certificates:
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    leaf = (
        _builder(leaf_name, ca_name, key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificates(ca.public_bytes(serialization.Encoding.PEM), cert_file, key_file)


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
