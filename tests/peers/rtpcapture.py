"""What a SIPp peer received, read off the loopback interface: SIPp plays and echoes RTP but
does not count what reaches it, so the test captures the packets addressed to its media port
(an AF_PACKET socket on `lo`, as tshark would; the tests run as root for the Asterisk chroot)."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

ETH_P_IP: Final = 0x0800
PACKET_OUTGOING: Final = 4  # loopback shows each packet twice: once going out, once in
LOUD_RMS: Final = 300.0  # linear 16-bit RMS above which a 20 ms packet is heard, not silence


def ulaw_to_linear(byte: int) -> int:
    """G.711 mu-law byte to a 16-bit sample."""
    u = ~byte & 0xFF
    magnitude = ((u & 0x0F) << 3) + 0x84
    magnitude <<= (u & 0x70) >> 4
    return (0x84 - magnitude) if u & 0x80 else (magnitude - 0x84)


def rms(payload: bytes) -> float:
    if not payload:
        return 0.0
    return math.sqrt(sum(ulaw_to_linear(b) ** 2 for b in payload) / len(payload))


@dataclass
class RtpCapture:
    """Counts the PCMU RTP packets sent to 127.0.0.1:`port`, and how many carried sound."""

    port: int
    packets: int = 0
    loud: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _sock: socket.socket | None = None

    async def __aenter__(self) -> RtpCapture:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        sock.bind(("lo", 0))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _read(self) -> None:
        assert self._sock is not None
        while True:
            try:
                frame, address = self._sock.recvfrom(65535)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            self._count(frame[14:])  # past the (empty) Ethernet header of loopback

    def _count(self, ip: bytes) -> None:
        if len(ip) < 20 or ip[9] != socket.IPPROTO_UDP:
            return
        udp = ip[(ip[0] & 0x0F) * 4:]
        if len(udp) < 8 + 12 or struct.unpack("!H", udp[2:4])[0] != self.port:
            return
        rtp = udp[8:]
        if rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 0:  # RTP version 2, payload type 0 (PCMU)
            return
        self.packets += 1
        if rms(rtp[12:]) >= LOUD_RMS:
            self.loud += 1
        self.changed.set()

    async def until_loud(self, count: int, timeout_s: float) -> None:
        """Until `count` packets with sound have arrived, or fail saying what did."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.loud < count:
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"port {self.port}: {self.loud} packets with sound of {self.packets} "
                f"in {timeout_s} s, expected {count}") from None
