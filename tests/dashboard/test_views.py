"""The dashboard's pages: behind login, only for what the user may see, wired to the API."""

import re
import uuid

import pytest
from django.test import Client

from tests.factories import make_execution, make_workflow

pytestmark = pytest.mark.django_db

PAGES = ["/", "/workflows/", "/workflows/new/"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def off_site_references(html: str) -> list[str]:
    """The page's src/href attributes and module imports that leave the site (a CDN)."""
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    references += re.findall(r"""\b(?:from|import)\s*\(?\s*["']([^"']*)["']""", html)
    return [url for url in references if url.startswith("//") or "://" in url]


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_login(path):
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_login_page_logs_in_and_goes_to_the_executions(user):
    client = Client()

    page = client.get("/login/?next=/")
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    right = client.post("/login/?next=/", {"username": "alice", "password": "pass-word-123"})

    assert page.status_code == 200 and b'name="password"' in page.content
    assert b"do not match" in wrong.content
    assert right.status_code == 302 and right["Location"] == "/"
    assert client.get("/").status_code == 200


def test_logout_needs_a_post_and_ends_the_session(user):
    client = logged_in(user)

    response = client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_their_module_and_carry_a_csrf_token(user, path):
    html = logged_in(user).get(path).content.decode()

    assert '<meta name="csrf-token" content="' in html
    assert '<script type="module" src="/static/dashboard/' in html
    assert off_site_references(html) == []


def test_a_csrf_token_that_happens_to_spell_cdn_is_not_an_off_site_reference(user, monkeypatch):
    token = "cdnCDN" + "x" * 58  # tokens are random letters and digits
    monkeypatch.setattr("django.template.context_processors.get_token", lambda request: token)

    html = logged_in(user).get("/").content.decode()

    assert token in html
    assert off_site_references(html) == []


def test_executions_page_has_the_feeds_filters(user):
    html = logged_in(user).get("/").content.decode()

    assert 'id="status-filter"' in html
    assert 'id="workflow-filter"' in html
    assert 'id="tag-filter"' in html
    assert "<th>Tags</th>" in html


def test_execution_page_shows_the_execution_and_its_workflow(user):
    execution = make_execution(user, make_workflow(user, name="nightly"))

    html = logged_in(user).get(f"/executions/{execution.id}/").content.decode()

    assert f'data-execution-id="{execution.id}"' in html
    assert f'data-workflow-id="{execution.workflow_id}"' in html
    assert "nightly" in html


def test_workflow_page_lists_the_node_types(user):
    workflow = make_workflow(user, name="nightly")

    html = logged_in(user).get(f"/workflows/{workflow.id}/").content.decode()

    assert f'data-workflow-id="{workflow.id}"' in html
    for name in ["delay", "transform", "condition", "log", "fail", "http_request"]:
        assert f"<code>{name}</code>" in html
    assert 'id="start-form"' in html


def test_someone_elses_execution_and_workflow_are_not_found(user, other_user, staff_user):
    workflow = make_workflow(other_user)
    execution = make_execution(other_user, workflow)
    paths = [f"/executions/{execution.id}/", f"/workflows/{workflow.id}/"]

    assert [logged_in(user).get(path).status_code for path in paths] == [404, 404]
    assert [logged_in(staff_user).get(path).status_code for path in paths] == [200, 200]
    assert logged_in(user).get(f"/executions/{uuid.uuid4()}/").status_code == 404


def test_static_files_are_served(user):
    # The JavaScript client package (clients/js/src), which the dashboard imports.
    for name in [
        "execution-stream.js",
        "execution-socket.js",
        "execution-subscriptions.js",
        "reconnecting-socket.js",
        "execution-events.js",
        "transports.js",
    ]:
        response = Client().get(f"/static/workflow-push/{name}")
        assert response.status_code == 200, name
    for name in [
        "executions-page.js",
        "dashboard.css",
        "execution-page.js",
        "dag.js",
    ]:
        response = Client().get(f"/static/dashboard/{name}")
        assert response.status_code == 200, name


def test_run_again_says_it_runs_the_workflows_current_definition(user):
    execution = make_execution(user)

    html = logged_in(user).get(f"/executions/{execution.id}/").content.decode()

    note = '<span class="muted action-note" id="run-again-note">'
    assert f"{note}Runs the workflow's current definition</span>" in html
    assert 'id="run-again" type="button" aria-describedby="run-again-note"' in html


def test_the_workers_page_is_for_staff_and_linked_for_them_only(user, staff_user):
    staff = logged_in(staff_user)

    page = staff.get("/workers/").content.decode()

    assert '<script type="module" src="/static/dashboard/workers-page.js"></script>' in page
    assert 'id="workers"' in page and off_site_references(page) == []
    assert 'href="/workers/"' in staff.get("/").content.decode()
    assert logged_in(user).get("/workers/").status_code == 403
    assert 'href="/workers/"' not in logged_in(user).get("/").content.decode()
    assert Client().get("/static/dashboard/workers-page.js").status_code == 200


def test_the_execution_page_has_a_place_for_its_runs(user):
    execution = make_execution(user)

    html = logged_in(user).get(f"/executions/{execution.id}/").content.decode()

    assert 'id="runs-card"' in html and 'id="runs"' in html
