"""The sockets' own messages: ``error``, ``pong``, and a message as a frame's text.

An execution's events, and the snapshot a subscription starts from, are
shaped by ``executions.wire``.
"""

import json


def error_message(text: str) -> dict:
    """An ``error`` saying ``text`` (a lazy translation is put in the active language)."""
    return {"type": "error", "message": str(text)}


def encode(message: dict) -> str:
    """A message as the text of a frame, as ``send_json`` would send it."""
    return json.dumps(message)


def pong_message() -> dict:
    return {"type": "pong"}
