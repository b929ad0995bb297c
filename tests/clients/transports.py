"""Checks that every transport must pass, on the real server."""

import uuid

import pytest
from workflow_push import Client, FollowOptions, StreamRefused

from tests.clients.conftest import start


def assert_refusals(live, transport: str) -> None:
    """An unknown execution is refused with 4404, a bad token with 4401."""
    options = FollowOptions(transports=(transport,))
    with Client(live.url, live.token, follow_options=options) as client:
        stream = client.follow(uuid.uuid4())
        with pytest.raises(StreamRefused) as refused:
            list(stream)
        assert refused.value.code == 4404
        assert stream.state == "failed"

    with Client(live.url, "not-a-token", follow_options=options) as stranger:
        with pytest.raises(StreamRefused) as refused:
            list(stranger.follow(uuid.uuid4()))
        assert refused.value.code == 4401


def assert_resumes_a_finished_execution(live, workflow: dict, transport: str) -> None:
    """Resumed after its end, a follow gives the events after ``last_seq``, then ends."""
    execution_id = start(live, workflow)
    with Client(live.url, live.token) as client:
        whole = list(client.follow(execution_id, last_seq=0))
        options = FollowOptions(transports=(transport,))
        last = whole[-1]["seq"]

        tail = list(client.follow(execution_id, last_seq=last - 3, options=options))
        nothing = list(client.follow(execution_id, last_seq=last, options=options))

    assert whole[-1]["status"] == "completed"
    assert tail == whole[-3:]
    assert nothing == []
