"""Hostile JMESPath expressions on workers: the other runs of a worker keep
their claims (renewed on the same loop) and finish once."""

import asyncio

import pytest

from tests.e2e.test_cluster import collect, query, start
from tests.e2e.test_expressions_server import CPU_BOMB
from tests.factories import chain, node

pytestmark = pytest.mark.services


async def test_a_hostile_expression_costs_no_other_run_on_its_worker_its_claim(cluster):
    server = cluster.servers[0]
    bombs = [
        start(server, chain(node("cpu", "transform", expression=CPU_BOMB)), {}) for _ in range(4)
    ]
    # Longer than the cluster's 3 s lease: a worker frozen meanwhile would lose them.
    waits = [start(server, chain(node("wait", "delay", seconds=5))) for _ in range(10)]

    results = await asyncio.wait_for(
        asyncio.gather(*(collect(server, e, "?last_seq=0") for e in bombs + waits)), 60
    )

    ends = [messages[-1] for messages, _ in results]
    assert [end["status"] for end in ends] == ["failed"] * 4 + ["completed"] * 10
    assert all("(EXECUTIONS_EXPRESSION_TIMEOUT)" in end["error"] for end in ends[:4])
    rows = query(cluster, "SELECT id::text, runs, claimed_by FROM executions_execution")
    claimed = {execution_id: by for execution_id, _, by in rows}
    assert {runs for _, runs, _ in rows} == {1}
    bomb_workers = {claimed[e] for e in bombs}
    assert any(claimed[e] in bomb_workers for e in waits), "no run shared a worker with a bomb"
