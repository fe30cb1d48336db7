"""The MIME intake: what it reads from good mail, and how it refuses hostile mail (never by
raising anything but MailRefusedError), including a hypothesis fuzz of both."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contactd.messaging import mail_in
from contactd.messaging.mail_in import MailLimits, MailRefusedError, ParsedMail, parse_mail

LIMITS = MailLimits(max_bytes=64 * 1024, max_depth=6, max_parts=40)


def _mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", "Chikondi Banda <Chikondi@Example.MW>")
    message["To"] = "service@contactd.test"
    message["Subject"] = headers.pop("Subject", "Invoice question")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Moni, I have a question about invoice 42.\n")
    return message


def test_a_plain_mail_gives_sender_text_and_thread_ids() -> None:
    message = _mail(Message_ID="<a1@example.mw>", In_Reply_To="<x9@contactd.test>",
                    References="<root@contactd.test> <x9@contactd.test>")
    parsed = parse_mail(message.as_bytes(), LIMITS)
    assert parsed.sender == "Chikondi@example.mw"
    assert parsed.sender_name == "Chikondi Banda"
    assert parsed.subject == "Invoice question"
    assert parsed.text.startswith("Moni, I have a question")
    assert parsed.message_id == "a1@example.mw"
    assert parsed.thread_refs == ("x9@contactd.test", "root@contactd.test")
    assert parsed.recipients == ("service@contactd.test",)


def test_attachments_are_kept_with_safe_names_and_html_only_mail_reads_as_text() -> None:
    message = _mail()
    message.clear_content()
    message.set_content("<p>Price list</p><script>alert(1)</script><p>attached</p>",
                        subtype="html")
    message.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                           filename="../../etc/passwd\x07.pdf")
    message.add_attachment(b"\x89PNG", maintype="image", subtype="png")
    parsed = parse_mail(message.as_bytes(), LIMITS)
    assert parsed.text == "Price list\nattached"
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("passwd .pdf", "application/pdf", b"%PDF-1.4 fake"),
        ("attachment-2", "image/png", b"\x89PNG"),
    ]


def test_an_unknown_charset_is_read_leniently_and_named_as_a_defect() -> None:
    raw = (b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=x-klingon\r\n"
           b"\r\nhello \xff world\r\n")
    parsed = parse_mail(raw, LIMITS)
    assert parsed.text.startswith("hello \ufffd world")
    assert parsed.defects == ("unknown charset 'x-klingon'",)


def test_broken_base64_and_bad_encoded_words_do_not_refuse() -> None:
    raw = (b"From: =?utf-8?B?!!!?= <a@example.com>\r\nSubject: =?x-unknown?Q?caf=E9?=\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\naGVsbG8*** gd29ybGQ=\r\n")
    parsed = parse_mail(raw, LIMITS)
    assert parsed.sender == "a@example.com"


@pytest.mark.parametrize(("raw", "code"), [
    (b"Subject: nobody\r\n\r\nbody\r\n", "mail_no_sender"),
    (b"From: not an address\r\n\r\nbody\r\n", "mail_no_sender"),
    (b"From: a@localhost\r\n\r\nbody\r\n", "mail_no_sender"),
    (b"From: a@example.com\r\n\r\n" + b"x" * (64 * 1024), "mail_too_large"),
])
def test_refusals_carry_a_stable_code(raw: bytes, code: str) -> None:
    with pytest.raises(MailRefusedError) as caught:
        parse_mail(raw, LIMITS)
    assert caught.value.code == code


def _nested(depth: int) -> bytes:
    head = b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        body = (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
                + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return head + body


def test_nesting_up_to_the_cap_is_read_and_deeper_is_refused() -> None:
    assert parse_mail(_nested(LIMITS.max_depth - 1), LIMITS).text.strip() == "innermost"
    with pytest.raises(MailRefusedError) as caught:
        parse_mail(_nested(LIMITS.max_depth), LIMITS)
    assert caught.value.code == "mail_too_deep"


def test_thousands_of_nested_multiparts_are_refused_before_parsing() -> None:
    limits = MailLimits(max_bytes=10_000_000, max_depth=6, max_parts=40)
    with pytest.raises(MailRefusedError) as caught:
        parse_mail(_nested(3000), limits)
    assert caught.value.code == "mail_too_many_parts"


def _outcome(raw: bytes) -> ParsedMail | MailRefusedError:
    try:
        return parse_mail(raw, LIMITS)
    except MailRefusedError as exc:
        return exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_parse_or_are_refused(raw: bytes) -> None:
    assert isinstance(_outcome(raw), ParsedMail | MailRefusedError)


_header_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
_charsets = st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "x-bogus", "utf-16", "", "\""])
_encodings = st.sampled_from(["7bit", "base64", "quoted-printable", "x-uuencode", "8bit"])


@st.composite
def _hostile_mime(draw: st.DrawFn) -> bytes:
    lines = [b"From: " + draw(st.sampled_from([b"a@example.com", b"<@>", b"=?utf-8?q?x?=",
                                               b"\"\\\" <b@example.org>", b""]))]
    lines.append(b"Subject: " + draw(_header_text).encode("utf-8", "surrogatepass"))
    lines.append(b"Message-ID: " + draw(st.binary(max_size=60)).replace(b"\n", b""))
    depth = draw(st.integers(0, 9))
    body = (b"Content-Type: text/" + draw(st.sampled_from([b"plain", b"html", b"x"]))
            + b"; charset=" + draw(_charsets).encode() + b"\r\nContent-Transfer-Encoding: "
            + draw(_encodings).encode() + b"\r\n\r\n" + draw(st.binary(max_size=200)))
    for level in range(depth):
        boundary = draw(st.sampled_from([f"b{level}".encode(), b"same", b""]))
        body = (b'Content-Type: multipart/' + draw(st.sampled_from([b"mixed", b"alternative",
                                                                   b"digest", b"x"]))
                + b'; boundary="' + boundary + b'"\r\n\r\n--' + boundary + b"\r\n" + body
                + (b"\r\n--" + boundary + b"--\r\n" if draw(st.booleans()) else b""))
    if draw(st.booleans()):
        body = b"Content-Type: message/rfc822\r\n\r\n" + body
    return b"\r\n".join(lines) + b"\r\nMIME-Version: 1.0\r\n" + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hostile_mime())
def test_structured_hostile_mime_parses_or_is_refused(raw: bytes) -> None:
    result = _outcome(raw)
    assert isinstance(result, ParsedMail | MailRefusedError)
    if isinstance(result, ParsedMail):
        assert "@" in result.sender and len(result.subject) <= 300


_HEADER_CHARS = " \t\"<>@,.;:()\\=?/*'%abcAB01-_+éü"


def _part(name: str, value: str) -> Message:
    part = email.message_from_string(f"{name}: {value}\n\nbody\n", policy=email.policy.compat32)
    assert isinstance(part, Message)
    return part


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.from_regex(mail_in._PLAIN_FROM, fullmatch=True),
        st.text(alphabet=_HEADER_CHARS, max_size=40),
    )
)
def test_the_plain_from_reading_agrees_with_the_structured_parser(value: str) -> None:
    part = _part("From", value)
    raw = mail_in._raw(part, "From")
    plain = None if raw is None else mail_in._plain_sender(raw)
    if plain is not None:  # read without the parser: the parser's answer exactly
        assert plain == mail_in._structured_sender(part)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(["Content-Type", "Content-Disposition"]),
    value=st.one_of(
        st.from_regex(mail_in._PLAIN_CTYPE, fullmatch=True),
        st.from_regex(mail_in._PLAIN_DISPOSITION, fullmatch=True),
        st.text(alphabet=_HEADER_CHARS, max_size=40),
    ),
)
def test_the_plain_mime_header_reading_agrees_with_the_structured_parser(
    name: str, value: str
) -> None:
    part = _part(name, value)
    raw = mail_in._raw(part, name)
    plain = None if raw is None else mail_in._plain_mime(name, raw)
    if plain is not None:
        assert plain == mail_in._structured_mime(part, name)


def test_the_plain_readings_cover_what_a_mail_client_writes() -> None:
    """The fast readings are taken for the usual headers (else they would save nothing)."""
    assert mail_in._plain_sender("Chikondi Banda <Chikondi@Example.MW>") == [
        ("Chikondi", "Example.MW", "Chikondi Banda")
    ]
    assert mail_in._plain_sender('"Banda, Chikondi" <c.banda@example.mw>') == [
        ("c.banda", "example.mw", "Banda, Chikondi")
    ]
    assert mail_in._plain_mime("content-type", 'text/plain; charset="utf-8"') == (
        "text/plain",
        {"charset": "utf-8"},
    )
    assert mail_in._plain_mime("content-disposition", 'attachment; filename="list.csv"') == (
        "attachment",
        {"filename": "list.csv"},
    )


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=_HEADER_CHARS + "\x01\x7f", max_size=60))
def test_the_plain_subject_reading_agrees_with_the_structured_parser(value: str) -> None:
    part = _part("Subject", value)
    structured = str(mail_in._get(part, "Subject"))
    assert mail_in._header(part, "Subject") == structured
