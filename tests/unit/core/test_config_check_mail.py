"""`check-config` on the inbound mailbox: an empty password and plaintext IMAP off loopback."""

from __future__ import annotations

from contactd.config import load_settings
from contactd.config_check import warnings

BASE = {"CONTACTD_AMI__ENABLED": "false", "CONTACTD_WEB__ENABLED": "false",
        "CONTACTD_EMAIL_INBOUND__IMAP_ENABLED": "true",
        "CONTACTD_EMAIL_INBOUND__IMAP_USERNAME": "service"}


def test_plaintext_imap_to_another_host_and_an_empty_password_are_flagged() -> None:
    env = {**BASE, "CONTACTD_EMAIL_INBOUND__IMAP_HOST": "imap.example.net",
           "CONTACTD_EMAIL_INBOUND__IMAP_SECURITY": "none"}
    found = warnings(load_settings(None, env))
    assert found[0].startswith("email_inbound.imap_password is empty")
    assert found[1].startswith("email_inbound.imap_security is none for imap.example.net")


def test_tls_or_loopback_with_a_password_is_fine() -> None:
    env = {**BASE, "CONTACTD_EMAIL_INBOUND__IMAP_PASSWORD": "s3cret-mailbox"}
    assert warnings(load_settings(None, env)) == []
    env["CONTACTD_EMAIL_INBOUND__IMAP_SECURITY"] = "none"  # host is 127.0.0.1 by default
    assert warnings(load_settings(None, env)) == []
