"""`contactd messaging templates` and `contactd messaging preview`: check message templates
from the shell before a campaign uses them (the web panel shows the same preview)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from contactd.cli import EXIT_BAD_INPUT, EXIT_OK, add_config_option, settings_from
from contactd.messaging.templates import TemplateStore


def _store(args: argparse.Namespace) -> TemplateStore:
    return TemplateStore(settings_from(args).general.data_dir / "templates")


def _templates(args: argparse.Namespace) -> int:
    catalogue = _store(args).catalogue()
    for name in sorted(catalogue):
        languages = ", ".join(
            f"{lang} ({'/'.join(sorted(parts))})" for lang, parts in sorted(catalogue[name].items())
        )
        print(f"{name}: {languages}")
    return EXIT_OK


def _preview(args: argparse.Namespace) -> int:
    preview = _store(args).preview(args.name, args.language)
    if preview.rendered is None:
        print(f"contactd: template error: {preview.error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rendered = preview.rendered
    print(f"template: {rendered.name} ({rendered.language}), sample contact and campaign")
    if rendered.sms is not None:
        print(f"\n[sms, {len(rendered.sms)} characters]\n{rendered.sms}")
    if rendered.subject:
        print(f"\n[subject]\n{rendered.subject}")
    print(f"\n[text]\n{rendered.text}", end="")
    if rendered.html:
        print(f"\n[html]\n{rendered.html}")
    return EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("messaging", help="message templates: list and preview")
    commands = parser.add_subparsers(dest="messaging_command", metavar="ACTION", required=True)
    listing = commands.add_parser("templates", help="list templates and their languages")
    add_config_option(listing)
    listing.set_defaults(handler=_templates)
    preview = commands.add_parser("preview", help="render a template with sample data")
    add_config_option(preview)
    preview.add_argument("name")
    preview.add_argument("--language", "-l", default="en")
    preview.set_defaults(handler=_preview)
