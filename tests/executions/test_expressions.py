"""Bounded JMESPath expressions: evaluation in evaluator processes, and validation."""

import asyncio
import os
import signal

import jmespath
import pytest
from django.test import override_settings

from executions.engine.expression_pool import evaluator_pool
from executions.engine.expressions import check_expression_settings, expression_search
from executions.exceptions import NodeFailed
from executions.models import Workflow
from tests.executions.engine_helpers import run
from tests.factories import chain, node


def doubled(times: int) -> str:
    """``[@,@] | [@,@] | ...``: a result that doubles with each pipe, by shared references."""
    return " | ".join(["[@,@]"] * times)


# The result has 2**20 leaves: 4 MiB of JSON from 20 x 7 characters.
OUTPUT_BOMB = doubled(20)
# Compares two distinct trees of 2**32 equal leaves: hours of CPU, no memory.
CPU_BOMB = f"{{p: {doubled(32)}, q: {doubled(32)}}} | p == q"
# A string of 2**14 copies of a 100 kB input: 1.6 GB.
MEMORY_BOMB = f"to_string({doubled(14)})"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def node_failures(events: list[dict]) -> list[tuple[str, str]]:
    return [
        (e["node_id"], e["error"])
        for e in events
        if e["type"] == "node" and e["status"] == "failed"
    ]


