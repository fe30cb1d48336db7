"""Inbound e-mail bytes into a typed `ParsedMail`, or a `MailRefusedError` saying why.

Pure: no I/O. The MIME structure is parsed with the `compat32` policy (its parser does not
re-parse a part's Content-Type at each of its look-ups, which was most of the parse time) and
the few headers read are parsed as policy=default parses them (`_get`). Everything hostile mail
can do to the standard library's `email` package is caught here: oversized input, deep MIME
nesting, many parts, broken headers, unknown charsets, bad base64. Bodies in a charset Python
does not know are decoded leniently (replacement characters, the defect named), because the
reader can still act on them; only mail with no usable sender, or beyond the configured
bounds, is refused.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from email.headerregistry import Address, HeaderRegistry
from email.message import Message
from email.utils import getaddresses
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final, Literal

from contactd.errors import ContactdError

MESSAGE_ID_MAX: Final = 250
REFERENCES_MAX: Final = 50  # a long thread's References header keeps growing; the tail matters
FILENAME_MAX: Final = 120
_MSGID: Final = re.compile(rf"<([^<>\s]{{1,{MESSAGE_ID_MAX}}})>")
_BOUNDARY_LINE: Final = re.compile(rb"(?im)^content-type:[^\r\n]*multipart")
_LINESEP: Final = re.compile(r"\n|\r")  # as email.policy removes line breaks from a value
# The plain forms of the headers read for every mail, read without the structured parser.
_WORDS: Final = r"[A-Za-z0-9]+(?:[ \t]+[A-Za-z0-9]+)*"
_DOT_ATOM: Final = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
_PLAIN_FROM: Final = re.compile(
    rf"[ \t]*(?:(?:(?P<name>{_WORDS})|\"(?P<quoted>[A-Za-z0-9 ,.'-]*)\")?[ \t]*"
    rf"<(?P<local>{_DOT_ATOM})@(?P<domain>{_DOT_ATOM})>"
    rf"|(?P<bare>{_DOT_ATOM})@(?P<bare_domain>{_DOT_ATOM}))[ \t]*"
)
_TOKEN: Final = r"[A-Za-z0-9_.+-]+"
_PARAMS: Final = rf"(?P<params>(?:[ \t]*;[ \t]*[A-Za-z0-9-]+=(?:\"{_TOKEN}\"|{_TOKEN}))*)[ \t]*"
_PLAIN_CTYPE: Final = re.compile(rf"[ \t]*(?P<value>{_TOKEN}/{_TOKEN}){_PARAMS}")
_PLAIN_DISPOSITION: Final = re.compile(rf"[ \t]*(?P<value>{_TOKEN}){_PARAMS}")
_PLAIN_PARAM: Final = re.compile(rf";[ \t]*([A-Za-z0-9-]+)=(?:\"({_TOKEN})\"|({_TOKEN}))")
_REGISTRY: Final = HeaderRegistry()  # what policy=default makes headers with
_HEADER_CLASSES: dict[str, Any] = {}  # lower-cased header name -> its registry class


class MailRefusedError(ContactdError):
    """This mail is not taken in; `code` says why (the raw bytes are kept by the caller)."""

    code = "mail_refused"


@dataclass(frozen=True)
class MailLimits:
    max_bytes: int
    max_depth: int
    max_parts: int


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ParsedMail:
    sender: str  # the From address, lower-cased domain
    sender_name: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    message_id: str | None  # without the angle brackets
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...] = field(default=())

    @property
    def thread_refs(self) -> tuple[str, ...]:
        """Ids this mail answers, the most direct first."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(ref, None)
        return tuple(seen)


@dataclass(frozen=True)
class Intake:
    """What became of one received mail (the intake's answer to SMTP and IMAP)."""

    status: Literal["stored", "duplicate", "refused"]
    interaction_id: int | None = None
    code: str = ""  # the refusal's stable code
    reason: str = ""
    kept_at: Path | None = None  # the raw copy of a refused mail


