"""The panel's message catalogues: extract every `_()` string from the templates and Python
(web/babel.cfg), merge them into each web/locale/<lang>/LC_MESSAGES/contactd.po, and say
exactly which msgids each language still lacks (missing, untranslated or fuzzy).

`scripts/catalogues` runs this (see web/locale/README.md); the catalogue test uses `report`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from contactd.web.i18n import DOMAIN

SOURCE_LANGUAGE = "en"  # the msgids are English: no catalogue needed
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gaps:
    missing: list[str] = field(default_factory=list)  # not in the .po at all
    untranslated: list[str] = field(default_factory=list)
    fuzzy: list[str] = field(default_factory=list)
    obsolete: list[str] = field(default_factory=list)  # in the .po, no longer used

    def lacking(self) -> list[str]:
        return self.missing + self.untranslated + self.fuzzy


def extract(root: Path = ROOT) -> Catalog:
    """Every translatable string the templates and Python use, with where it is used."""
    with (root / "web" / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)  # type: ignore[no-untyped-call]
    template = Catalog(domain=DOMAIN, project="contactd", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map
    ):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def po_path(root: Path, language: str) -> Path:
    return root / "web" / "locale" / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages(root: Path = ROOT) -> list[str]:
    return sorted(
        p.name
        for p in (root / "web" / "locale").iterdir()
        if (p / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    )


def read(path: Path, language: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def _key(message_id: str | tuple[str, ...] | list[str]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def gaps(template: Catalog, catalog: Catalog) -> Gaps:
    found = Gaps()
    for message in template:
        if not message.id:
            continue
        have = catalog.get(message.id, message.context)
        key = _key(message.id)
        if have is None:
            found.missing.append(key)
        elif have.fuzzy:
            found.fuzzy.append(key)
        elif not (all(have.string) if isinstance(have.string, tuple) else have.string):
            found.untranslated.append(key)
    used = {_key(m.id) for m in template if m.id}
    found.obsolete = [_key(m.id) for m in catalog if m.id and _key(m.id) not in used]
    return found


def report(root: Path = ROOT) -> dict[str, Gaps]:
    template = extract(root)
    return {lang: gaps(template, read(po_path(root, lang), lang)) for lang in languages(root)}


def update(root: Path = ROOT) -> None:
    """Merges the extracted strings into every catalogue (new ones untranslated, none fuzzy;
    strings no longer used are dropped)."""
    template = extract(root)
    with (root / "web" / "locale" / f"{DOMAIN}.pot").open("wb") as handle:
        write_po(handle, template, width=100, sort_output=True)
    for language in languages(root):
        path = po_path(root, language)
        catalog = read(path, language)
        catalog.update(template, no_fuzzy_matching=True)
        with path.open("wb") as handle:
            write_po(
                handle,
                catalog,
                width=100,
                sort_output=True,
                ignore_obsolete=True,
                include_previous=False,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/catalogues",
        description="Extract the panel's strings, update web/locale/*/LC_MESSAGES/contactd.po "
        "and list, per language, every msgid not yet translated.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report (write nothing); exit 1 when a string is lacking",
    )
    parser.add_argument("--init", metavar="LANG", help="start a catalogue for a new language")
    args = parser.parse_args(argv)
    if args.init:
        path = po_path(ROOT, args.init)
        if path.exists():
            print(f"{path} exists", file=sys.stderr)
            return 2
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(
                handle, Catalog(locale=args.init, domain=DOMAIN, project="contactd", fuzzy=False)
            )
    if not args.check:
        update(ROOT)
    lacking = 0
    for language, found in report(ROOT).items():
        print(
            f"{language}: {len(found.lacking())} lacking "
            f"({len(found.missing)} missing, {len(found.untranslated)} untranslated, "
            f"{len(found.fuzzy)} fuzzy)"
        )
        for kind in ("missing", "untranslated", "fuzzy"):
            for msgid in getattr(found, kind):
                print(f"  {kind}: {msgid!r}")
        lacking += len(found.lacking())
    return 1 if lacking else 0


if __name__ == "__main__":
    sys.exit(main())
