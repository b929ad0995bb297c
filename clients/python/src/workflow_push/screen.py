"""Executions' events as terminal lines: what ``workflow-push watch`` and ``manage.py
watch`` print."""

import json
from collections.abc import Iterable
from typing import TextIO

from workflow_push.types import JSONObject

BAR_WIDTH = 30
TERMINAL = frozenset({"completed", "failed", "cancelled"})
# C0 and C1 control characters (and DEL), as Python would write them: text a
# workflow wrote cannot move the cursor, recolour or retitle the terminal, and
# one message stays on one line.
ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
STREAMS_CUT = "streams cut: the execution's stored output reached its limit; no more is recorded"


def printable(text: object) -> str:
    """``text`` with its control characters escaped, e.g. ESC as ``\\x1b``."""
    return str(text).translate(ESCAPES)


def progress_line(message: JSONObject) -> str:
    """A ``status`` message as a progress bar with the status and message."""
    filled = BAR_WIDTH * message["progress"] // 100
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    status, text = printable(message["status"]), printable(message["message"])
    return f"[{bar}] {message['progress']:3d}% {status:<9} {text}"


def node_line(message: JSONObject) -> str:
    """A ``node`` message, e.g. ``  node wait completed (1.00 s)``."""
    line = f"  node {printable(message['node_id'])} {printable(message['status'])}"
    details = []
    if message.get("attempt", 0) > 1:
        details.append(f"attempt {message['attempt']}")
    if message.get("duration") is not None:
        details.append(f"{message['duration']:.2f} s")
    if details:
        line += f" ({', '.join(details)})"
    if message.get("error"):
        line += f": {printable(message['error'])}"
    return line


def outcome_lines(message: JSONObject) -> list[str]:
    """What a terminal ``status`` message adds below the bar: the result or the error."""
    if message["status"] == "completed":
        return [f"result: {json.dumps(message['result'])}"]
    if message["status"] == "failed":
        return [f"error: {printable(message['error'])}"]
    return []


def printable_text(text: object) -> str:
    """Streamed text with its control characters escaped, except newlines, which stay."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def chunk_header(message: JSONObject) -> str:
    """The line above a ``chunk`` of another stream than the one before, ``[node_id · stream]``."""
    return f"[{printable(message['node_id'])} · {printable(message['stream'])}]"


def chunk_text(message: JSONObject) -> str:
    """A ``chunk``'s data as the follow view writes it: text as it came, a JSON
    stream's pieces a line each."""
    if isinstance(message["data"], list):
        return "".join(printable(json.dumps(piece)) + "\n" for piece in message["data"])
    return printable_text(message["data"])


def chunk_line(message: JSONObject) -> str:
    """A ``chunk`` on one line, e.g. ``  chunk [write · output] Hello\\n``."""
    data = message["data"]
    text = printable(json.dumps(data) if isinstance(data, list) else data)
    cut = f" ({STREAMS_CUT})" if message.get("stream_truncated") else ""
    return f"  chunk {chunk_header(message)} {text}{cut}"


def render(message: JSONObject) -> str:
    """One message as terminal lines (the progress bar as a line of its own)."""
    if message["type"] == "status":
        lines = [progress_line(message)]
        if message["status"] in TERMINAL:
            lines += outcome_lines(message)
        return "\n".join(lines)
    if message["type"] == "node":
        return node_line(message)
    if message["type"] == "log":
        source = printable(message.get("node_id") or "engine")
        level, text = printable(message["level"]), printable(message["message"])
        return f"  log {level:<7} [{source}] {text}"
    if message["type"] == "chunk":
        return chunk_line(message)
    if message["type"] == "error":
        return f"error: {printable(message['message'])}"
    return json.dumps(message)


class Screen:
    """Prints a stream. On a terminal the progress bar stays on the last line and is
    redrawn in place; elsewhere (a pipe, a file) each message is a line of its own,
    except a status line that would repeat the line just above it.

    Streamed output (``chunk``) is written as it comes, under a ``[node_id · stream]``
    line whenever it is not the continuation of the chunk just above. On a terminal
    the bar is drawn again below it once its line is ended (by the text itself or by
    the next other message)."""

    def __init__(self, out: TextIO):
        self.out = out
        self.live = out.isatty()
        self.bar = ""
        # The (node_id, stream) of the chunk just above, and whether its last line
        # is still open (the cursor is at its end; on a terminal, no bar below).
        self.stream: tuple[str, str] | None = None
        self.open_line = False

    def show(self, message: JSONObject) -> None:
        if message["type"] == "chunk":
            return self._show_chunk(message)
        self._end_line()
        if not self.live:
            self._print(message)
        elif message["type"] != "status":
            self.stream = None
            self._write(f"\r\x1b[2K{render(message)}\n{self.bar}")
        elif message["status"] in TERMINAL:
            lines = [progress_line(message), *outcome_lines(message)]
            self.bar, self.stream = "", None
            self._write("\r\x1b[2K" + "\n".join(lines) + "\n")
        else:
            self.bar = progress_line(message)
            self._write(f"\r\x1b[2K{self.bar}")

    def _show_chunk(self, message: JSONObject) -> None:
        text = chunk_text(message)
        key = (message["node_id"], message["stream"])
        # On a terminal the bar is on the cursor's line unless a chunk's line is open.
        out = "\r\x1b[2K" if self.live and not self.open_line else ""
        if key != self.stream:
            out += ("\n" if self.open_line else "") + chunk_header(message) + "\n"
            self.open_line = False
        if text:
            self.open_line = not text.endswith("\n")
        out += text
        if message.get("stream_truncated"):
            out += ("\n" if self.open_line else "") + f"  {STREAMS_CUT}\n"
            self.open_line = False
        if self.live and not self.open_line:
            out += self.bar
        if not self.live:
            self.bar = ""  # a status line after this one is shown again
        self.stream = key
        self._write(out)

    def _end_line(self) -> None:
        """End the open line of streamed text, so that the next message starts a line."""
        if self.open_line:
            self._write("\n")
            self.open_line = False

    def _print(self, message: JSONObject) -> None:
        text = render(message)
        if message["type"] == "status" and text == self.bar:
            return  # nothing a reader can see changed (e.g. a finer progress fraction)
        self.bar = text if message["type"] == "status" else ""
        self.stream = None
        self._write(text + "\n")

    def close(self) -> None:
        """Called when the stream ends: leave the cursor on a fresh line."""
        if self.open_line:
            self._end_line()
        elif self.live and self.bar:
            self._write("\n")
        self.bar = ""

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def show_stream(events: Iterable[JSONObject], out: TextIO) -> JSONObject:
    """Print ``events`` (a follow) on ``out`` until they end; return the last status."""
    screen = Screen(out)
    last_status: JSONObject = {}
    try:
        for event in events:
            if event["type"] == "status":
                last_status = event
            screen.show(event)
    finally:
        screen.close()
    return last_status
