"""Built-in node types; importing this package registers them."""

from executions.engine.nodes import condition, delay, fail, http_request, log, transform

__all__ = ["condition", "delay", "fail", "http_request", "log", "transform"]
