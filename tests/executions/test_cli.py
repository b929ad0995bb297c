"""The terminal client's rendering: node lines, and the in-place progress bar on a terminal."""

import io

from executions.cli import Screen, node_line, render, whole_result


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def status(progress: int, state: str = "running", **fields) -> dict:
    return {
        "type": "status",
        "progress": progress,
        "status": state,
        "message": fields.pop("message", "m"),
        **fields,
    }


def test_node_lines():
    base = {"type": "node", "node_id": "wait", "attempt": 1}

    assert node_line({**base, "status": "running"}) == "  node wait running"
    assert node_line({**base, "status": "completed", "duration": 1.0}) == (
        "  node wait completed (1.00 s)"
    )
    assert node_line(
        {**base, "status": "failed", "attempt": 2, "duration": 0.25, "error": "x"}
    ) == ("  node wait failed (attempt 2, 0.25 s): x")
    assert node_line({**base, "status": "skipped", "attempt": 0}) == "  node wait skipped"


def test_on_a_terminal_the_bar_is_redrawn_in_place_below_the_lines():
    out = Terminal()
    screen = Screen(out)

    screen.show(status(0, "pending", message="Waiting"))
    screen.show({"type": "log", "node_id": None, "level": "info", "message": "hi"})
    screen.show(status(50))
    screen.show(status(100, "completed", result={"a": 1}, message="Done"))
    screen.close()

    clear = "\r\x1b[2K"
    bar0 = "[" + "." * 30 + "]   0% pending   Waiting"
    bar50 = "[" + "#" * 15 + "." * 15 + "]  50% running   m"
    bar100 = "[" + "#" * 30 + "] 100% completed Done"
    assert out.getvalue() == (
        f"{clear}{bar0}"
        f"{clear}  log info    [engine] hi\n{bar0}"
        f"{clear}{bar50}"
        f'{clear}{bar100}\nresult: {{"a": 1}}\n'
    )


def test_elsewhere_every_message_is_a_line():
    out = io.StringIO()
    screen = Screen(out)

    screen.show(status(50))
    screen.show(status(50))  # the same line again: not repeated
    screen.show({"type": "node", "node_id": "n", "status": "running", "attempt": 1})
    screen.show(status(50))
    screen.close()

    bar = "[" + "#" * 15 + "." * 15 + "]  50% running   m"
    assert out.getvalue().splitlines() == [bar, "  node n running", bar]


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x9b1m\r\nsecond\tline\x7f"
ESCAPED = "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred\\x9b1m\\r\\nsecond\\tline\\x7f"


def test_text_from_a_workflow_is_printed_with_its_control_characters_escaped():
    out = io.StringIO()
    screen = Screen(out)

    screen.show({"type": "log", "node_id": "n\x1b", "level": "info", "message": HOSTILE})
    screen.show(
        {"type": "node", "node_id": "n", "status": "failed", "attempt": 1, "error": HOSTILE}
    )
    screen.show(status(10, message=HOSTILE))
    screen.show({"type": "error", "message": HOSTILE})
    screen.show(status(100, "failed", message="Failed", error=HOSTILE))
    screen.close()

    assert out.getvalue().splitlines() == [
        f"  log info    [n\\x1b] {ESCAPED}",
        f"  node n failed: {ESCAPED}",
        "[" + "#" * 3 + "." * 27 + "]  10% running   " + ESCAPED,
        f"error: {ESCAPED}",
        "[" + "#" * 30 + "] 100% failed    Failed",
        f"error: {ESCAPED}",
    ]
    assert not any(ord(c) < 0x20 and c != "\n" for c in out.getvalue())


def test_on_a_terminal_only_the_screen_itself_writes_escapes():
    out = Terminal()
    screen = Screen(out)

    screen.show({"type": "log", "node_id": None, "level": "info", "message": HOSTILE})
    screen.close()

    assert out.getvalue() == f"\r\x1b[2K  log info    [engine] {ESCAPED}\n"


