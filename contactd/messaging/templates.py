"""Message templates per language: `<name>.<language>.<part>.j2` with part sms, subject, txt, html.

Templates are Jinja2 in a sandbox (administrators edit them from the web panel) with strict
undefined fields, so a typo fails the preview instead of sending "Hello ," to thousands.
Folders given first override the built-in ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from contactd.messaging.errors import TemplateError

BUILTIN_DIR: Final = Path(__file__).with_name("templates")
PARTS: Final = ("sms", "subject", "txt", "html")
DEFAULT_LANGUAGE: Final = "en"
_FILE = re.compile(
    r"^(?P<name>[\w-]+)\.(?P<lang>[A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)\.(?P<part>\w+)\.j2$"
)

SAMPLE_CONTACT: Final[Mapping[str, Any]] = {
    "id": 0,
    "first_name": "Alex",
    "last_name": "Example",
    "display_name": "Alex Example",
    "language": "en",
    "job_title": "Buyer",
    "organisation": "Example Ltd",
    "custom": {},
}
SAMPLE_CAMPAIGN: Final[Mapping[str, Any]] = {
    "id": 0,
    "name": "Spring check-up",
    "caller_id": "+15550100",
    "message": "",
}


@dataclass(frozen=True)
class RenderedMessage:
    name: str
    language: str  # the language actually used after fallback
    subject: str
    text: str
    html: str | None
    sms: str | None


@dataclass(frozen=True)
class Preview:
    """What the web panel shows: the rendering, or the error a template author must fix."""

    rendered: RenderedMessage | None
    error: str | None


class TemplateStore:
    def __init__(self, *folders: Path) -> None:
        self._folders = [*folders, BUILTIN_DIR]
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(f) for f in self._folders]),
            undefined=jinja2.StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def catalogue(self) -> dict[str, dict[str, set[str]]]:
        """name -> language -> parts present, across every folder."""
        out: dict[str, dict[str, set[str]]] = {}
        for folder in self._folders:
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                match = _FILE.match(path.name)
                if match and match["part"] in PARTS:
                    langs = out.setdefault(match["name"], {})
                    langs.setdefault(match["lang"], set()).add(match["part"])
        return out

    def resolve_language(self, name: str, language: str) -> str:
        """Exact tag, then its primary subtag (de-AT -> de), then English, then any."""
        languages = self.catalogue().get(name)
        if not languages:
            raise TemplateError(f"no template named {name!r}", template=name)
        primary = language.split("-")[0].lower()
        for candidate in (language, primary, DEFAULT_LANGUAGE):
            if candidate in languages:
                return candidate
        return sorted(languages)[0]

    def render(
        self,
        name: str,
        language: str,
        *,
        contact: Mapping[str, Any],
        campaign: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RenderedMessage:
        lang = self.resolve_language(name, language)
        parts = self.catalogue()[name][lang]
        context = {**(extra or {}), "contact": contact, "campaign": campaign}
        rendered = {part: self._render_part(name, lang, part, context) for part in parts}
        text = rendered.get("txt") or rendered.get("sms") or ""
        return RenderedMessage(
            name=name,
            language=lang,
            subject=" ".join((rendered.get("subject") or "").split()),
            text=text,
            html=rendered.get("html"),
            sms=" ".join(rendered["sms"].split()) if "sms" in rendered else None,
        )

    def _render_part(self, name: str, lang: str, part: str, context: dict[str, Any]) -> str:
        filename = f"{name}.{lang}.{part}.j2"
        try:
            return self._env.get_template(filename).render(context).strip() + (
                "\n" if part == "txt" else ""
            )
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{filename} line {exc.lineno}: {exc.message}", template=name, part=part
            ) from None
        except (jinja2.UndefinedError, jinja2.exceptions.SecurityError) as exc:
            raise TemplateError(f"{filename}: {exc}", template=name, part=part) from None

    def preview(
        self,
        name: str,
        language: str,
        *,
        contact: Mapping[str, Any] | None = None,
        campaign: Mapping[str, Any] | None = None,
    ) -> Preview:
        """Render with sample data where none is given; errors come back as text, not raised."""
        try:
            rendered = self.render(
                name,
                language,
                contact=contact if contact is not None else SAMPLE_CONTACT,
                campaign=campaign if campaign is not None else SAMPLE_CAMPAIGN,
            )
        except TemplateError as exc:
            return Preview(None, exc.message)
        return Preview(rendered, None)


def contact_fields(contact: Any, organisation: str = "") -> dict[str, Any]:
    """The fields a template may use from a Contact row."""
    return {
        "id": contact.id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "display_name": contact.display_name,
        "language": contact.language,
        "job_title": contact.job_title,
        "organisation": organisation,
        "custom": dict(contact.custom or {}),
    }


def campaign_fields(campaign: Any) -> dict[str, Any] | None:
    if campaign is None:
        return None
    return {
        "id": campaign.id,
        "name": campaign.name,
        "caller_id": campaign.caller_id,
        "message": campaign.message,
    }
