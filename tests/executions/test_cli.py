"""The terminal client's rendering: node lines, and the in-place progress bar on a terminal."""

import io

from executions.cli import Screen, node_line


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
