"""The hand-written RFC 5322 message parses back to exactly what was put in."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from contactd.messaging.email import build_email


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_text_only_message() -> None:
    raw = build_email(sender="a@example.test", to="b@example.test", subject="Hi",
                      text="Plain body\n", html=None, message_id="<1@example.test>")
    message = parse(raw)
    assert message.get_content_type() == "text/plain"
    assert message["Message-ID"] == "<1@example.test>"
    assert message.get_content().replace("\r\n", "\n") == "Plain body\n"


subjects = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200)


@given(subject=subjects, text=st.text(max_size=500), html=st.text(min_size=1, max_size=300))
def test_any_unicode_round_trips(subject: str, text: str, html: str) -> None:
    raw = build_email(sender="a@example.test", to="b@example.test", subject=subject,
                      text=text, html=html, message_id="<2@example.test>")
    message = parse(raw)
    assert " ".join(str(message["Subject"]).split()) == " ".join(subject.split())
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content() == text
    assert rich.get_content() == html
