"""SMS text encoding: GSM 03.38 7-bit when every character fits, else UCS-2, split into parts.

Pure functions. Parts carry an 8-bit concatenation UDH (IEI 0x00) like smpplib.gsm.make_parts,
but the split is character-aware: smpplib cuts at a fixed byte count, which can separate a GSM
escape (0x1B + char) or a UTF-16 surrogate pair across two parts, and its table sends '`' as
0x5F, which handsets show as '§'.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

# GSM 03.38 default alphabet, one septet per octet (unpacked, as SMPP data_coding 0 carries it).
GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION: Final = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_GSM_INDEX: Final = {ch: i for i, ch in enumerate(GSM_BASIC) if ch != "\x1b"}
_GSM_CHARS: Final = frozenset(_GSM_INDEX) | frozenset(GSM_EXTENSION)
# str.translate table to the septets as latin-1 characters (every septet is < 0x80): a whole
# text encodes in two C calls rather than a Python call per character.
_GSM_TRANSLATE: Final = {
    **{ord(ch): chr(code) for ch, code in _GSM_INDEX.items()},
    **{ord(ch): "\x1b" + chr(code) for ch, code in GSM_EXTENSION.items()},
}

GSM_SINGLE_BYTES: Final = 160  # septets in one unsplit message
GSM_PART_BYTES: Final = 153  # septets per part once the 6-octet UDH takes its room
UCS2_SINGLE_BYTES: Final = 140
UCS2_PART_BYTES: Final = 134
MAX_PARTS: Final = 255
ESM_UDHI: Final = 0x40


class DataCoding(IntEnum):
    GSM7 = 0x00
    UCS2 = 0x08


class MessageTooLongError(ValueError):
    """The text needs more than 255 parts."""


@dataclass(frozen=True)
class EncodedPart:
    """One submit_sm worth of payload: UDH (if any) already in front of the text bytes."""

    payload: bytes
    data_coding: DataCoding
    esm_class: int
    index: int  # 1-based
    total: int


def is_gsm7(text: str) -> bool:
    return _GSM_CHARS.issuperset(text)


def choose_coding(text: str) -> DataCoding:
    return DataCoding.GSM7 if is_gsm7(text) else DataCoding.UCS2


def _gsm_char(ch: str) -> bytes:
    if ch in _GSM_INDEX:
        return bytes((_GSM_INDEX[ch],))
    return bytes((0x1B, GSM_EXTENSION[ch]))


def _ucs2_char(ch: str) -> bytes:
    return ch.encode("utf-16-be")  # two bytes, or four for a surrogate pair


def encode_text(text: str, coding: DataCoding) -> bytes:
    if coding is DataCoding.GSM7:
        if not _GSM_CHARS.issuperset(text):
            # The per-character path names the character that does not fit (KeyError).
            return b"".join(_gsm_char(ch) for ch in text)
        return text.translate(_GSM_TRANSLATE).encode("latin-1")
    return text.encode("utf-16-be")  # two bytes a character, four for a surrogate pair


def _chunks(text: str, coding: DataCoding, limit: int) -> list[bytes]:
    """Greedy split on character boundaries so no part exceeds `limit` bytes."""
    char = _gsm_char if coding is DataCoding.GSM7 else _ucs2_char
    chunks: list[bytes] = []
    current = bytearray()
    for ch in text:
        encoded = char(ch)
        if len(current) + len(encoded) > limit:
            chunks.append(bytes(current))
            current = bytearray()
        current += encoded
    chunks.append(bytes(current))
    return chunks


def split_message(text: str, reference: int, coding: DataCoding | None = None) -> list[EncodedPart]:
    """Encode `text`; more than one part gets a concatenation UDH with `reference` (0-255)."""
    coding = choose_coding(text) if coding is None else coding
    single = GSM_SINGLE_BYTES if coding is DataCoding.GSM7 else UCS2_SINGLE_BYTES
    encoded = encode_text(text, coding)
    if len(encoded) <= single:
        return [EncodedPart(encoded, coding, 0, 1, 1)]
    part_bytes = GSM_PART_BYTES if coding is DataCoding.GSM7 else UCS2_PART_BYTES
    chunks = _chunks(text, coding, part_bytes)
    if len(chunks) > MAX_PARTS:
        raise MessageTooLongError(f"text needs {len(chunks)} parts; at most {MAX_PARTS} allowed")
    ref = reference & 0xFF
    total = len(chunks)
    return [
        EncodedPart(bytes((0x05, 0x00, 0x03, ref, total, i)) + chunk, coding, ESM_UDHI, i, total)
        for i, chunk in enumerate(chunks, start=1)
    ]


def decode_payload(payload: bytes, data_coding: int, esm_class: int = 0) -> str:
    """Text of an inbound short_message (MO), skipping a UDH when present."""
    if esm_class & ESM_UDHI and payload:
        payload = payload[payload[0] + 1 :]
    if data_coding == DataCoding.UCS2:
        return payload.decode("utf-16-be", errors="replace")
    if data_coding == DataCoding.GSM7:
        return _decode_gsm(payload)
    return payload.decode("latin-1")


_GSM_REVERSE_EXT: Final = {v: k for k, v in GSM_EXTENSION.items()}


def _decode_gsm(payload: bytes) -> str:
    out: list[str] = []
    escape = False
    for byte in payload:
        if escape:
            out.append(_GSM_REVERSE_EXT.get(byte, " "))
            escape = False
        elif byte == 0x1B:
            escape = True
        else:
            out.append(GSM_BASIC[byte & 0x7F])
    return "".join(out)
