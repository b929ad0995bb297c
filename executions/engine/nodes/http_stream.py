"""How the http_request node streams a response body to the node's streams as it arrives.

``text/event-stream`` is read as server-sent events, ``application/x-ndjson``
and ``application/jsonl`` as one JSON value a line, anything else as text.
With ``format: "openai"`` only the text of each chat completion chunk
(``choices[0].delta.content``) is streamed, and an event stream must end with
``data: [DONE]``.
"""

import codecs
import contextlib
import json
import re
from collections.abc import AsyncGenerator

import httpx

from executions.engine.context import NodeContext
from executions.exceptions import NodeFailed

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl"})
SHOWN_CHARACTERS = 200
_SSE_LINE_END = re.compile(r"\r\n|\r|\n")
_NDJSON_LINE_END = re.compile(r"\n")


async def stream_body(
    ctx: NodeContext, response: httpx.Response, chunks: AsyncGenerator[bytes, None], *, openai: bool
) -> dict:
    """Stream the decoded ``chunks`` of ``response`` to ``ctx``; the output's body keys."""
    parser = stream_parser(ctx, response, openai=openai)
    arrived = 0
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                arrived += len(chunk)
                if await parser.feed(chunk):
                    return parser.output()
        except httpx.HTTPError as exc:
            with contextlib.suppress(NodeFailed):
                # A cut-off last event that cannot be read: the break is the error to show.
                await parser.finish(broken=True)
            raise NodeFailed(parser.broke(arrived, str(exc) or type(exc).__name__)) from exc
    await parser.finish(broken=False)
    if not parser.complete:
        raise NodeFailed(parser.broke(arrived, "the stream ended before data: [DONE]"))
    return parser.output()


def stream_parser(ctx: NodeContext, response: httpx.Response, *, openai: bool) -> "TextStream":
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "text/event-stream":
        return EventStream(ctx, openai=openai)
    if content_type in NDJSON_TYPES:
        return JsonLinesStream(ctx, openai=openai)
    return TextStream(ctx, response.encoding or "utf-8")


def delta_content(chunk: object) -> str:
    """``choices[0].delta.content`` of an OpenAI chat completion chunk, or ``""``."""
    try:
        content = chunk["choices"][0]["delta"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def parse_json(text: str, where: str) -> object:
    """``text`` as JSON; ``NodeFailed`` shows ``where`` it was and its first characters."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        shown = text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."
        raise NodeFailed(
            f"{where} of the response stream is not JSON ({exc}): {shown!r}; "
            "the server must send one JSON value there."
        ) from exc


class LineSplitter:
    """Cuts text that arrives in pieces into lines; a line waits for its end."""

    def __init__(self, line_end: re.Pattern):
        self.line_end = line_end
        self.partial: list[str] = []
        self.after_cr = False

    def feed(self, text: str) -> list[str]:
        """The lines that ``text`` completes."""
        if self.after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across pieces
        if not text:
            return []
        self.after_cr = text.endswith("\r") and bool(self.line_end.fullmatch("\r"))
        *lines, rest = self.line_end.split(text)
        if lines:
            lines[0] = "".join([*self.partial, lines[0]])
            self.partial = []
        if rest:
            self.partial.append(rest)
        return lines

    def rest(self) -> list[str]:
        """The last line, when the text ended without a line end."""
        rest, self.partial = "".join(self.partial), []
        return [rest] if rest else []


class TextStream:
    """A body of any other type: each decoded piece goes to ``ctx.stream`` as it arrives."""

    complete = True
    kept = "the text streamed so far is"

    def __init__(self, ctx, encoding: str):
        self.ctx = ctx
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.pieces: list[str] = []

    async def feed(self, data: bytes) -> bool:
        """Take the next decoded bytes; ``True`` once the stream says it is done."""
        await self.text(self.decoder.decode(data))
        return False

    async def finish(self, *, broken: bool) -> None:
        """Called once the body ends (``broken``: before its end); streams what is left."""
        if not broken:
            await self.text(self.decoder.decode(b"", final=True))

    def output(self) -> dict:
        return {"text": "".join(self.pieces)}

    def broke(self, arrived: int, reason: str) -> str:
        return (
            f"the response stream broke after {arrived} bytes: {reason}; "
            f"{self.kept} kept in the node's streams."
        )

    async def text(self, piece: str) -> None:
        if piece:
            self.pieces.append(piece)
            await self.ctx.stream(piece)


class LineStream(TextStream):
    """A UTF-8 body read line by line; subclasses say what a line means."""

    line_end: re.Pattern

    def __init__(self, ctx, *, openai: bool):
        super().__init__(ctx, "utf-8-sig")
        self.openai = openai
        self.lines = LineSplitter(self.line_end)
        self.done = False

    async def feed(self, data: bytes) -> bool:
        await self.take(self.lines.feed(self.decoder.decode(data)))
        return self.done

    async def finish(self, *, broken: bool) -> None:
        if not broken:
            await self.take(self.lines.feed(self.decoder.decode(b"", final=True)))
        await self.take(self.lines.rest())

    async def take(self, lines: list[str]) -> None:
        for line in lines:
            if self.done:
                return
            await self.line(line)

    async def line(self, line: str) -> None:
        raise NotImplementedError


class EventStream(LineStream):
    """Server-sent events: each event's data goes to ``ctx.stream``."""

    line_end = _SSE_LINE_END

    def __init__(self, ctx, *, openai: bool):
        super().__init__(ctx, openai=openai)
        self.data: list[str] = []
        self.events = 0

    @property
    def complete(self) -> bool:
        return self.done or not self.openai

    async def finish(self, *, broken: bool) -> None:
        await super().finish(broken=broken)
        if not self.done:
            await self.dispatch()  # a last event without the blank line after it

    async def line(self, line: str) -> None:
        if not line:
            await self.dispatch()
            return
        name, _, value = line.partition(":")
        # Comments (":...") and the event, id and retry fields are not streamed.
        if name == "data":
            self.data.append(value.removeprefix(" "))

    async def dispatch(self) -> None:
        if not self.data:
            return
        data, self.data = "\n".join(self.data), []
        self.events += 1
        if not self.openai:
            await self.text(data)
        elif data.strip() == "[DONE]":
            self.done = True
        else:
            await self.text(delta_content(parse_json(data, f"the data of event {self.events}")))


class JsonLinesStream(LineStream):
    """One JSON value a line: each goes to ``ctx.stream_json`` (its text, for ``openai``)."""

    line_end = _NDJSON_LINE_END
    kept = "the values streamed so far are"

    def __init__(self, ctx, *, openai: bool):
        super().__init__(ctx, openai=openai)
        self.values: list = []
        self.count = 0
        if openai:
            self.kept = TextStream.kept

    def output(self) -> dict:
        return super().output() if self.openai else {"json": self.values}

    async def finish(self, *, broken: bool) -> None:
        if broken:
            self.lines.rest()  # a cut-off last line is not a value
        await super().finish(broken=broken)

    async def line(self, line: str) -> None:
        self.count += 1
        if not line.strip():
            return
        value = parse_json(line, f"line {self.count}")
        if self.openai:
            await self.text(delta_content(value))
        else:
            self.values.append(value)
            await self.ctx.stream_json(value)
