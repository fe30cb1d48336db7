"""A minimal SIP-over-WebSocket registrar client (RFC 7118) for tests: REGISTER with digest
authentication over Asterisk's /ws, as a browser phone does, without a browser.

    async with SipWsClient(ws_url) as sip:
        status = await sip.register(username, password, domain)   # 200, 401, 403...
"""

from __future__ import annotations

import hashlib
import re
import secrets
from types import TracebackType
from typing import Final, Self

import aiohttp

TIMEOUT_S: Final = 10.0


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _challenge(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="?([^",]*)"?', header))


class SipWsClient:
    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._call_id = secrets.token_hex(8)
        self._tag = secrets.token_hex(4)
        self._cseq = 0
        self._host = f"{secrets.token_hex(4)}.invalid"

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(
            self.ws_url, protocols=("sip",), timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    @property
    def protocol(self) -> str | None:
        return self._ws.protocol if self._ws is not None else None

    async def _request(
        self, username: str, domain: str, expires: int, authorization: str | None
    ) -> tuple[int, dict[str, str]]:
        assert self._ws is not None
        self._cseq += 1
        lines = [
            f"REGISTER sip:{domain} SIP/2.0",
            f"Via: SIP/2.0/WS {self._host};branch=z9hG4bK{secrets.token_hex(6)}",
            "Max-Forwards: 70",
            f"To: <sip:{username}@{domain}>",
            f"From: <sip:{username}@{domain}>;tag={self._tag}",
            f"Call-ID: {self._call_id}",
            f"CSeq: {self._cseq} REGISTER",
            f"Contact: <sip:{username}@{self._host};transport=ws>;expires={expires}",
            f"Expires: {expires}",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Content-Length: 0", "", ""]
        await self._ws.send_str("\r\n".join(lines))
        while True:
            message = await self._ws.receive(timeout=TIMEOUT_S)
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"WebSocket ended: {message.type}")
            head, _, _ = str(message.data).partition("\r\n\r\n")
            first, *rest = head.split("\r\n")
            if not first.startswith("SIP/2.0 "):
                continue  # a request from Asterisk (OPTIONS qualify): not our answer
            status = int(first.split()[1])
            if status < 200:
                continue
            headers = {}
            for line in rest:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            return status, headers

    async def register(self, username: str, password: str, domain: str, expires: int = 120) -> int:
        """REGISTER, answering one digest challenge; the final status code."""
        status, headers = await self._request(username, domain, expires, None)
        if status != 401:
            return status
        chal = _challenge(headers["www-authenticate"])
        uri = f"sip:{domain}"
        ha1 = _md5(f"{username}:{chal['realm']}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        cnonce = secrets.token_hex(8)
        if "qop" in chal:
            response = _md5(f"{ha1}:{chal['nonce']}:00000001:{cnonce}:auth:{ha2}")
            extra = f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        else:
            response = _md5(f"{ha1}:{chal['nonce']}:{ha2}")
            extra = ""
        auth = (
            f'Digest username="{username}", realm="{chal["realm"]}", '
            f'nonce="{chal["nonce"]}", uri="{uri}", response="{response}", '
            f"algorithm=MD5{extra}"
        )
        if "opaque" in chal:
            auth += f', opaque="{chal["opaque"]}"'
        status, _ = await self._request(username, domain, expires, auth)
        return status
