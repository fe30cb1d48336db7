"""Settings that validate but are unsafe to run with: shown by `contactd check-config`."""

from __future__ import annotations

from pydantic import SecretStr

from contactd.config import Settings
from contactd.web.assets import asset_root
from contactd.web.i18n import has_catalogue

# What the shipped examples hold (contactd.example.toml, asterisk-config/manager.conf).
PLACEHOLDER_MARKS = ("change-me", "changeme")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _problem(value: SecretStr) -> str | None:
    text = value.get_secret_value().strip().lower()
    if not text:
        return "is empty"
    if any(mark in text for mark in PLACEHOLDER_MARKS):
        return "is still the example's placeholder"
    return None


def warnings(settings: Settings) -> list[str]:
    """One line per problem, naming the key and never the secret itself."""
    out: list[str] = []
    secrets = {
        "ami.secret": (settings.ami.enabled, settings.ami.secret),
        "smpp.password": (settings.smpp.enabled, settings.smpp.password),
        "email.password": (
            settings.email.enabled and settings.email.username,
            settings.email.password,
        ),
        "web.secret_key": (settings.web.enabled, settings.web.secret_key),
        "email_inbound.imap_password": (
            settings.email_inbound.imap_enabled, settings.email_inbound.imap_password,
        ),
    }
    for key, (enabled, value) in secrets.items():
        problem = _problem(value) if enabled else None
        if problem:
            variable = "CONTACTD_" + key.upper().replace(".", "__")
            out.append(f"{key} {problem}: set a real value (or {variable})")
    inbound = settings.email_inbound
    if (inbound.imap_enabled and inbound.imap_security == "none"
            and inbound.imap_host not in LOOPBACK_HOSTS):
        out.append(f"email_inbound.imap_security is none for {inbound.imap_host}: the mailbox "
                   "password and mail cross the network unencrypted; use tls")
    if settings.web.enabled:
        locale_dir = asset_root() / "locale"
        untranslated = [lang for lang in settings.web.languages
                        if lang != "en" and not has_catalogue(locale_dir, lang)]
        if untranslated:
            out.append(f"web.languages lists {', '.join(untranslated)} without a catalogue: the "
                       "panel shows English for it (start one with scripts/catalogues --init)")
    return out
