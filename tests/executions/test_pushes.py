"""What the domain asks of the push side: registered by it, done at once without it."""

import pytest

from executions import pushes
from tests.conftest import bearer_client
from tests.factories import chain, make_execution, make_user, make_workflow, node


def test_the_push_side_registers_itself_at_start_up():
    from realtime import longpoll, publish

    assert pushes._after_pushes is publish.after_pushes
    assert pushes.events_page_waiter() is longpoll.events_page_when_recorded


def test_without_a_push_side_after_pushes_calls_at_once(monkeypatch):
    monkeypatch.setattr(pushes, "_after_pushes", None)
    calls = []
    pushes.after_pushes(lambda: calls.append("started"))
    assert calls == ["started"]


@pytest.mark.django_db
def test_without_a_push_side_a_long_poll_answers_at_once(monkeypatch, settings):
    monkeypatch.setattr(pushes, "_events_page_waiter", None)
    settings.REALTIME_MAX_SOCKETS_PER_USER = 0  # a push side would refuse it (429)
    user = make_user()
    execution = make_execution(user, make_workflow(user, chain(node("a", "log", message="x"))))
    response = bearer_client(user).get(f"/api/v1/executions/{execution.id}/events?after=9&wait=5")
    assert (response.status_code, response.json()) == (200, {"next": None, "results": []})
