"""Built-in node types; importing this package registers them."""

from executions.engine.nodes import delay, fail, log, transform

__all__ = ["delay", "fail", "log", "transform"]
