"""The login limits on the dashboard's and the admin's login forms, and their shared counts."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "pass-word-123"  # what tests.factories.make_user sets
LOGIN_PAGES = ["/login/", "/admin/login/"]


def attempt(path: str, username: str, password: str, address: str = "10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def assert_refused(response, *, says: str) -> None:
    assert response.status_code == 429
    assert says.encode() in response.content, response.content
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in response.wsgi_request.session


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


def test_the_documented_defaults(settings):
    assert settings.API_LOGIN_RATE == "10/minute"
    assert settings.API_LOGIN_USERNAME_RATE == "5/minute"
    assert settings.API_TOKEN_RATE == "10/minute"


@pytest.mark.parametrize("path", LOGIN_PAGES)
def test_failed_logins_are_limited_per_username_whatever_the_address(path):
    make_user("alice", staff=True)
    for n in range(5):
        response = attempt(path, "alice", "wrong", address=f"10.0.1.{n}")
        assert response.status_code == 200 and not logged_in(response)

    # Even the right password from a fresh address is refused now, unchecked.
    refused = attempt(path, "alice", PASSWORD, address="10.0.2.1")

    assert_refused(refused, says="at most 5 per minute (API_LOGIN_USERNAME_RATE)")
    # Other usernames are not affected.
    make_user("bob", staff=True)
    assert logged_in(attempt(path, "bob", PASSWORD, address="10.0.2.1"))


def test_successful_logins_do_not_count_against_the_username(settings):
    settings.API_LOGIN_RATE = ""
    make_user("alice")
    assert all(logged_in(attempt("/login/", "alice", PASSWORD)) for _ in range(8))

    failures = [attempt("/login/", "alice", "wrong").status_code for _ in range(6)]

    assert failures == [200] * 5 + [429]


def test_spellings_of_one_username_share_its_count():
    make_user("alice")
    for username in ("alice", "Alice", " alice", "ALICE ", "alice"):
        assert attempt("/login/", username, "wrong").status_code == 200

    assert attempt("/login/", "alice", PASSWORD).status_code == 429


def test_login_attempts_are_limited_per_address_over_both_forms(settings):
    settings.API_LOGIN_RATE = "3/minute"
    make_user("alice", staff=True)
    codes = [
        attempt("/login/", "nobody1", "wrong").status_code,
        attempt("/admin/login/", "nobody2", "wrong").status_code,
        attempt("/login/", "nobody3", "wrong").status_code,
    ]
    assert codes == [200, 200, 200]

    for path in LOGIN_PAGES:
        assert_refused(
            attempt(path, "alice", PASSWORD), says="at most 3 per minute (API_LOGIN_RATE)"
        )
    assert logged_in(attempt("/admin/login/", "alice", PASSWORD, address="10.0.0.2"))


def test_the_form_shows_the_limit_again(settings):
    settings.API_LOGIN_RATE = "1/minute"
    attempt("/login/", "nobody", "wrong")

    response = attempt("/login/", "nobody", "wrong")

    assert response.status_code == 429
    assert b'name="password"' in response.content and b"do not match" not in response.content


def test_token_failures_and_form_failures_share_one_count_per_username():
    make_user("alice", staff=True)
    api = APIClient(REMOTE_ADDR="10.0.3.1")
    for _ in range(3):
        body = {"username": "alice", "password": "wrong"}
        assert api.post("/api/v1/auth/token", body).status_code == 400
    assert attempt("/login/", "alice", "wrong").status_code == 200
    assert attempt("/admin/login/", "alice", "wrong").status_code == 200

    response = APIClient(REMOTE_ADDR="10.0.3.2").post(
        "/api/v1/auth/token", {"username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 429
    assert "at most 5 per minute (API_LOGIN_USERNAME_RATE)" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0
    assert not Token.objects.exists()
    assert_refused(attempt("/login/", "alice", PASSWORD), says="API_LOGIN_USERNAME_RATE")
