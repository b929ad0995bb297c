"""What the serving process sets up for itself."""

import pytest
from channels.testing import HttpCommunicator
from django.core.signals import request_finished
from django.db.backends.signals import connection_created

from executions.runtime import close_request_connections
from project.asgi import django_asgi_app


@pytest.mark.django_db(transaction=True)
async def test_requests_served_over_asgi_leave_no_database_connection_open():
    # Each request runs in a thread that ends with it: a connection left open
    # there would never be used again.
    opened = []

    def record(sender, connection, **kwargs):
        opened.append(connection)

    connection_created.connect(record)
    request_finished.connect(close_request_connections)
    try:
        for _ in range(3):
            # An unknown token is looked up in the database, then refused.
            communicator = HttpCommunicator(
                django_asgi_app,
                "GET",
                "/api/v1/workflows",
                headers=[(b"host", b"localhost"), (b"authorization", b"Bearer no-such-token")],
            )
            response = await communicator.get_response()
            assert response["status"] == 401
            # Django closes the response, and so ends the request, after sending it.
            await communicator.wait(1)
    finally:
        request_finished.disconnect(close_request_connections)
        connection_created.disconnect(record)
    assert len(opened) == 3
    assert [wrapper.connection for wrapper in opened] == [None, None, None]
