"""The Django admin lists executions with filters and search and shows their events."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from executions import services
from tests.factories import chain, make_execution, make_workflow, node

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/executions/execution/"


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    return client


@pytest.fixture
def executions(user, other_user):
    """A pending execution of alice's 'nightly-report' and a completed one of bob's 'ingest'."""
    report = make_workflow(user, name="nightly-report")
    ingest = make_workflow(other_user, name="ingest")
    pending = make_execution(user, report, {"day": 1})
    done = make_execution(other_user, ingest)
    services.execution_start(execution_id=done.id)
    services.execution_progress(execution_id=done.id, message="Running node 'wait' (1/2)")
    services.execution_log(execution_id=done.id, node_id="wait", level="info", message="tick")
    done = services.execution_complete(execution_id=done.id, result={"rows": 3})
    return pending, done


def page(client: Client, url: str, **params: str) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_execution_changelist_lists_every_execution(admin_client, executions):
    pending, done = executions

    html = page(admin_client, CHANGELIST)

    assert str(pending.id) in html
    assert str(done.id) in html
    for text in ["nightly-report", "ingest", "alice", "bob", "Pending", "Completed"]:
        assert text in html
    assert "2 executions" in html


@pytest.mark.parametrize(("status", "index"), [("pending", 0), ("completed", 1)])
def test_execution_changelist_filters_by_status(admin_client, executions, status, index):
    shown, hidden = executions[index], executions[1 - index]

    html = page(admin_client, f"{CHANGELIST}?status__exact={status}")

    assert str(shown.id) in html
    assert str(hidden.id) not in html
    assert "1 execution" in html


def test_execution_changelist_with_no_match_for_status(admin_client, executions):
    html = page(admin_client, f"{CHANGELIST}?status__exact=failed")

    assert all(str(execution.id) not in html for execution in executions)
    assert "0 executions" in html


@pytest.mark.parametrize(
    ("query", "index"),
    [("nightly", 0), ("bob", 1), ("Completed in", 1)],
)
def test_execution_changelist_search(admin_client, executions, query, index):
    shown, hidden = executions[index], executions[1 - index]

    html = page(admin_client, CHANGELIST, q=query)

    assert str(shown.id) in html
    assert str(hidden.id) not in html


def test_execution_changelist_search_by_pasted_id(admin_client, executions):
    pending, done = executions

    html = page(admin_client, f"{CHANGELIST}?q={done.id}")

    assert str(done.id) in html
    assert str(pending.id) not in html


def test_execution_changelist_search_and_filter_combined(admin_client, executions):
    pending, done = executions

    matching = page(admin_client, f"{CHANGELIST}?status__exact=pending&q=nightly")
    contradicting = page(admin_client, f"{CHANGELIST}?status__exact=completed&q=nightly")

    assert str(pending.id) in matching
    assert str(done.id) not in matching
    assert all(str(execution.id) not in contradicting for execution in executions)


def test_execution_change_page_shows_events_in_order(admin_client, executions):
    _, done = executions

    html = page(admin_client, f"{CHANGELIST}{done.id}/change/")

    assert "Execution events" in html
    assert 'name="events-TOTAL_FORMS" value="6"' in html
    positions = [html.index(f'id="events-{i}"') for i in range(6)]
    assert positions == sorted(positions)
    rows = [
        html[start:end] for start, end in zip(positions, [*positions[1:], len(html)], strict=True)
    ]
    for seq, row in enumerate(rows, start=1):
        assert f"<p>{seq}</p>" in row
    kinds = ["Status", "Log", "Status", "Status", "Log", "Status"]
    for row, kind in zip(rows, kinds, strict=True):
        assert f"<p>{kind}</p>" in row
    for row, text in zip(
        rows,
        [
            "Waiting to run",
            "Execution started",
            "Started",
            "Running node &#x27;wait&#x27; (1/2)",
            "tick",
            "Completed",
        ],
        strict=True,
    ):
        assert text in row
    assert "&quot;rows&quot;: 3" in html  # the result, in the execution's fields


def test_execution_change_page_is_read_only(admin_client, executions):
    pending, _ = executions

    html = page(admin_client, f"{CHANGELIST}{pending.id}/change/")

    assert str(pending.id) in html
    for name in ["status", "message", "events-0-seq", "events-0-data", "events-0-DELETE"]:
        assert f'name="{name}"' not in html
    assert 'name="events-MAX_NUM_FORMS" value="0"' in html
    assert "nightly-report" in html


def test_executions_cannot_be_added_in_admin(admin_client, executions):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_workflow_changelist_and_change_page(admin_client, user, other_user):
    first = make_workflow(user, name="nightly-report")
    make_workflow(other_user, chain(node("only", "log", message="m")), name="ingest")

    html = page(admin_client, "/admin/executions/workflow/")
    searched = page(admin_client, "/admin/executions/workflow/?q=nightly")
    change = page(admin_client, f"/admin/executions/workflow/{first.id}/change/")

    assert all(text in html for text in ["nightly-report", "ingest", "alice", "bob"])
    assert "nightly-report" in searched
    assert "ingest" not in searched
    assert str(first.id) in change
    assert "nightly-report" in change


def test_admin_requires_login(executions):
    response = Client().get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
