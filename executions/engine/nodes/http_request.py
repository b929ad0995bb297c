import asyncio
import json
import ssl
import zlib
from collections.abc import AsyncGenerator

import httpx
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from executions.engine.context import NodeContext
from executions.engine.fields import StrictBooleanField, StrictCharField, StrictFloatField
from executions.engine.nodes.http_safety import (
    IPAddress,
    address_refusal,
    checked_addresses,
    header_problem,
    host_allowed,
    host_refusal,
    literal_address,
    parse_url,
    sendable_headers,
)
from executions.engine.nodes.http_stream import stream_body
from executions.engine.registry import NodeType, register
from executions.exceptions import NodeFailed

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
FORMATS = ["text", "openai"]
# Response encodings the node decodes itself, within the size limit.
DECODED_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}


class HttpRequestParams(serializers.Serializer):
    method = serializers.ChoiceField(choices=METHODS, default="GET")
    url = StrictCharField(max_length=2000)
    headers = serializers.DictField(child=StrictCharField(allow_blank=True), default=dict)
    json = serializers.JSONField(required=False)
    timeout_seconds = StrictFloatField(min_value=0.1, max_value=300, default=30)
    stream = StrictBooleanField(default=False)
    format = serializers.ChoiceField(
        choices=FORMATS,
        default="text",
        error_messages={
            "invalid_choice": format_lazy(
                gettext_lazy('"{{input}}" is not a format; use one of {formats}.'),
                formats=FORMATS,
            )
        },
    )

    def validate_url(self, value: str) -> str:
        try:
            url = parse_url(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        if not host_allowed(url):
            raise serializers.ValidationError(host_refusal(url))
        # A numeric host is checked now; a name only once resolved, when the node runs.
        address = literal_address(url.host)
        try:
            refusal = address_refusal(url.host, address) if address else None
        except NodeFailed as exc:
            raise serializers.ValidationError(str(exc)) from exc
        if refusal is not None:
            raise serializers.ValidationError(refusal)
        return value

    def validate_headers(self, value: dict) -> dict:
        problems = [header_problem(name, text) for name, text in value.items()]
        if any(problems):
            raise serializers.ValidationError(" ".join(p for p in problems if p))
        return value


@register
class HttpRequest(NodeType):
    """Calls an allowed HTTP endpoint at a checked address without holding a thread.

    Output: ``{"status", "headers", "json"}`` when the response is JSON, else
    ``{"status", "headers", "text"}``. Redirects are not followed. With
    ``stream: true`` a 2xx body goes to the node's streams as it arrives (see
    ``http_stream``): server-sent events and text as text, NDJSON as JSON values,
    only the completion text with ``format: "openai"``; the output holds it all.
    """

    type_name = "http_request"
    summary = gettext_lazy(
        "Calls an allowed HTTP endpoint at a checked address without holding a thread."
    )
    params_serializer = HttpRequestParams

    async def run(self, ctx, params, data):
        try:
            url = parse_url(params["url"])
        except ValueError as exc:
            raise NodeFailed(f"url {exc}") from exc
        if not host_allowed(url):
            raise NodeFailed(host_refusal(url))
        deadline = min(params["timeout_seconds"], settings.EXECUTIONS_HTTP_MAX_SECONDS)
        try:
            async with asyncio.timeout(deadline):
                addresses = await checked_addresses(url)
                return await _call_first(ctx, params, url, addresses)
        except TimeoutError:
            raise NodeFailed(
                f"{params['method']} {params['url']} did not finish within {deadline:g} s "
                "(the node's timeout_seconds, at most EXECUTIONS_HTTP_MAX_SECONDS)."
            ) from None
        except httpx.HTTPError as exc:
            raise NodeFailed(f"{params['method']} {params['url']} failed: {exc!r}") from exc


async def _call_first(
    ctx: NodeContext, params: dict, url: httpx.URL, addresses: list[IPAddress]
) -> dict:
    """Call the first of the checked addresses that accepts a connection."""
    for address in addresses[:-1]:
        try:
            return await _call(ctx, params, url, address)
        except httpx.ConnectError:
            continue
    return await _call(ctx, params, url, addresses[-1])


async def _call(ctx: NodeContext, params: dict, url: httpx.URL, address: IPAddress) -> dict:
    """One request to ``address``, with the URL's host in ``Host`` and TLS verification."""
    headers = httpx.Headers(sendable_headers(params["headers"]))
    headers.setdefault("Accept-Encoding", "gzip, deflate")
    headers["Host"] = url.netloc.decode("ascii")
    extensions = {} if literal_address(url.host) else {"sni_hostname": url.raw_host.decode()}
    extra = {"json": params["json"]} if "json" in params else {}
    async with httpx.AsyncClient(timeout=None, trust_env=False, verify=tls_context()) as client:
        request = client.build_request(
            params["method"],
            url.copy_with(host=str(address)),
            headers=headers,
            extensions=extensions,
            **extra,
        )
        response = await client.send(request, stream=True)
        try:
            body = await _response_body(ctx, params, response)
        finally:
            await response.aclose()
    return {"status": response.status_code, "headers": dict(response.headers), **body}


async def _response_body(ctx: NodeContext, params: dict, response: httpx.Response) -> dict:
    """The output's body keys: streamed to ``ctx`` when asked and the call succeeded."""
    head = params["method"] == "HEAD"
    if not (params.get("stream") and response.is_success and not head):
        return _body(response, await _read_body(response, head=head))
    reader = _body_reader(response, head=False)
    chunks = _decoded_chunks(response, reader)
    return await stream_body(ctx, response, chunks, openai=params.get("format") == "openai")


def tls_context() -> ssl.SSLContext:
    """How HTTPS certificates are checked: against certifi's CAs and the URL's host name."""
    return httpx.create_ssl_context(trust_env=False)


async def _read_body(response: httpx.Response, *, head: bool) -> bytes:
    body = bytearray()
    async for decoded in _decoded_chunks(response, _body_reader(response, head=head)):
        body.extend(decoded)
    return bytes(body)


def _body_reader(response: httpx.Response, *, head: bool) -> "BodyReader":
    """A reader for ``response``'s body; ``NodeFailed`` if its declared length is too large."""
    limit = settings.EXECUTIONS_HTTP_MAX_RESPONSE_BYTES
    declared = response.headers.get("content-length", "")
    # A HEAD response's Content-Length is that of the body it does not send.
    if not head and declared.isdigit() and int(declared) > limit:
        raise NodeFailed(_too_large(limit))
    return BodyReader(response.headers.get("content-encoding", "identity"), limit)


async def _decoded_chunks(
    response: httpx.Response, reader: "BodyReader"
) -> AsyncGenerator[bytes, None]:
    """The body as it arrives, decoded and counted against the reader's limit."""
    async for raw in response.aiter_raw():
        yield reader.feed(raw)
    yield reader.finish()


class BodyReader:
    """Collects a response body, decoding gzip or deflate, and fails once it passes ``limit``.

    Each chunk is decoded at most ``limit`` bytes at a time, so a small
    compressed chunk that expands to far more never takes more memory than that.
    ``feed`` and ``finish`` return the decoded bytes; the caller keeps them.
    """

    def __init__(self, content_encoding: str, limit: int):
        self.encoding = content_encoding.strip().lower()
        if self.encoding not in (*DECODED_ENCODINGS, "identity", ""):
            raise NodeFailed(
                f"response has Content-Encoding {content_encoding!r}; the node decodes "
                "only gzip and deflate: ask the server for one of those (Accept-Encoding)."
            )
        self.limit = limit
        self.raw_size = 0
        self.size = 0
        self.decoder = self._new_decoder()

    def feed(self, raw: bytes) -> bytes:
        self.raw_size += len(raw)
        if self.raw_size > self.limit:
            raise NodeFailed(_too_large(self.limit))
        if self.decoder is None:
            return self._counted(raw)
        try:
            return self._decode(raw)
        except zlib.error as exc:
            raise NodeFailed(f"response body is not valid {self.encoding}: {exc}.") from exc

    def finish(self) -> bytes:
        if self.decoder is None:
            return b""
        return self._counted(self.decoder.flush(self.limit - self.size + 1))

    def _decode(self, data: bytes) -> bytes:
        pieces = []
        while data:
            pieces.append(self._counted(self.decoder.decompress(data, self.limit - self.size + 1)))
            data = self.decoder.unconsumed_tail
            if self.decoder.eof and self.decoder.unused_data:
                # Another gzip member follows the first.
                data, self.decoder = self.decoder.unused_data, self._new_decoder()
        return b"".join(pieces)

    def _counted(self, decoded: bytes) -> bytes:
        self.size += len(decoded)
        if self.size > self.limit:
            raise NodeFailed(_too_large(self.limit))
        return decoded

    def _new_decoder(self):
        wbits = DECODED_ENCODINGS.get(self.encoding)
        if wbits is None:
            return None
        # wbits 0 for deflate: whatever window the zlib header names.
        return zlib.decompressobj(wbits)


def _too_large(limit: int) -> str:
    return (
        f"response is larger than {limit} bytes (EXECUTIONS_HTTP_MAX_RESPONSE_BYTES); "
        "ask for less, or an operator can raise the limit."
    )


def _body(response: httpx.Response, body: bytes) -> dict:
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", ""):
        try:
            return {"json": json.loads(text)}
        except ValueError:
            pass
    return {"text": text}
