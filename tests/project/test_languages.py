"""English and Simplified Chinese: the catalogs, how a request's language is
chosen, and the API's messages and the dashboard's pages in it."""

import ast
import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

from executions.management.commands.makemessages import IGNORED
from tests.conftest import ROOT, bearer_client, require_gettext
from tests.factories import make_execution, make_workflow

CATALOGS = sorted((ROOT / "locale").glob("*/LC_MESSAGES/*.po"))
# Named values (%(name)s, %(count)d) and format_lazy's ({max}) in a message.
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|\{\w+\}")
CHINESE = "zh-hans"


def catalog(path: Path) -> list[dict]:
    """The entries of a .po file (its header left out): their flags, msgctxt,
    msgid, msgid_plural and msgstr (a plural's ``msgstr[0]``...)."""
    found = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        entry: dict = {"flags": set()}
        key = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"].update(flag.strip() for flag in line[2:].split(","))
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                entry[key] += ast.literal_eval(line)
            else:
                key, _, text = line.partition(" ")
                entry[key] = ast.literal_eval(text)
        if entry.get("msgid"):
            found.append(entry)
    return found


def msgids(path: Path) -> set[tuple[str | None, str]]:
    return {(entry.get("msgctxt"), entry["msgid"]) for entry in catalog(path)}


def msgstrs(entry: dict) -> list[str]:
    return [text for key, text in entry.items() if key.startswith("msgstr")]


def test_there_are_catalogs_for_the_dashboard_and_the_api():
    assert [path.relative_to(ROOT).as_posix() for path in CATALOGS] == [
        "locale/zh_Hans/LC_MESSAGES/django.po",
        "locale/zh_Hans/LC_MESSAGES/djangojs.po",
    ]


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.name)
def test_every_message_is_translated_with_the_same_placeholders(path):
    entries = catalog(path)

    assert len(entries) > 30
    untranslated = [e["msgid"] for e in entries if not all(t.strip() for t in msgstrs(e))]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert untranslated == [] and fuzzy == []
    for entry in entries:
        expected = sorted(PLACEHOLDER.findall(entry.get("msgid_plural", entry["msgid"])))
        for text in msgstrs(entry):
            assert sorted(PLACEHOLDER.findall(text)) == expected, entry["msgid"]


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: path.name)
def test_the_catalogs_compile(path, tmp_path):
    require_gettext()

    checked = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(tmp_path / "out.mo"), str(path)],
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stderr
    assert "untranslated" not in checked.stderr and "fuzzy" not in checked.stderr


def test_the_catalogs_hold_every_text_marked_for_translation(tmp_path):
    """What makemessages finds in the code now is in the committed catalogs: a
    new text cannot ship untranslated (run makemessages, then translate it)."""
    require_gettext()
    # On a copy of the code without locale/: makemessages would update the
    # catalogs it finds there, and leaves out what it ignores anyway.
    source, fresh = tmp_path / "source", tmp_path / "locale"
    copied = shutil.ignore_patterns(".*", "locale", "__pycache__", "*.sqlite3*", *IGNORED)
    shutil.copytree(ROOT, source, ignore=copied)
    with override_settings(LOCALE_PATHS=[fresh]), contextlib.chdir(source):
        for domain in ("django", "djangojs"):
            call_command("makemessages", locale=["zh_Hans"], domain=domain, verbosity=0)

    for name in ("django.po", "djangojs.po"):
        marked = msgids(fresh / "zh_Hans/LC_MESSAGES" / name)
        committed = msgids(ROOT / "locale/zh_Hans/LC_MESSAGES" / name)
        assert len(marked) > 30
        assert marked - committed == set(), f"not in locale/zh_Hans/LC_MESSAGES/{name}"