def dedup_key(raw: bytes, message_id: str | None) -> str:
    """One key per message: its Message-ID when it has one (a re-delivery carries other
    Received lines), else its bytes."""
    basis = f"mid:{message_id}".encode() if message_id else b"raw:" + raw
    return hashlib.sha256(basis).hexdigest()


def parse_mail(raw: bytes, limits: MailLimits) -> ParsedMail:
    """Parse, or raise MailRefusedError; never any other exception."""
    if len(raw) > limits.max_bytes:
        raise MailRefusedError(
            f"mail of {len(raw)} bytes is over the {limits.max_bytes}-byte limit",
            code="mail_too_large",
            size=len(raw),
        )
    # The parser nests one level per multipart; cap it before parsing, not after a deep
    # recursion has already happened.
    if len(_BOUNDARY_LINE.findall(raw)) > limits.max_parts:
        raise MailRefusedError(
            f"more than {limits.max_parts} multipart headers", code="mail_too_many_parts"
        )
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:  # the parser is lenient; anything escaping it is a refusal
        raise MailRefusedError(
            f"not parseable as MIME: {type(exc).__name__}", code="mail_unparseable"
        ) from None
    assert isinstance(message, Message)
    try:
        return _read(message, limits)
    except MailRefusedError:
        raise
    except Exception as exc:  # a header or part the email package chokes on
        raise MailRefusedError(
            f"unreadable MIME structure: {type(exc).__name__}: {exc}"[:300], code="mail_unparseable"
        ) from None


@dataclass(frozen=True)
class _Leaf:
    """One non-multipart part with its MIME facts read once (policy=default parses a header
    again on every access, which made repeated lookups the bulk of the parse time)."""

    part: Message
    maintype: str
    subtype: str
    charset: str
    filename: str
    attachment: bool


def _leaf(part: Message) -> _Leaf:
    content_type = _mime(part, "content-type")
    params: dict[str, str] = {}
    if content_type is None:
        ctype = part.get_default_type()
    else:
        ctype, params = content_type
        if ctype.count("/") != 1:  # what get_content_type answers for a broken header
            ctype = "text/plain"
    maintype, _, subtype = ctype.partition("/")
    content_disposition = _mime(part, "content-disposition")
    disposition = ""
    filename = str(params.get("name", ""))
    if content_disposition is not None:
        disposition, extra = content_disposition
        filename = str(extra.get("filename", "")) or filename
    if disposition == "attachment":
        attachment = True
    elif maintype == "text" and subtype in ("plain", "html"):
        attachment = disposition != "inline" and bool(filename)
    else:
        attachment = True  # images, PDFs, forwarded mail…: stored, never dropped
    return _Leaf(
        part, maintype, subtype, str(params.get("charset", "")).lower(), filename, attachment
    )


def _first(part: Message, name: str) -> tuple[str, Any] | None:
    """The first `name` header of `part` as the compat32 parse kept it: (its name as
    written, its value); None when there is none."""
    wanted = name.lower()
    for key, value in part.raw_items():
        if key.lower() == wanted:
            return key, value
    return None


def _raw(part: Message, name: str) -> str | None:
    """The first `name` header's value as the compat32 parse kept it, line breaks removed
    (as policy=default removes them); None when there is none (or it is not text)."""
    found = _first(part, name)
    if found is None or not isinstance(found[1], str):
        return None
    return "".join(_LINESEP.split(found[1]))


def _mime(part: Message, name: str) -> tuple[str, dict[str, str]] | None:
    """A Content-Type's "maintype/subtype" or a Content-Disposition's value, lower-cased,
    and its parameters (names lower-cased), as policy=default reads them; None when there
    is no such header. The common plain form is read by a regular expression
    (`_plain_mime`), anything else by the structured parser (`_structured_mime`): the same
    answer (a test checks), at a tenth of the cost."""
    raw = _raw(part, name)
    if raw is None:
        return None if _get(part, name) is None else _structured_mime(part, name)
    return _plain_mime(name, raw) or _structured_mime(part, name)


