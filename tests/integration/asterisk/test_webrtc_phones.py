"""Browser phones against the Asterisk sandbox: contactd provisions an agent's WebRTC
endpoint into contactd-webrtc.conf, reloads res_pjsip over AMI, and the minted credentials
register over SIP-over-WebSocket; a re-minted password replaces the old one; the endpoint
survives an Asterisk restart."""

from __future__ import annotations

import pytest

from contactd.ami.client import AmiClient
from contactd.config import WebRtcSettings
from contactd.webrtc import WebRtcPhones
from tests.peers.asterisk import AsteriskSandbox
from tests.peers.sipws import SipWsClient

pytestmark = pytest.mark.asterisk


def _settings(asterisk: AsteriskSandbox) -> WebRtcSettings:
    return WebRtcSettings(
        enabled=True,
        include_file=asterisk.etc_dir / "contactd-webrtc.conf",
        ws_url=asterisk.ws_url,
        sip_domain="127.0.0.1",
    )


async def test_websocket_transport_speaks_sip(asterisk: AsteriskSandbox) -> None:
    async with SipWsClient(asterisk.ws_url) as sip:
        assert sip.protocol == "sip"
        # Nobody provisioned: the registrar refuses, over the WebSocket.
        assert await sip.register("webrtc-nobody", "x", "127.0.0.1") in (401, 403, 404)
    endpoints = await asterisk.acli("pjsip show endpoint webrtc-nobody")
    assert "Unable to find object" in endpoints


async def test_provisioned_phone_registers_and_survives_a_restart(
    asterisk: AsteriskSandbox,
) -> None:
    settings = _settings(asterisk)
    client = AmiClient(asterisk.ami_settings())
    async with client, WebRtcPhones(settings, client) as phones:
        await client.wait_connected(10)
        await phones.provision([("alice", "Alice Agent"), ("bob", "Bob")])
        assert phones.dial_string("alice") == "PJSIP/webrtc-alice"
        shown = await asterisk.acli("pjsip show endpoint webrtc-alice")
        assert "webrtc-alice" in shown and "Unable to find" not in shown
        first = await phones.mint("alice", "Alice Agent")
        assert first.ws_url == asterisk.ws_url and first.uri == "sip:webrtc-alice@127.0.0.1"
        async with SipWsClient(first.ws_url) as sip:
            assert await sip.register(first.username, first.password, "127.0.0.1") == 200
            contacts = await asterisk.acli("pjsip show contacts")
            assert "webrtc-alice/sip:webrtc-alice@" in contacts
        # A new panel session mints a new password: the old one no longer registers.
        second = await phones.mint("alice", "Alice Agent")
        assert second.password != first.password
        async with SipWsClient(first.ws_url) as sip:
            assert await sip.register(first.username, first.password, "127.0.0.1") != 200
        async with SipWsClient(second.ws_url) as sip:
            assert await sip.register(second.username, second.password, "127.0.0.1") == 200
    # The file is what Asterisk reads at start: the phones are back after a restart.
    await asterisk.arestart()
    async with SipWsClient(second.ws_url) as sip:
        assert await sip.register(second.username, second.password, "127.0.0.1") == 200
    assert "Unable to find" not in await asterisk.acli("pjsip show endpoint webrtc-bob")