@pytest.mark.usefixtures("compiled_messages")
@pytest.mark.django_db
class TestLanguages:
    def create_execution(self, user, **headers):
        return bearer_client(user).post(
            "/api/v1/executions",
            {"workflow_id": str(make_workflow(user).id), "input_data": [1]},
            format="json",
            **headers,
        )

    def test_a_validation_error_comes_in_chinese_when_asked_for(self, user):
        response = self.create_execution(user, HTTP_ACCEPT_LANGUAGE=CHINESE)

        assert response.status_code == 400
        assert response.json() == {"input_data": ["input_data 必须是 JSON 对象，而不是 list。"]}
        assert response["Content-Language"] == CHINESE

    def test_a_validation_error_comes_in_english_without_accept_language(self, user):
        response = self.create_execution(user)

        assert response.status_code == 400
        assert response.json() == {"input_data": ["input_data must be a JSON object, not list."]}
        assert response["Content-Language"] == "en"

    @pytest.mark.parametrize(
        ("header", "language"),
        [
            ("zh-CN,zh;q=0.9,en;q=0.8", CHINESE),  # a browser set to Chinese (China)
            ("zh", CHINESE),
            ("fr-FR,fr;q=0.9", "en"),  # no French: English
            ("en-GB,zh-hans;q=0.5", "en"),
        ],
    )
    def test_the_browsers_languages_choose_the_nearest_one_offered(self, user, header, language):
        response = self.create_execution(user, HTTP_ACCEPT_LANGUAGE=header)

        assert response["Content-Language"] == language

    def test_every_message_of_a_definition_comes_in_chinese(self, api):
        definition = {
            "nodes": [
                {"id": "a", "type": "sleep", "params": {}},
                {"id": "b", "type": "delay", "params": {"seconds": "1"}},
                {"id": "c", "type": "delay", "params": {"seconds": 1}},
            ],
            "edges": [{"source": "c", "target": "d"}],
        }

        response = api.post(
            "/api/v1/workflows",
            {"name": "x", "definition": definition},
            format="json",
            HTTP_ACCEPT_LANGUAGE=CHINESE,
        )

        assert response.status_code == 400
        unknown_type, *others = response.json()["definition"]
        assert unknown_type.startswith("节点 'a'：未知的类型 'sleep'；已知类型：condition, delay")
        assert others == [
            "节点 'b'（delay）：params.seconds: 请填写合法的数字。",  # DRF's own catalog
            "edges[0]：'d' 不是该工作流中的节点。",
        ]

    def test_a_body_over_the_limit_is_refused_in_chinese(self, api, settings):
        settings.API_MAX_BODY_BYTES = 10

        response = api.post(
            "/api/v1/executions", {"input_data": {}}, format="json", HTTP_ACCEPT_LANGUAGE=CHINESE
        )

        assert response.status_code == 413
        assert response.json()["detail"].startswith("请求体过大：")

    def test_a_refused_batch_says_so_in_chinese(self, api, user):
        items = [{"workflow_id": str(make_workflow(user).id)}, "not an object"]

        response = api.post(
            "/api/v1/executions/batch",
            {"items": items},
            format="json",
            HTTP_ACCEPT_LANGUAGE=CHINESE,
        )

        assert response.status_code == 400
        assert response.json()["detail"] == (
            "2 个条目中有 1 个无效，因此一个都没有启动。"
            "请修正 results 中列出了错误的条目，然后重新发送整个批次。"
        )

    def test_the_admins_actions_answer_in_chinese(self, user):
        admin = Client(HTTP_ACCEPT_LANGUAGE=CHINESE)
        admin.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
        pending = make_execution(user)

        response = admin.post(
            "/admin/executions/execution/",
            {"action": "cancel_executions", "_selected_action": [str(pending.id)]},
            follow=True,
        )

        html = response.content.decode()
        assert "已请求停止 1 个执行：等待中的会立即取消，运行中的会在下一次检查时停止。" in html
        assert "取消所选的执行" in html  # the action, in the list to choose from

    def test_the_switch_keeps_its_choice_in_a_cookie_over_accept_language(self, user):
        client = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
        client.force_login(user)

        switched = client.post("/i18n/setlang/", {"language": CHINESE, "next": "/workflows/"})
        page = client.get("/workflows/")
        api = client.post("/api/v1/executions", {}, content_type="application/json")

        assert switched.status_code == 302 and switched["Location"] == "/workflows/"
        cookie = switched.cookies["django_language"]
        assert cookie.value == CHINESE and cookie["max-age"] == 365 * 24 * 3600
        assert cookie["samesite"] == "Lax"
        html = page.content.decode()
        assert '<html lang="zh-hans">' in html
        assert "<h1>工作流</h1>" in html and "新建工作流" in html
        assert (
            '<button class="language-choice" type="submit" name="language" value="zh-hans"' in html
        )
        assert api.json() == {"workflow_id": ["该字段是必填项。"]}

    def test_the_pages_and_their_modules_texts_come_in_the_language(self, user):
        client = Client(HTTP_ACCEPT_LANGUAGE=CHINESE)
        client.force_login(user)

        page = client.get("/").content.decode()
        texts = client.get("/jsi18n/")
        english = Client().get("/jsi18n/").content.decode()

        assert "<h1>执行</h1>" in page and "正在连接…" in page
        assert '<script src="/jsi18n/"></script>' in page
        assert texts.status_code == 200
        assert json.dumps("正在重新连接…")[1:-1] in texts.content.decode()
        assert "Reconnecting" not in english  # English needs no catalog: the code's own texts
