"""Running executions inside a test (with ``no_dispatch``: the test in control of
when they run)."""

from channels.db import database_sync_to_async

from executions.engine.runner import run_execution
from executions.models import Execution, ExecutionEvent
from tests.factories import make_execution, make_user, make_workflow


@database_sync_to_async
def create(definition: dict, input_data: dict | None = None) -> Execution:
    user = make_user()
    return make_execution(user, make_workflow(user, definition), input_data or {})


@database_sync_to_async
def stored(execution_id) -> list[dict]:
    """The execution's event log as dicts: type, seq, created_at and the data."""
    return [
        {"type": e.type, "seq": e.seq, "created_at": e.created_at, **e.data}
        for e in ExecutionEvent.objects.filter(execution_id=execution_id).order_by("seq")
    ]


@database_sync_to_async
def reload(execution: Execution) -> Execution:
    return Execution.objects.prefetch_related("nodes").get(id=execution.id)


async def run(definition: dict, input_data: dict | None = None) -> tuple[Execution, list[dict]]:
    execution = await create(definition, input_data)
    await run_execution(execution.id)
    return await reload(execution), await stored(execution.id)