def _plain_mime(name: str, raw: str) -> tuple[str, dict[str, str]] | None:
    """`raw` read when it is the plain form (tokens, simple parameters, no parameter twice),
    else None."""
    pattern = _PLAIN_CTYPE if name.lower() == "content-type" else _PLAIN_DISPOSITION
    found = pattern.fullmatch(raw)
    if found is None:
        return None
    params: dict[str, str] = {}
    for key, quoted, token in _PLAIN_PARAM.findall(found["params"]):
        key = key.lower()
        if key in params:
            return None  # a parameter twice: the parser's own rule decides
        params[key] = quoted or token
    return found["value"].lower(), params


def _structured_mime(part: Message, name: str) -> tuple[str, dict[str, str]]:
    header = _get(part, name)
    attribute = "content_type" if name.lower() == "content-type" else "content_disposition"
    value = str(getattr(header, attribute, "") or "").lower()
    return value, dict(getattr(header, "params", {}) or {})


def _get(part: Message, name: str) -> Any:
    """The first `name` header of `part` as policy=default gives it (a structured header
    object), from the raw value the compat32 parse kept; None when there is none.

    What `policy.header_fetch_parse` does, but with the header class made once per name:
    the registry builds a new class on every call (type(...)), a sixth of the parse time."""
    found = _first(part, name)
    if found is None:
        return None
    key, value = found
    if hasattr(value, "name"):
        return value
    wanted = name.lower()
    kind = _HEADER_CLASSES.get(wanted)
    if kind is None:  # only the few names read here: a bounded cache
        kind = _HEADER_CLASSES[wanted] = _REGISTRY[wanted]
    return kind(key, "".join(_LINESEP.split(value)))


def _read(message: Message, limits: MailLimits) -> ParsedMail:
    defects: list[str] = []
    leaves = [_leaf(part) for part in _leaves(message, limits)]
    sender, name = _sender(message)
    body = next(
        (
            leaf
            for subtype in ("plain", "html")
            for leaf in leaves
            if leaf.maintype == "text" and leaf.subtype == subtype and not leaf.attachment
        ),
        None,
    )
    text = ""
    if body is not None:
        text = _text_of(body.part, body.charset, defects)
        if body.subtype == "html":
            text = _html_text(text)
    attachments: list[Attachment] = []
    for leaf in leaves:
        if leaf is body or not leaf.attachment:
            continue
        data = leaf.part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        attachments.append(
            Attachment(
                _filename(leaf.filename, len(attachments) + 1),
                f"{leaf.maintype}/{leaf.subtype}"[:100],
                data,
            )
        )
    ids = _ids(message)
    return ParsedMail(
        sender=sender,
        sender_name=name,
        recipients=_addresses(message, "To"),
        subject=_oneline(_header(message, "Subject"))[:300],
        text=text,
        message_id=next(iter(ids["message-id"]), None),
        in_reply_to=tuple(ids["in-reply-to"]),
        references=tuple(ids["references"][-REFERENCES_MAX:]),
        attachments=tuple(attachments),
        defects=tuple(defects),
    )


def _leaves(message: Message, limits: MailLimits) -> list[Message]:
    """The non-multipart parts in order; refuses past the depth or part-count cap."""
    leaves: list[Message] = []
    stack: list[tuple[Message, int]] = [(message, 1)]
    count = 0
    while stack:
        part, depth = stack.pop()
        count += 1
        if depth > limits.max_depth:
            raise MailRefusedError(
                f"MIME nesting deeper than {limits.max_depth}", code="mail_too_deep"
            )
        if count > limits.max_parts:
            raise MailRefusedError(
                f"more than {limits.max_parts} MIME parts", code="mail_too_many_parts"
            )
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend(
                (child, depth + 1) for child in reversed(payload) if isinstance(child, Message)
            )
        else:
            leaves.append(part)
    return leaves