# --- evaluation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "data"),
    [
        ("a.b", {"a": {"b": [1, 2]}}),
        ("items[?x > `1`].name", {"items": [{"x": 1, "name": "a"}, {"x": 2, "name": "b"}]}),
        ("{k: v, both: [k, v]}", {"k": "é\u2028", "v": 1.5}),
        ("@", {"nested": [[{"deep": None}], True, -3, "x"]}),
        ("sort_by(people, &age)[].name", {"people": [{"age": 3, "name": "c"}, {"age": 1}]}),
        ("missing", {}),
        (doubled(3), "x"),
    ],
)
async def test_a_valid_expression_gives_the_same_result_as_in_process(expression, data):
    assert await expression_search(expression, data) == jmespath.search(expression, data)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_a_result_past_the_output_bound_fails_the_node_naming_the_setting():
    execution, events = await run(
        chain(node("bomb", "transform", expression=OUTPUT_BOMB)), {"s": "x"}
    )

    assert execution.status == "failed"
    assert execution.error == (
        "Node 'bomb' failed: expression's result is larger than 1048576 bytes of JSON "
        "(EXECUTIONS_EXPRESSION_MAX_OUTPUT_BYTES); select less of the input."
    )
    assert node_failures(events) == [("bomb", execution.error.removeprefix("Node 'bomb' failed: "))]
    assert [e["status"] for e in events if e["type"] == "node"] == ["running", "failed"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
@override_settings(EXECUTIONS_EXPRESSION_TIMEOUT=0.5)
async def test_an_expression_past_its_cpu_time_fails_the_node_and_its_evaluator_is_replaced():
    definition = chain(node("bomb", "transform", expression=CPU_BOMB))
    execution, _ = await run(definition, {"s": "x"})

    assert execution.status == "failed"
    assert execution.error == (
        "Node 'bomb' failed: expression used more than 0.5 s of CPU time "
        "(EXECUTIONS_EXPRESSION_TIMEOUT); simplify it or give it a smaller input."
    )
    assert evaluator_pool.pids() == []
    assert await expression_search("a", {"a": 1}) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
@override_settings(EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES=128 * 1024 * 1024)
async def test_an_expression_past_its_memory_fails_the_node_naming_the_setting():
    execution, _ = await run(
        chain(node("bomb", "condition", expression=MEMORY_BOMB)), {"text": "x" * 100_000}
    )

    assert execution.status == "failed"
    assert execution.error == (
        "Node 'bomb' failed: expression needed more than 134217728 bytes of memory "
        "(EXECUTIONS_EXPRESSION_MAX_MEMORY_BYTES); simplify it or give it a smaller input."
    )
    assert evaluator_pool.pids() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_a_node_timeout_during_an_evaluation_ends_its_evaluator():
    hanging = {**node("bomb", "condition", expression=CPU_BOMB), "timeout_seconds": 0.3}
    first = asyncio.create_task(run(chain(hanging), {"s": "x"}))
    while not evaluator_pool.pids():
        await asyncio.sleep(0.01)
    (pid,) = evaluator_pool.pids()

    execution, _ = await first

    assert execution.error == "Node 'bomb' failed: timed out after 0.3 s"
    assert not alive(pid)


@override_settings(EXECUTIONS_EXPRESSION_WORKERS=2)
async def test_evaluations_beyond_the_pool_wait_their_turn():
    seen: set[int] = set()

    async def evaluate(n: int) -> int:
        seen.update(evaluator_pool.pids())
        return await expression_search("n", {"n": n})

    assert await asyncio.gather(*(evaluate(n) for n in range(50))) == list(range(50))
    seen.update(evaluator_pool.pids())
    assert len(seen) == 2


async def test_stopping_the_pool_ends_its_evaluators():
    await asyncio.gather(expression_search("@", 1), expression_search("@", 2))
    pids = evaluator_pool.pids()
    assert pids

    evaluator_pool.stop()

    assert evaluator_pool.pids() == []
    assert not any(alive(pid) for pid in pids)
    assert await expression_search("@", 3) == 3


async def test_stopping_the_pool_mid_evaluation_fails_that_evaluation_only():
    running = asyncio.ensure_future(expression_search(CPU_BOMB, "x"))
    while not evaluator_pool.pids():
        await asyncio.sleep(0.01)
    (pid,) = evaluator_pool.pids()

    evaluator_pool.stop()

    with pytest.raises(NodeFailed, match="could not be evaluated: the evaluator ended"):
        await running
    assert not alive(pid)
    assert await expression_search("@", 1) == 1


@override_settings(EXECUTIONS_EXPRESSION_TIMEOUT=0.1)
async def test_an_evaluator_that_gets_no_cpu_is_ended_by_the_wall_clock_bound():
    assert await expression_search("@", 1) == 1
    (pid,) = evaluator_pool.pids()
    os.kill(pid, signal.SIGSTOP)  # as if the machine gave it no CPU at all

    with pytest.raises(NodeFailed) as failed:
        await expression_search("@", 2)

    assert str(failed.value) == (
        "expression did not finish within 2.3 s: the machine gave it too little of its "
        "0.1 s of CPU time (EXECUTIONS_EXPRESSION_TIMEOUT)."
    )
    assert not alive(pid)
    assert await expression_search("@", 3) == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_dispatch")
async def test_a_jmespath_error_still_fails_the_node_with_its_message():
    execution, _ = await run(chain(node("t", "transform", expression="abs(@)")), "x")

    assert execution.status == "failed"
    assert execution.error.startswith(
        "Node 't' failed: expression 'abs(@)' failed: In function abs()"
    )


# --- validation ---------------------------------------------------------------


def nested(depth: int) -> str:
    return "(" * depth + "a" + ")" * depth


REJECTED = {
    "over-long": (
        "a" * 1001,
        "node 't' (transform): params.expression: has 1001 characters; at most 1000 are "
        "allowed (EXECUTIONS_EXPRESSION_MAX_LENGTH).",
    ),
    "over-nested": (
        nested(21),
        "node 't' (transform): params.expression: nests (), [] and {} 21 deep; at most 20 "
        "levels are allowed (EXECUTIONS_EXPRESSION_MAX_DEPTH).",
    ),
    "over-nested in brackets": ("[" * 21 + "]" * 21, "(EXECUTIONS_EXPRESSION_MAX_DEPTH)"),
    "recursing at compile": ("!" * 900 + "a", "nests too deeply to compile"),
}


@pytest.mark.parametrize(("expression", "expected"), REJECTED.values(), ids=REJECTED)
@pytest.mark.parametrize("node_type", ["transform", "condition"])
def test_create_rejects_an_unbounded_expression_with_400(api, expression, expected, node_type):
    definition = chain(node("t", node_type, expression=expression))

    response = api.post("/api/v1/workflows", {"name": "n", "definition": definition}, format="json")

    assert response.status_code == 400
    (message,) = response.json()["definition"]
    assert expected.replace("(transform)", f"({node_type})") in message, message
    assert not Workflow.objects.exists()


@override_settings(EXECUTIONS_EXPRESSION_MAX_LENGTH=10_000, EXECUTIONS_EXPRESSION_MAX_DEPTH=10_000)
@pytest.mark.parametrize("expression", [nested(2000), "[" * 2000 + "]" * 2000])
def test_update_rejects_an_expression_that_recurses_at_compile_with_400(api, user, expression):
    created = api.post(
        "/api/v1/workflows",
        {"name": "n", "definition": chain(node("t", "transform", expression="a"))},
        format="json",
    ).json()
    definition = chain(node("t", "transform", expression=expression))

    response = api.put(
        f"/api/v1/workflows/{created['id']}", {"name": "n", "definition": definition}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["definition"] == [
        "node 't' (transform): params.expression: nests too deeply to compile (repeated '!' "
        "or brackets); write it with less nesting."
    ]
    assert Workflow.objects.get().definition["nodes"][0]["params"] == {"expression": "a"}


@pytest.mark.parametrize(
    "expression",
    [
        "a" * 1000,
        nested(20),
        "'((((((((((((((((((((((('",
        '"[[[[[[[[[[[[[[[[[[[[[[[[["',
        '`"[[[[[[[[[[[[[[[[[[[[[[["`',
    ],
)
def test_expressions_at_the_bounds_are_accepted(api, expression):
    definition = chain(node("t", "transform", expression=expression))

    response = api.post("/api/v1/workflows", {"name": "n", "definition": definition}, format="json")

    assert response.status_code == 201, response.json()


# --- settings -----------------------------------------------------------------


def test_the_default_settings_pass_the_system_check():
    assert check_expression_settings() == []


@override_settings(EXECUTIONS_EXPRESSION_TIMEOUT=0, EXECUTIONS_EXPRESSION_WORKERS=0)
def test_settings_that_cannot_work_fail_the_system_check():
    assert [error.msg for error in check_expression_settings()] == [
        "EXECUTIONS_EXPRESSION_TIMEOUT is 0; it must be at least 0.001.",
        "EXECUTIONS_EXPRESSION_WORKERS is 0; it must be at least 1.",
    ]
