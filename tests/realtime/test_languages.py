"""Sockets say why they refuse, fail or close in the language of their handshake
(the dashboard's language cookie, else Accept-Language), whichever task the
reason comes from."""

import ipaddress
import json
import uuid
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from daphne.ws_protocol import WebSocketProtocol
from rest_framework.authtoken.models import Token

from project.asgi import application
from realtime.languages import socket_language, text_for
from realtime.patches import send_buffers
from realtime.subscription import NOT_FOUND
from tests.factories import make_token
from tests.realtime.helpers import (
    TIMEOUT,
    bearer,
    open_socket,
    path_for,
    receive,
    receive_refusal,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("compiled_messages"),
]

CHINESE = [(b"accept-language", b"zh-CN,zh;q=0.9,en;q=0.8")]
ENGLISH = [(b"accept-language", b"en-US,en;q=0.9")]
CHOSE_CHINESE = [(b"cookie", b"sessionid=x; django_language=zh-hans"), *ENGLISH]


@pytest.mark.parametrize(
    ("headers", "language"),
    [
        (CHINESE, "zh-hans"),
        (ENGLISH, "en"),
        (CHOSE_CHINESE, "zh-hans"),  # the dashboard's switch wins over the browser
        ([(b"cookie", b"django_language=fr"), *CHINESE], "zh-hans"),  # not offered
        ([], "en"),
    ],
)
def test_a_socket_speaks_the_language_its_handshake_asks_for(headers, language):
    scope = {"headers": headers}

    assert socket_language(scope) == language
    assert scope["language"] == language  # chosen once


def test_a_lazy_text_is_said_in_the_sockets_language():
    assert text_for({"headers": CHINESE}, NOT_FOUND).startswith("未找到该执行")
    assert text_for({"headers": ENGLISH}, NOT_FOUND).startswith("Execution not found")
    assert text_for({"headers": CHINESE}, "made already") == "made already"


async def test_a_refused_subscription_is_explained_in_chinese(token):
    async with open_socket("/api/v1/ws", [*bearer(token), *CHINESE]) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(uuid.uuid4())})
        error = await receive(socket)
        await socket.send_json_to({"type": "subscribe", "execution_id": 7})
        malformed = await receive(socket)

    assert error["code"] == 4404
    assert error["message"] == "未找到该执行：请检查 id，并确认你有权查看该执行。"
    assert malformed["message"] == "'execution_id' 必须是字符串。"


async def test_the_same_refusal_is_in_english_for_an_english_socket(token):
    async with open_socket("/api/v1/ws", [*bearer(token), *ENGLISH]) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(uuid.uuid4())})
        error = await receive(socket)

    assert error["message"] == (
        "Execution not found: check the id, and that you may see this execution."
    )


async def test_a_resume_ahead_of_the_log_is_refused_in_the_chosen_language(held_execution, token):
    path = path_for(held_execution.id, "last_seq=99")
    async with open_socket(path, [*bearer(token), *CHOSE_CHINESE]) as socket:
        text, code = await receive_refusal(socket)

    assert code == 4400
    assert text == "last_seq 99 超前于该执行的日志（其最新的 seq 为 1）。"


async def test_a_message_over_the_limit_closes_with_the_reason_in_chinese(token, settings):
    settings.REALTIME_MAX_MESSAGE_BYTES = 100
    async with open_socket("/api/v1/ws", [*bearer(token), *CHINESE]) as socket:
        await socket.send_to(text_data="x" * 101)
        text, code = await receive_refusal(socket)

    assert code == 1009
    assert text.startswith("消息过大：101 字节，上限为 100（REALTIME_MAX_MESSAGE_BYTES）。")


