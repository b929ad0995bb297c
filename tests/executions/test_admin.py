"""The Django admin lists executions with filters and search, shows their events, and
cancels or reruns them."""

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from executions import services
from executions.clock import database_now
from executions.models import Execution, Worker, Workflow
from executions.services.workers import WorkerIdentity, worker_register
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


def run_action(client: Client, action: str, *executions) -> str:
    """Post an admin action for ``executions`` and return the page it leads to."""
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(e.id) for e in executions]},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_changelist_shows_progress_and_duration(admin_client, executions):
    _, done = executions

    html = page(admin_client, CHANGELIST)

    assert '<progress value="0" max="100"' in html
    assert '<progress value="100" max="100"' in html
    done.refresh_from_db()
    assert f"{done.execution_time:.2f} s" in html


def test_cancel_action_cancels_pending_and_stops_running(admin_client, executions, user):
    pending, done = executions
    running = make_execution(user)
    services.execution_start(execution_id=running.id)

    html = run_action(admin_client, "cancel_executions", pending, running, done)

    pending.refresh_from_db()
    running.refresh_from_db()
    assert pending.status == "cancelled"
    assert pending.events.order_by("-seq").first().data["status"] == "cancelled"
    # A running one is asked to stop; its runner ends it.
    assert running.status == "running"
    assert running.cancel_requested_at is not None
    last = running.events.order_by("-seq").first()
    assert last.data == {
        "node_id": None,
        "level": "info",
        "message": "Cancellation requested by admin",
    }
    assert "Asked 2 execution(s) to stop" in html
    assert "1 execution(s) had already ended" in html
    done.refresh_from_db()
    assert done.status == "completed"


def test_run_again_action_starts_the_same_workflow_with_the_same_input(admin_client, executions):
    pending, done = executions
    before = set(Execution.objects.values_list("id", flat=True))

    html = run_action(admin_client, "run_again", pending, done)

    new = Execution.objects.exclude(id__in=before)
    assert new.count() == 2
    copies = {(e.workflow_id, json.dumps(e.input_data)) for e in new}
    assert copies == {
        (pending.workflow_id, json.dumps({"day": 1})),
        (done.workflow_id, json.dumps({})),
    }
    assert {e.status for e in new} == {"pending"}
    assert {e.owner.username for e in new} == {"admin"}
    assert all(e.events.get().seq == 1 for e in new)
    assert "Started 2 new execution(s)" in html
    for execution in new:
        assert f"/admin/executions/execution/{execution.id}/change/" in html


def test_run_again_runs_the_workflows_current_definition_and_says_so(admin_client, user):
    workflow = make_workflow(user, chain(node("first", "log", message="m")))
    original = make_execution(user, workflow)
    edited = chain(node("second", "log", message="m"))
    services.workflow_update(workflow=workflow, definition=edited)

    changelist = page(admin_client, CHANGELIST)
    run_action(admin_client, "run_again", original)

    new = Execution.objects.exclude(id=original.id).get()
    assert new.definition == edited
    original.refresh_from_db()
    assert original.definition == chain(node("first", "log", message="m"))
    assert "Run again (same workflow, input and tags, the workflow&#x27;s current definition)" in (
        changelist
    )


def test_change_page_shows_the_definition_the_execution_runs(admin_client, user):
    workflow = make_workflow(user, chain(node("created_with", "log", message="m")))
    execution = make_execution(user, workflow)
    services.workflow_update(workflow=workflow, definition=chain(node("later", "log", message="m")))

    html = page(admin_client, f"{CHANGELIST}{execution.id}/change/")

    assert "created_with" in html
    assert "later" not in html


def test_run_again_stops_at_the_cap_and_says_how_many_were_not_started(
    admin_client, executions, settings
):
    pending, done = executions
    admin = User.objects.get(username="admin")
    settings.EXECUTIONS_MAX_ACTIVE_PER_USER = 1
    before = set(Execution.objects.values_list("id", flat=True))

    html = run_action(admin_client, "run_again", pending, done)

    new = Execution.objects.exclude(id__in=before)
    assert [e.owner for e in new] == [admin]
    assert "Started 1 new execution(s)" in html
    assert (
        "1 execution(s) not started: Too many active executions: you have 1 pending or "
        "running, the limit is 1 per user (EXECUTIONS_MAX_ACTIVE_PER_USER)."
    ) in html


@pytest.fixture
def staff_admin(db) -> User:
    """Staff with every permission on workflows, but no superuser."""
    staff = User.objects.create_user("editor", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__model="workflow"))
    return staff


def test_staff_change_and_delete_only_their_own_workflows_in_admin(staff_admin, user):
    client = Client()
    client.force_login(staff_admin)
    theirs = make_workflow(user, name="theirs")
    mine = make_workflow(staff_admin, name="mine")
    url = "/admin/executions/workflow/{}/{}/"

    read_only = page(client, url.format(theirs.id, "change"))
    post = client.post(url.format(theirs.id, "change"), {"name": "changed"})
    delete = client.post(url.format(theirs.id, "delete"), {"post": "yes"})
    own = client.post(url.format(mine.id, "delete"), {"post": "yes"})

    assert 'name="name"' not in read_only and "theirs" in read_only
    assert (post.status_code, delete.status_code) == (403, 403)
    theirs.refresh_from_db()
    assert theirs.name == "theirs"
    assert own.status_code == 302
    assert list(Workflow.objects.all()) == [theirs]


def test_superusers_change_every_workflow_in_admin(admin_client, user):
    workflow = make_workflow(user, name="theirs")

    html = page(admin_client, f"/admin/executions/workflow/{workflow.id}/change/")

    assert 'name="name"' in html


def register_worker(name: str, **fields) -> Worker:
    host, pid = name.split(":")
    identity = WorkerIdentity(uuid.uuid4(), name, "worker", host, int(pid), "1.2.3", True)
    return worker_register(identity=identity, **fields)


def test_workers_changelist_shows_alive_and_gone_processes_and_what_each_runs(admin_client, user):
    register_worker("box:1", executions_running=1)
    quiet = register_worker("box:2")
    Worker.objects.filter(id=quiet.id).update(last_seen_at=database_now() - timedelta(hours=1))
    mine, other = make_execution(user), make_execution(user)
    services.execution_start(execution_id=mine.id, runner="box:1")
    services.execution_start(execution_id=other.id, runner="box:2")

    html = page(admin_client, "/admin/executions/worker/")
    running = page(admin_client, CHANGELIST, status="running", claimed_by="box:1")

    assert "box:1" in html and "box:2" in html
    assert html.count(">alive</span>") == 1 and html.count(">gone</span>") == 1
    assert "?status=running&amp;claimed_by=box%3A1" in html
    assert str(mine.id) in running and str(other.id) not in running


def test_execution_change_page_shows_each_run_and_its_worker(admin_client, user):
    worker = register_worker("box:1")
    execution = make_execution(user)
    services.execution_start(execution_id=execution.id, runner="box:1", worker_id=worker.id)
    services.execution_fail(execution_id=execution.id, error="broke")

    html = page(admin_client, f"{CHANGELIST}{execution.id}/change/")

    assert f'href="/admin/executions/worker/{worker.id}/change/">box:1</a>' in html
    assert ">failed<" in html