def test_a_cut_result_is_read_whole_over_rest(monkeypatch):
    asked = []

    def api_request(base_url, token, method, path, body=None):
        asked.append((base_url, token, method, path))
        return {"id": "e1", "result": {"whole": True}}

    monkeypatch.setattr("executions.cli.api_request", api_request)
    cut = status(100, "completed", execution_id="e1", result='{"wh…', result_truncated=True)
    cut["result_size"] = 17

    assert whole_result("http://h", "t", cut) == {
        **status(100, "completed", execution_id="e1"),
        "result": {"whole": True},
    }
    assert asked == [("http://h", "t", "GET", "/api/v1/executions/e1")]
    whole = status(100, "completed", execution_id="e1", result={"a": 1})
    assert whole_result("http://h", "t", whole) is whole
    assert len(asked) == 1


def test_a_feed_line_shows_the_state_with_its_text_escaped():
    from executions.cli_many import feed_line

    state = {
        "id": "58cfdf5b-16b8-43d1-bd36-d46799b1e9ec",
        "status": "running",
        "progress": 20,
        "workflow_name": "de\x1b[2Jmo",
        "message": "Finished node 'greet'\n(1/5 done)",
        "tags": ["nightly", "eu"],
    }
    assert feed_line(state) == (
        "[58cfdf5b] running    20% de\\x1b[2Jmo: Finished node 'greet'\\n(1/5 done) #nightly #eu"
    )


def chunk(data, node_id: str = "write", stream: str = "output", **fields) -> dict:
    return {"type": "chunk", "node_id": node_id, "stream": stream, "data": data, **fields}


def test_streamed_text_is_written_as_it_comes_under_a_line_naming_its_stream():
    out = io.StringIO()
    screen = Screen(out)

    screen.show(chunk("Hello, "))
    screen.show(chunk(f"wor\x1b[2Jld\n{HOSTILE}"))
    screen.show(chunk(["a\x1b", {"n": 1}], node_id="rows", stream="items"))
    screen.show(chunk("back"))
    screen.show({"type": "node", "node_id": "write", "status": "completed", "attempt": 1})
    screen.show(chunk("after\n"))
    screen.close()

    assert out.getvalue() == (
        "[write · output]\n"
        "Hello, wor\\x1b[2Jld\n"
        "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred\\x9b1m\\r\nsecond\\tline\\x7f\n"
        "[rows · items]\n"
        '"a\\u001b"\n'
        '{"n": 1}\n'
        "[write · output]\n"
        "back\n"
        "  node write completed\n"
        "[write · output]\n"
        "after\n"
    )


def test_on_a_terminal_the_bar_is_drawn_again_below_streamed_text_once_its_line_ends():
    out = Terminal()
    screen = Screen(out)

    screen.show(status(50))
    screen.show(chunk("Hello, "))
    screen.show(chunk("world\n"))
    screen.show(status(60))
    screen.show(chunk("more"))
    screen.show({"type": "log", "node_id": None, "level": "info", "message": "hi"})
    screen.show(chunk("last", stream_truncated=True))
    screen.show(status(100, "completed", result=None, message="Done"))
    screen.close()

    clear = "\r\x1b[2K"
    bar50 = "[" + "#" * 15 + "." * 15 + "]  50% running   m"
    bar60 = "[" + "#" * 18 + "." * 12 + "]  60% running   m"
    bar100 = "[" + "#" * 30 + "] 100% completed Done"
    cut = "  streams cut: the execution's stored output reached its limit; no more is recorded"
    assert out.getvalue() == (
        f"{clear}{bar50}"
        f"{clear}[write · output]\nHello, "
        f"world\n{bar50}"
        f"{clear}{bar60}"
        f"{clear}more"
        f"\n{clear}  log info    [engine] hi\n{bar60}"
        f"{clear}[write · output]\nlast\n{cut}\n{bar60}"
        f"{clear}{bar100}\nresult: null\n"
    )


def test_in_the_many_executions_view_a_chunk_is_one_line_with_its_text_escaped():
    assert render(chunk(f"two\nlines {HOSTILE}")) == (
        f"  chunk [write · output] two\\nlines {ESCAPED}"
    )
    assert render(chunk(["a", {"n": 1}], node_id="rows", stream="items\x1b")) == (
        '  chunk [rows · items\\x1b] ["a", {"n": 1}]'
    )
    assert render(chunk("end", stream_truncated=True)) == (
        "  chunk [write · output] end (streams cut: the execution's stored output reached"
        " its limit; no more is recorded)"
    )