async def test_a_revocation_from_the_watchdog_reaches_each_socket_in_its_language(
    held_execution, token, settings
):
    """The watchdog is one task for every socket: each hears of a revoked token in its own."""
    settings.REALTIME_RECHECK_INTERVAL = 0.1
    path = path_for(held_execution.id)
    async with (
        open_socket(path, [*bearer(token), *CHINESE]) as chinese,
        open_socket(path, [*bearer(token), *ENGLISH]) as english,
    ):
        await receive(chinese)
        await receive(english)
        await database_sync_to_async(Token.objects.filter(key=token).delete)()
        chinese_text, chinese_code = await receive_refusal(chinese)
        english_text, english_code = await receive_refusal(english)

    assert chinese_code == english_code == 4403
    assert chinese_text.startswith("打开此连接所用的 API 令牌已被吊销")
    assert english_text.startswith("The API token this socket was opened with was revoked")


async def test_too_many_handshakes_are_refused_in_the_handshakes_language(token, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    settings.REALTIME_HANDSHAKE_RATE = "1/minute"
    address = str(ipaddress.IPv6Address(uuid.uuid4().int))  # counted from 0
    headers = [*bearer(token), (b"x-forwarded-for", address.encode()), *CHINESE]
    async with open_socket("/api/v1/ws", headers):
        pass

    async with open_socket("/api/v1/ws", headers) as socket:
        text, code = await receive_refusal(socket)

    assert code == 4429
    assert text.startswith("来自该地址的 WebSocket 握手过多：每分钟最多 1 次")


async def test_a_subscription_the_watchdog_revokes_ends_with_the_reason_in_chinese(
    held_execution, staff_user, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 0.1
    staff_token = await database_sync_to_async(make_token)(staff_user)
    async with open_socket("/api/v1/ws", [*bearer(staff_token), *CHINESE]) as socket:
        await socket.send_json_to({"type": "subscribe", "execution_id": str(held_execution.id)})
        assert (await receive(socket))["type"] == "status"
        staff_user.is_staff = False
        await database_sync_to_async(staff_user.save)()
        error = await receive(socket)

    assert error["code"] == 4403
    assert error["message"] == "你已无权查看该执行：其订阅已结束。"


async def test_a_socket_without_credentials_is_refused_in_chinese_with_4401():
    async with open_socket("/api/v1/ws", CHINESE) as socket:
        text, code = await receive_refusal(socket)

    assert code == 4401
    assert text.startswith("需要身份验证：请发送 'Authorization: Bearer <token>'")


async def test_a_bad_ticket_is_refused_in_the_chosen_language_and_in_english_otherwise():
    async with open_socket("/api/v1/ws?ticket=nope", CHOSE_CHINESE) as chinese:
        chinese_text, chinese_code = await receive_refusal(chinese)
    async with open_socket("/api/v1/ws?ticket=nope", ENGLISH) as english:
        english_text, english_code = await receive_refusal(english)

    assert chinese_code == english_code == 4401
    assert chinese_text.startswith("该票据未知、已过期或已被使用")
    assert english_text.startswith("This ticket is unknown, expired or already used")


async def test_malformed_frames_are_answered_in_chinese(token):
    async with open_socket("/api/v1/ws", [*bearer(token), *CHINESE]) as socket:
        await socket.send_to(bytes_data=b"\x00")
        binary = await receive(socket)
        await socket.send_to(text_data="{")
        invalid = await receive(socket)
        await socket.send_json_to({"type": "nope"})
        unknown = await receive(socket)
        await socket.send_json_to(
            {"type": "subscribe", "execution_id": str(uuid.uuid4()), "last_seq": -1}
        )
        bad_seq = await receive(socket)

    assert binary["message"] == "不支持二进制帧；请发送 JSON 文本。"
    assert invalid["message"] == "无效的 JSON。"
    assert unknown["message"] == (
        "未知的消息类型 'nope'；应为 'ping'、'subscribe' 或 'unsubscribe'。"
    )
    assert bad_seq["message"] == "last_seq 必须是非负整数，而收到的是 -1。"


async def test_a_bad_last_seq_in_the_address_is_refused_in_chinese(held_execution, token):
    path = path_for(held_execution.id, "last_seq=x")
    async with open_socket(path, [*bearer(token), *CHINESE]) as socket:
        text, code = await receive_refusal(socket)

    assert (text, code) == ("last_seq 必须是非负整数，而收到的是 'x'。", 4400)


async def test_the_watchdogs_idle_close_is_in_each_sockets_language(
    held_execution, token, settings
):
    settings.REALTIME_IDLE_TIMEOUT = 0.5
    settings.REALTIME_RECHECK_INTERVAL = 0.1
    path = path_for(held_execution.id)
    async with (
        open_socket(path, [*bearer(token), *CHINESE]) as chinese,
        open_socket(path, [*bearer(token), *ENGLISH]) as english,
    ):
        await receive(chinese)
        await receive(english)
        chinese_text, chinese_code = await receive_refusal(chinese)
        english_text, english_code = await receive_refusal(english)

    assert chinese_code == english_code == 4410
    assert chinese_text.startswith("0.5 秒内未收到任何消息（REALTIME_IDLE_TIMEOUT）")
    assert english_text.startswith("Nothing received for 0.5 s (REALTIME_IDLE_TIMEOUT)")


async def test_a_single_execution_socket_the_watchdog_revokes_closes_in_chinese(
    held_execution, staff_user, settings
):
    settings.REALTIME_RECHECK_INTERVAL = 0.1
    staff_token = await database_sync_to_async(make_token)(staff_user)
    path = path_for(held_execution.id)
    async with open_socket(path, [*bearer(staff_token), *CHINESE]) as socket:
        await receive(socket)
        staff_user.is_staff = False
        await database_sync_to_async(staff_user.save)()
        text, code = await receive_refusal(socket)

    assert (text, code) == ("你已无权查看该执行：此连接已关闭。", 4403)


async def stream_refusal(path: str, headers) -> tuple[int, dict]:
    """The status and JSON body of an event stream refused before it started."""
    communicator = HttpCommunicator(application, "GET", path, headers=headers)
    response = await communicator.get_response(timeout=TIMEOUT)
    return response["status"], json.loads(response["body"])


async def test_an_event_stream_is_refused_in_chinese():
    status, body = await stream_refusal("/api/v1/stream?feed=executions", CHINESE)

    assert (status, body["code"]) == (401, 4401)
    assert body["detail"].startswith("需要身份验证：")


async def test_an_event_stream_request_that_names_nothing_is_a_400_in_chinese(token):
    status, body = await stream_refusal("/api/v1/stream", [*bearer(token), *CHINESE])

    assert (status, body["code"]) == (400, 4400)
    assert body["detail"] == ("请指明要传输的内容：?executions=<id>,<id> 和/或 ?feed=executions。")


def test_a_socket_that_stopped_reading_is_told_in_its_handshakes_language(settings):
    """daphne's protocol is all the hook has: the language comes from its headers."""
    settings.REALTIME_SEND_TIMEOUT = 1.5
    protocol = WebSocketProtocol()
    protocol.clean_headers = CHINESE
    sent = []
    protocol.serverSend = lambda data, binary: sent.append(json.loads(data))
    protocol.sendClose = lambda code: None

    send_buffers.close_slow_consumer(protocol, pending=2_000_000, limit=1_000_000)

    assert sent[0]["message"].startswith(
        "你已停止读取：已有 2000000 字节在此连接上等待了 1.5 秒（REALTIME_SEND_TIMEOUT），"
        "超过了 1000000 字节的上限"
    )


def test_an_event_stream_that_stopped_being_read_is_told_in_its_requests_language():
    written = []
    request = SimpleNamespace(
        clean_headers=CHOSE_CHINESE, transport=None, write=written.append, finish=lambda: None
    )

    send_buffers.end_slow_stream(request, pending=2_000_000, limit=1_000_000)

    assert written[0].decode().startswith('event: error\ndata: {"type": "error", "message": "')
    error = json.loads(written[0].decode().split("data: ", 1)[1])
    assert error["message"].startswith("你已停止读取：已有 2000000 字节在此事件流上等待了")
