"""The token-streaming load: executions whose node streams small pieces at a
steady rate, as a language model streams tokens, each watched by subscribers.

Each piece (``bench_stream``) is the time it was written; a subscriber takes
every piece out of the ``chunk`` messages it receives, so a piece's latency
runs from its write (before coalescing, recording and the push) to its
arrival. Nothing may be lost: every subscriber gets every event of its
execution once, and every piece.
"""

import asyncio
import time
from dataclasses import dataclass

from bench.measure import Api, collector_paused, losses, stamp_seconds, subscribe, summary_ms
from bench.schedule import first_ticks


@dataclass(frozen=True)
class TokenSize:
    executions: int
    subscribers_per_execution: int
    pieces_per_second: float  # per execution
    seconds: float
    warmup: float


def stream_workflow(api: Api, size: TokenSize) -> str:
    count = int(size.pieces_per_second * size.seconds)
    definition = {
        "nodes": [
            {
                "id": "tokens",
                "type": "bench_stream",
                "params": {"count": count, "interval": 1 / size.pieces_per_second},
            }
        ],
        "edges": [],
    }
    body = {"name": "bench tokens", "definition": definition}
    return api.request("POST", "/api/v1/workflows", body)["id"]


async def token_phase(deployment, size: TokenSize) -> dict:
    """Every execution streams its pieces; every subscriber follows its execution."""
    api = Api(deployment.servers[0].url, deployment.token)
    workflow = stream_workflow(api, size)
    first_tick = time.time() + size.warmup
    inputs = [
        {"start_at": first_tick + offset}
        for offset in first_ticks(size.executions, 1 / size.pieces_per_second, 1.0)
    ]
    ids, _ = await api.create_executions(workflow, size.executions, inputs)
    await api.wait_started(ids)
    subscribers = [
        subscribe(
            deployment.servers[(e + s) % len(deployment.servers)].ws_url,
            deployment.token,
            f"/api/v1/ws/executions/{execution_id}?last_seq=0",
        )
        for e, execution_id in enumerate(ids)
        for s in range(size.subscribers_per_execution)
    ]
    with collector_paused():
        streams = await asyncio.gather(*subscribers)
    stored = {execution_id: api.events(execution_id) for execution_id in ids}
    per = size.subscribers_per_execution
    expected, lost, duplicated = losses(
        streams, {i: stored[ids[i // per]][-1]["seq"] for i in range(len(streams))}
    )
    chunks = [e for events in stored.values() for e in events if e["type"] == "chunk"]
    times = [stamp_seconds(e["timestamp"]) for e in chunks]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    pieces_each = int(size.pieces_per_second * size.seconds)
    return {
        "pieces_latency": summary_ms([v for s in streams for v in s.piece_latencies]),
        "pieces_expected": pieces_each * len(streams),
        "pieces_received": sum(s.pieces for s in streams),
        "expected": expected,
        "lost": lost,
        "duplicated": duplicated,
        "unfinished": sum(s.last_status != "completed" or s.close_code != 1000 for s in streams),
        "chunks": len(chunks),
        "chunks_per_second": len(chunks) / max(span, 1e-9),
        "pieces_per_chunk": pieces_each * len(ids) / max(len(chunks), 1),
        "pieces_per_second": pieces_each * len(ids) / max(span, 1e-9),
    }


def token_failures(mode: str, result: dict | None) -> list[str]:
    """Losses of the token-streaming load: any lost, duplicated or unfinished stream,
    or a piece that did not arrive."""
    if result is None:
        return []
    failures = []
    if result["lost"] or result["duplicated"] or result["unfinished"]:
        failures.append(
            f"{mode} token streaming: {result['lost']} lost, {result['duplicated']} "
            f"duplicated, {result['unfinished']} unfinished"
        )
    if result["pieces_received"] != result["pieces_expected"]:
        failures.append(
            f"{mode} token streaming: {result['pieces_received']} of "
            f"{result['pieces_expected']} pieces received"
        )
    return failures
