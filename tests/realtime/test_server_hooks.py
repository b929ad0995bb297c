"""daphne's hook sends the RFC close codes the consumer uses, which autobahn refuses."""

import pytest

from realtime import server_hooks


@pytest.mark.parametrize("code", [1008, 1009, 1011, 1013])
async def test_an_application_close_with_an_rfc_code_reaches_the_client(code):
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    server_hooks.install()
    protocol = WebSocketProtocol()
    protocol.state = protocol.STATE_OPEN
    sent = []
    protocol.sendCloseFrame = lambda code: sent.append(code)
    await Server.handle_reply(None, protocol, {"type": "websocket.close", "code": code})
    assert sent == [code]
