"""Per-language templates, fallbacks, strictness and the panel preview."""

from __future__ import annotations

from pathlib import Path

import pytest

from contactd.messaging.errors import TemplateError
from contactd.messaging.templates import SAMPLE_CONTACT, TemplateStore

CONTACT = {**SAMPLE_CONTACT, "first_name": "Zoë", "display_name": "Zoë Quinn"}
CAMPAIGN = {"id": 1, "name": "Frühjahrs-Check", "caller_id": "+4930123456", "message": ""}


def test_renders_every_part_in_the_requested_language() -> None:
    rendered = TemplateStore().render("call_fallback", "de", contact=CONTACT, campaign=CAMPAIGN)
    assert rendered.language == "de"
    assert rendered.subject == "Wir haben versucht, Sie zu erreichen: Frühjahrs-Check"
    assert rendered.sms is not None and rendered.sms.startswith("Hallo Zoë,")
    assert "+4930123456" in rendered.sms
    assert rendered.text.startswith("Hallo Zoë,\n\nwir haben versucht")
    assert rendered.html is not None and "<strong>Frühjahrs-Check</strong>" in rendered.html


@pytest.mark.parametrize(("asked", "used"), [("de-AT", "de"), ("DE", "de"), ("fr", "en")])
def test_language_falls_back_to_primary_tag_then_english(asked: str, used: str) -> None:
    rendered = TemplateStore().render("call_fallback", asked, contact=CONTACT)
    assert rendered.language == used


def test_html_is_escaped_and_text_is_not(tmp_path: Path) -> None:
    (tmp_path / "note.en.txt.j2").write_text("Hi {{ contact.first_name }}")
    (tmp_path / "note.en.html.j2").write_text("<p>Hi {{ contact.first_name }}</p>")
    contact = {**CONTACT, "first_name": "<Bob & Co>"}
    rendered = TemplateStore(tmp_path).render("note", "en", contact=contact)
    assert rendered.text == "Hi <Bob & Co>\n"
    assert rendered.html == "<p>Hi &lt;Bob &amp; Co&gt;</p>"


def test_a_folder_given_first_overrides_the_builtin(tmp_path: Path) -> None:
    (tmp_path / "call_fallback.en.sms.j2").write_text("Custom for {{ contact.last_name }}")
    rendered = TemplateStore(tmp_path).render("call_fallback", "en", contact=CONTACT)
    assert rendered.sms == "Custom for Example"


def test_unknown_field_fails_and_preview_reports_it(tmp_path: Path) -> None:
    (tmp_path / "typo.en.sms.j2").write_text("Hello {{ contact.frist_name }}")
    store = TemplateStore(tmp_path)
    with pytest.raises(TemplateError) as caught:
        store.render("typo", "en", contact=CONTACT)
    assert caught.value.code == "template_invalid"
    preview = store.preview("typo", "en")
    assert preview.rendered is None
    assert preview.error is not None and "frist_name" in preview.error


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.en.sms.j2").write_text("line one\n{% if %}")
    preview = TemplateStore(tmp_path).preview("broken", "en")
    assert preview.error is not None and "broken.en.sms.j2 line 2" in preview.error


def test_preview_uses_sample_data() -> None:
    preview = TemplateStore().preview("call_fallback", "en")
    assert preview.error is None and preview.rendered is not None
    assert preview.rendered.sms is not None and "Alex" in preview.rendered.sms


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path) -> None:
    (tmp_path / "evil.en.sms.j2").write_text("{{ contact.__class__.__mro__ }}")
    preview = TemplateStore(tmp_path).preview("evil", "en")
    assert preview.error is not None


def test_unknown_template_is_an_error() -> None:
    with pytest.raises(TemplateError):
        TemplateStore().render("nope", "en", contact=CONTACT)
