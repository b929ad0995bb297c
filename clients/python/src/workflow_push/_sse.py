"""Server-sent events, line by line, as the HTML standard parses them."""

from dataclasses import dataclass, field


@dataclass
class ServerSentEvent:
    event: str
    data: str
    id: str | None


@dataclass
class EventStreamParser:
    """Fed the lines of a ``text/event-stream`` body (without their line endings);
    ``feed`` returns each event when the blank line that ends it arrives."""

    last_id: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None  # "retry" and unknown fields are ignored

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event=event, data="\n".join(data), id=self.last_id)
