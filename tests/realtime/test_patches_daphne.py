"""daphne and autobahn as the tests' process has them: with the hooks of
``realtime.patches``, installed by ``project.asgi`` as in a served process."""

import asyncio

import pytest

from realtime.patches import autobahn as autobahn_patch
from realtime.patches import daphne as daphne_patch
from realtime.patches import send_buffers


def test_the_tests_run_daphne_with_the_hooks():
    from daphne.server import Server

    assert daphne_patch.installed()
    assert Server.create_application is daphne_patch.create_application
    installed = Server.handle_reply
    daphne_patch.install()  # once only: its handle_reply is not wrapped again
    assert Server.handle_reply is installed


@pytest.mark.parametrize("code", [1008, 1009, 1011, 1013])
async def test_an_application_close_with_an_rfc_code_reaches_the_client(code):
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    protocol = WebSocketProtocol()
    protocol.state = protocol.STATE_OPEN
    sent = []
    protocol.sendCloseFrame = lambda code: sent.append(code)
    await Server.handle_reply(None, protocol, {"type": "websocket.close", "code": code})
    assert sent == [code]


async def test_the_application_inbox_hands_messages_in_order_to_gets_in_order():
    inbox = daphne_patch.ApplicationInbox()
    inbox.put_nowait(1)
    assert await inbox.get() == 1
    first = asyncio.ensure_future(inbox.get())
    second = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(2)
    inbox.put_nowait(3)
    assert await first == 2
    assert await second == 3
    assert inbox.empty() and inbox._items is None and inbox._getters is None


async def test_a_get_cancelled_after_being_woken_passes_the_message_on():
    inbox = daphne_patch.ApplicationInbox()
    cancelled = asyncio.ensure_future(inbox.get())
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("message")  # wakes ``cancelled``, which has not run yet
    cancelled.cancel()
    assert await waiting == "message"
    assert cancelled.cancelled()


async def test_daphne_gives_each_application_an_application_inbox():
    from daphne.server import Server

    received = []

    async def application(scope, receive, send):
        received.append(await receive())

    server = Server.__new__(Server)
    server.application = application
    protocol = object()
    server.connections = {protocol: {}}
    queue = server.create_application(protocol, {"type": "websocket"})
    assert isinstance(queue, daphne_patch.ApplicationInbox)
    queue.put_nowait({"type": "websocket.connect"})
    await server.connections[protocol]["application_instance"]
    assert received == [{"type": "websocket.connect"}]


def test_a_slow_consumer_gets_the_close_timeout_to_read_its_error_and_4408(settings):
    """Its kernel buffers may hold megabytes: autobahn's 1 s would drop it (1006) first."""
    from daphne.ws_protocol import WebSocketProtocol

    settings.REALTIME_CLOSE_TIMEOUT = 7.5
    protocol = WebSocketProtocol()
    sent, closes = [], []
    protocol.serverSend = lambda data, binary: sent.append(data)
    protocol.sendClose = lambda code: closes.append((code, protocol.closeHandshakeTimeout))
    send_buffers.close_slow_consumer(protocol, pending=2_000_000, limit=1_000_000)
    assert "REALTIME_SEND_BUFFER_BYTES" in sent[0]
    assert closes == [(4408, 7.5)]


def test_autobahn_styles_no_log_argument_once_installed():
    import autobahn.websocket.protocol

    assert autobahn.websocket.protocol.hltype is autobahn_patch.plain
    assert autobahn.websocket.protocol.hlval is autobahn_patch.plain


def test_autobahn_formats_its_settings_only_for_a_line_it_writes():
    import pprint

    import autobahn.websocket.protocol

    settings_log = [("openHandshakeTimeout", 5, "Factory"), ("autoPingInterval", 20, "Factory")]
    argument = autobahn.websocket.protocol.pformat(settings_log)
    assert isinstance(argument, autobahn_patch.Pretty)  # nothing formatted yet
    assert f"\n{argument}" == "\n" + pprint.pformat(settings_log)
    assert str(argument) == pprint.pformat(settings_log)
    timings = autobahn.websocket.protocol.Timings()
    timings.track("onOpen")
    assert str(timings) == pprint.pformat(timings._timings)
