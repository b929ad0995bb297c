"""The events one transaction stores are pushed together once it commits, in
order, and never the ones a rolled-back savepoint dropped."""

import pytest
from django.db import transaction

import realtime.signals
from executions import services
from executions.models import Workflow
from realtime.feeds import FEED_GROUP
from tests.factories import make_execution, make_user, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published(monkeypatch, no_dispatch) -> list[list[tuple[str, dict]]]:
    """Each ``publish_many`` call of the events' signal, in order."""
    calls: list[list[tuple[str, dict]]] = []
    monkeypatch.setattr(realtime.signals, "publish_many", lambda messages: calls.append(messages))
    return calls


def log(execution, message: str) -> None:
    services.execution_log(execution_id=execution.id, node_id=None, level="info", message=message)


def test_a_batch_of_creations_is_one_publish_in_order(published):
    user = make_user()
    workflow: Workflow = make_workflow(user)
    created = services.executions_create(owner=user, items=[(workflow, {})] * 50)

    assert len(published) == 1
    [messages] = published
    # Each creation's event to its execution's group, then its announcement to the feeds.
    assert [(group, message["type"]) for group, message in messages] == [
        pair
        for execution in created
        for pair in [(f"execution.{execution.id}", "execution.event"), (FEED_GROUP, "feed.changed")]
    ]
    assert [m["state"]["id"] for _, m in messages if m["type"] == "feed.changed"] == [
        str(e.id) for e in created
    ]


def test_events_of_a_rolled_back_savepoint_are_not_pushed_and_the_others_are(published):
    execution = services.execution_start(execution_id=make_execution(make_user()).id)
    published.clear()
    with transaction.atomic():
        log(execution, "before")
        with pytest.raises(RuntimeError), transaction.atomic():
            log(execution, "undone")
            raise RuntimeError
        log(execution, "after")
        assert published == []  # nothing before the commit

    sent = [m["event"] for call in published for _, m in call]
    assert [e["message"] for e in sent] == ["before", "after"]
    assert [e["seq"] for e in sent] == [execution.last_seq + 1, execution.last_seq + 2]


def test_an_event_outside_a_transaction_is_pushed_at_once(published):
    execution = services.execution_start(execution_id=make_execution(make_user()).id)
    published.clear()
    log(execution, "now")
    assert [[m["event"]["message"] for _, m in call] for call in published] == [["now"]]
