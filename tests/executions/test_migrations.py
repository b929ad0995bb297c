"""Migrations that move data: existing rows come out as the code now expects them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("executions", "0003_leases")]
AFTER = [("executions", "0004_execution_definition")]


@pytest.fixture
def migrated_back():
    """The database as of ``BEFORE``; put back at the latest migrations afterwards."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    yield executor.loader.project_state(BEFORE).apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_existing_executions_get_their_workflows_definition(migrated_back):
    apps = migrated_back
    owner = apps.get_model("auth", "User").objects.create(username="old")
    Workflow = apps.get_model("executions", "Workflow")
    Execution = apps.get_model("executions", "Execution")
    first = Workflow.objects.create(owner=owner, name="a", definition={"nodes": [{"id": "a"}]})
    second = Workflow.objects.create(owner=owner, name="b", definition={"nodes": [{"id": "b"}]})
    ids = {
        Execution.objects.create(workflow=first, owner=owner).id: first.definition,
        Execution.objects.create(workflow=first, owner=owner).id: first.definition,
        Execution.objects.create(workflow=second, owner=owner).id: second.definition,
    }

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    Execution = executor.loader.project_state(AFTER).apps.get_model("executions", "Execution")
    assert dict(Execution.objects.values_list("id", "definition")) == ids