def _header(message: Message, name: str) -> str:
    """An unstructured header (Subject) as policy=default decodes it: plain ASCII with no
    encoded word is its own decoding (a test checks), anything else goes to the parser."""
    raw = _raw(message, name)
    if raw is not None and raw.isascii() and "=?" not in raw:
        return raw
    try:
        value = _get(message, name)
    except Exception:  # a header the registry cannot parse: read it raw
        value = None
    if value is None:
        return ""
    try:
        return str(value)
    except Exception:
        return ""


def _sender(message: Message) -> tuple[str, str]:
    raw = _raw(message, "From")
    found = None if raw is None else _plain_sender(raw)
    for local, domain, name in found if found is not None else _structured_sender(message):
        if local and domain and "." in domain.strip(".") and _clean_address(local, domain):
            return f"{local}@{domain.lower()}", name
    raise MailRefusedError("no usable From address", code="mail_no_sender")


def _plain_sender(raw: str) -> list[tuple[str, str, str]] | None:
    """The From value read when it is the plain form (`Name <local@domain>`, a quoted name,
    or a bare address, of plain characters), as (local part, domain, display name) the way
    the structured parser gives it; else None. A test checks both agree."""
    found = _PLAIN_FROM.fullmatch(raw)
    if found is None:
        return None
    if found["bare"] is not None:
        return [(found["bare"], found["bare_domain"], "")]
    name = found["name"] if found["name"] is not None else found["quoted"] or ""
    return [(found["local"], found["domain"], _oneline(name)[:200])]


def _structured_sender(message: Message) -> list[tuple[str, str, str]]:
    """Every address of the From header as policy=default parses it."""
    try:
        header = _get(message, "From")
        addresses: tuple[Address, ...] = tuple(getattr(header, "addresses", ()) or ())
    except Exception:
        addresses = ()
    return [(a.username, a.domain, _oneline(a.display_name)[:200]) for a in addresses]


def _clean_address(local: str, domain: str) -> bool:
    whole = f"{local}@{domain}"
    return (
        len(whole) <= 320
        and not any(c.isspace() or ord(c) < 32 for c in whole)
        and ("@" not in local)
    )


def _addresses(message: Message, name: str) -> tuple[str, ...]:
    """Recipients as stored for reference only: read from the raw header with the lighter
    `getaddresses` (the structured parse of a long To line costs more than the rest)."""
    values = [v for k, v in message.raw_items() if k.lower() == name.lower() and isinstance(v, str)]
    try:
        pairs = getaddresses(values)
    except Exception:
        return ()
    return tuple(addr.lower() for _, addr in pairs if "@" in addr and len(addr) <= 320)[:50]


def _ids(message: Message) -> dict[str, list[str]]:
    """Message-ID, In-Reply-To and References as bare ids, read from the raw header text
    (no structured parse needed to find `<…>` tokens)."""
    found: dict[str, list[str]] = {"message-id": [], "in-reply-to": [], "references": []}
    for key, value in message.raw_items():
        ids = found.get(key.lower())
        if ids is not None and isinstance(value, str):
            ids.extend(_MSGID.findall(value))
    return found


def _oneline(text: str) -> str:
    return " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in text).split())


def _text_of(part: Message, charset: str, defects: list[str]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    charset = charset or "us-ascii"
    try:
        return data.decode(charset)
    except LookupError:
        defects.append(f"unknown charset {charset[:40]!r}")
    except UnicodeDecodeError:
        defects.append(f"text not valid {charset[:40]}")
    return data.decode("utf-8", "replace")


def _filename(raw: str, number: int) -> str:
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in _oneline(name) if c not in '<>:"|?*').strip(" .")
    return name[-FILENAME_MAX:] or f"attachment-{number}"


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def _html_text(html: str) -> str:
    reader = _TextOnly()
    reader.feed(html)
    reader.close()
    lines = (" ".join(line.split()) for line in "".join(reader.chunks).splitlines())
    return "\n".join(line for line in lines if line)
