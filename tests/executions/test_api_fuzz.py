"""The REST API, fuzzed from its own OpenAPI schema: no input gets a server error."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.factories import make_execution, make_token, make_user, make_workflow

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def api_schema():
    # As Django's test client does: a request must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/schema", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owner_token() -> str:
    """A user with a workflow and an execution, so that lists and lookups have data."""
    owner = make_user("owner")
    make_execution(owner, make_workflow(owner))
    return make_token(owner)


def test_no_request_to_any_operation_gets_a_server_error(api_schema, owner_token):
    # schemathesis' own pytest plugin does not run on this pytest; its
    # strategies, calls and checks are used directly instead.
    headers = {"Authorization": f"Bearer {owner_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "POST /api/v1/auth/token",
        "POST /api/v1/ws-tickets",
        "POST /api/v1/workflows",
        "POST /api/v1/executions",
        "POST /api/v1/executions/batch",
    }

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
