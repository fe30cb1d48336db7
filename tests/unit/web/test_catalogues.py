"""Every string the templates and Python use is translated in every shipped catalogue, with
the same placeholders, and the panel renders in each language from the .po alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from contactd.config import load_settings
from contactd.config_check import warnings
from contactd.web import i18n
from contactd.web.catalogues import extract, gaps, languages, po_path, read, report

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ("ru", "ny", "de")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.fixture(scope="module")
def template() -> Catalog:
    return extract(ROOT)


def test_every_language_ships_a_catalogue() -> None:
    assert set(SHIPPED) <= set(languages(ROOT))


@pytest.mark.parametrize("language", SHIPPED)
def test_the_catalogue_has_every_string_translated(template: Catalog, language: str) -> None:
    found = gaps(template, read(po_path(ROOT, language), language))
    assert not found.lacking(), (
        f"{language} lacks {len(found.lacking())} strings (run scripts/catalogues): "
        f"missing {found.missing}, untranslated {found.untranslated}, fuzzy {found.fuzzy}"
    )


@pytest.mark.parametrize("language", SHIPPED)
def test_translations_keep_the_placeholders(language: str) -> None:
    for message in read(po_path(ROOT, language), language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, (language, message.id, string)


def test_a_new_string_in_a_template_is_reported_per_language(tmp_path: Path) -> None:
    (tmp_path / "web" / "templates").mkdir(parents=True)
    (tmp_path / "contactd").mkdir()
    (tmp_path / "web" / "babel.cfg").write_text((ROOT / "web" / "babel.cfg").read_text())
    (tmp_path / "web" / "templates" / "floor.html").write_text(
        '<h1>{{ _("Live floor") }}</h1><p>{{ _("Contacts") }}</p>'
    )
    folder = tmp_path / "web" / "locale" / "ny" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "contactd.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Contacts"\nmsgstr "Makasitomala"\n'
    )
    found = report(tmp_path)["ny"]
    assert found.missing == ["Live floor"]
    assert found.lacking() == ["Live floor"]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ru", "Контакты"),
        ("ny", "Makasitomala"),
        ("de", "Kontakte"),
        ("en", "Contacts"),
    ],
)
def test_the_panel_translates_from_the_po_file(language: str, expected: str) -> None:
    assert i18n.activate(ROOT / "web" / "locale", language) == language
    try:
        assert i18n.gettext("Contacts") == expected
    finally:
        i18n.activate(ROOT / "web" / "locale", "en")


def test_russian_plurals_follow_the_number() -> None:
    i18n.activate(ROOT / "web" / "locale", "ru")
    try:
        said = [
            i18n.ngettext("%(num)d SMS segment", "%(num)d SMS segments", n) % {"num": n}
            for n in (1, 3, 5)
        ]
    finally:
        i18n.activate(ROOT / "web" / "locale", "en")
    assert said == ["1 сегмент SMS", "3 сегмента SMS", "5 сегментов SMS"]


def test_check_config_warns_of_a_language_without_a_catalogue() -> None:
    settings = load_settings(None, {"CONTACTD_WEB__LANGUAGES": '["en", "ny", "fr"]'})
    found = [w for w in warnings(settings) if w.startswith("web.languages")]
    assert found == [
        "web.languages lists fr without a catalogue: the panel shows English for it "
        "(start one with scripts/catalogues --init)"
    ]
