"""JMESPath expressions of the ``transform`` and ``condition`` nodes, bounded.

At validation an expression is bounded in length and nesting and must
compile. At run time it is evaluated in an evaluator process
(``expression_pool``), bounded in CPU time, memory and the size of its
result; past a bound the node's attempt fails with ``NodeFailed`` naming the
bound and its setting, and nothing else in this process waits for it.
"""

from typing import Any

import jmespath
from django.conf import settings
from django.core import checks
from django.utils.translation import gettext as _
from jmespath.exceptions import JMESPathError

from executions.engine.expression_pool import ANSWER_OVERHEAD, EvaluationFailed, evaluator_pool
from executions.exceptions import ExecutionsError, NodeFailed

# An evaluation the machine gives too little CPU to finish within its CPU
# time is ended after this many times that time, plus WALL_EXTRA_SECONDS.
WALL_FACTOR = 3
WALL_EXTRA_SECONDS = 2
QUOTES = "'\"`"
OPENING, CLOSING = "([{", ")]}"


# The evaluator process itself takes about 16 MiB of address space.
MIN_MEMORY_BYTES = 32 * 1024 * 1024


@checks.register
def check_expression_settings(**kwargs) -> list[checks.Error]:
    """Bounds that would make every expression fail, or none be bounded."""
    minimums = {
        "EXECUTIONS_EXPRESSION_MAX_LENGTH": 1,
        "EXECUTIONS_EXPRESSION_MAX_DEPTH": 1,
        "EXECUTIONS_EXPRESSION_TIMEOUT": 0.001,
        "EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES": MIN_MEMORY_BYTES,
        "EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES": 1,
        "EXECUTIONS_EXPRESSION_WORKERS": 1,
    }
    return [
        checks.Error(
            f"{name} is {getattr(settings, name)!r}; it must be at least {minimum}.",
            id="executions.E101",
        )
        for name, minimum in minimums.items()
        if not getattr(settings, name) >= minimum
    ]


class InvalidExpression(ExecutionsError):
    """The expression is too long, nested too deeply, or not valid JMESPath."""


def nesting_depth(expression: str) -> int:
    """The deepest nesting of (), [] and {} outside quoted strings and literals."""
    depth = deepest = 0
    quote, escaped = None, False
    for char in expression:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in QUOTES:
            quote = char
        elif char in OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif char in CLOSING:
            depth -= 1
    return deepest


def expression_check(expression: str) -> None:
    """Raise ``InvalidExpression`` unless ``expression`` is within bounds and compiles."""
    max_length = settings.EXECUTIONS_EXPRESSION_MAX_LENGTH
    if len(expression) > max_length:
        raise InvalidExpression(
            _(
                "has %(length)d characters; at most %(max)d are allowed "
                "(EXECUTIONS_EXPRESSION_MAX_LENGTH). Split it over several transform nodes."
            )
            % {"length": len(expression), "max": max_length}
        )
    max_depth = settings.EXECUTIONS_EXPRESSION_MAX_DEPTH
    if nesting_depth(expression) > max_depth:
        raise InvalidExpression(
            _(
                "nests (), [] and {} %(depth)d deep; at most %(max)d levels are allowed "
                "(EXECUTIONS_EXPRESSION_MAX_DEPTH). Split it over several transform nodes."
            )
            % {"depth": nesting_depth(expression), "max": max_depth}
        )
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        raise InvalidExpression(
            _("not a valid JMESPath expression: %(error)s") % {"error": exc}
        ) from exc
    except RecursionError as exc:
        raise InvalidExpression(
            _("nests too deeply to compile (repeated '!' or brackets); write it with less nesting.")
        ) from exc


async def expression_search(expression: str, data: Any) -> Any:
    """The expression's result on ``data``; raise ``NodeFailed`` past a bound."""
    answer = await _evaluate(expression, data, truthy=False)
    return answer["value"]


async def expression_is_truthy(expression: str, data: Any) -> bool:
    """Whether the expression's result on ``data`` is truthy (JMESPath's falsiness)."""
    answer = await _evaluate(expression, data, truthy=True)
    return answer["truthy"]


async def _evaluate(expression: str, data: Any, *, truthy: bool) -> dict:
    cpu_seconds = settings.EXECUTIONS_EXPRESSION_TIMEOUT
    output_bytes = settings.EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES
    request = {
        "expression": expression,
        "data": data,
        "truthy": truthy,
        "cpu_seconds": cpu_seconds,
        "memory_bytes": settings.EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES,
        "output_bytes": output_bytes,
    }
    wall_seconds = cpu_seconds * WALL_FACTOR + WALL_EXTRA_SECONDS
    try:
        answer = await evaluator_pool.call(
            request,
            workers=settings.EXECUTIONS_EXPRESSION_WORKERS,
            wall_seconds=wall_seconds,
            max_answer=output_bytes + ANSWER_OVERHEAD,
        )
    except TimeoutError as exc:
        raise NodeFailed(
            f"expression did not finish within {wall_seconds:g} s: the machine gave it too "
            f"little of its {cpu_seconds:g} s of CPU time (EXECUTIONS_EXPRESSION_TIMEOUT)."
        ) from exc
    except EvaluationFailed as exc:
        raise NodeFailed(failure_message(expression, exc.kind, exc.message)) from exc
    if "error" in answer:
        raise NodeFailed(failure_message(expression, answer["error"], answer.get("message", "")))
    return answer


def failure_message(expression: str, kind: str, detail: str) -> str:
    """What the user reads when an evaluation failed with ``kind``."""
    if kind == "jmespath":
        return f"expression {expression!r} failed: {detail}"
    if kind == "time":
        return (
            f"expression used more than {settings.EXECUTIONS_EXPRESSION_TIMEOUT:g} s of CPU "
            "time (EXECUTIONS_EXPRESSION_TIMEOUT); simplify it or give it a smaller input."
        )
    if kind == "memory":
        return (
            f"expression needed more than {settings.EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES} "
            "bytes of memory (EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES); simplify it or give it "
            "a smaller input."
        )
    if kind == "output":
        return (
            f"expression's result is larger than {settings.EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES}"
            " bytes of JSON (EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES); select less of the input."
        )
    if kind == "depth":
        return f"expression {expression!r} nests too deeply for its input to evaluate."
    return f"expression {expression!r} could not be evaluated: {detail or kind}"
