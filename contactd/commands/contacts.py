"""`contactd contact show|merge` and `contactd dnc add|remove|list`: the records from a shell.

Thin: each command calls the same services the panel uses (timeline, merge, DncService) and
prints either a readable card or, with --json, one JSON document.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.crm.dnc import DncService
from contactd.crm.merge import merge_contacts
from contactd.crm.timeline import timeline
from contactd.db.bootstrap import open_database
from contactd.db.models.crm import Contact
from contactd.errors import NotFoundError


def _json(value: Any) -> str:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat()
        return str(item)

    return json.dumps(value, default=default, ensure_ascii=False, indent=2)


async def _show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        async with db.session() as session:
            contact = await session.scalar(
                select(Contact).where(Contact.id == args.id).options(
                    selectinload(Contact.phones), selectinload(Contact.emails),
                    selectinload(Contact.organisation))
            )
            if contact is None:
                raise NotFoundError(f"no contact {args.id}", field="id")
            card: dict[str, Any] = {
                "id": contact.id, "first_name": contact.first_name,
                "last_name": contact.last_name,
                "organisation": contact.organisation.name if contact.organisation else None,
                "job_title": contact.job_title, "language": contact.language,
                "preferred_channel": contact.preferred_channel,
                "phones": [p.e164 for p in contact.phones],
                "emails": [e.address for e in contact.emails],
                "notes": contact.notes, "custom": contact.custom,
                "merged_into": contact.merged_into_id,
            }
        entries = await timeline(db, args.id, limit=args.limit)
    if args.json:
        history = [{"at": e.at, "kind": e.kind.value, "id": e.id, "title": e.title,
                    "detail": e.detail} for e in entries]
        print(_json({"contact": card, "timeline": history}))
        return EXIT_OK
    name = f"{card['first_name']} {card['last_name']}".strip() or "(no name)"
    print(f"#{card['id']} {name}" + (f" — {card['organisation']}" if card["organisation"] else ""))
    if card["merged_into"]:
        print(f"  merged into #{card['merged_into']}")
    for label in ("phones", "emails"):
        if card[label]:
            print(f"  {label}: {', '.join(card[label])}")
    if card["notes"]:
        print(f"  notes: {card['notes']}")
    print(f"timeline ({len(entries)} entries, newest first):")
    for entry in entries:
        outcome = entry.detail.get("outcome") or entry.detail.get("status") or ""
        print(f"  {entry.at:%Y-%m-%d %H:%M}  {entry.kind.value:<12} {entry.title}"
              + (f"  [{outcome}]" if outcome else ""))
    return EXIT_OK


async def _merge(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        result = await merge_contacts(db, args.survivor, args.merged)
    if args.json:
        print(_json({"survivor_id": result.survivor_id, "merged_id": result.merged_id,
                     "moved": result.moved}))
    else:
        moved = ", ".join(f"{n} {what}" for what, n in result.moved.items() if n) or "nothing"
        print(f"contact #{result.merged_id} merged into #{result.survivor_id} (moved: {moved})")
    return EXIT_OK


async def _dnc(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        service = DncService(db, default_region=settings.general.default_region)
        if args.dnc_action == "add":
            e164, new = await service.add(args.number, reason=args.reason,
                                          campaign=args.campaign)
            out: Any = {"number": e164, "added": new}
            text = f"{e164} {'added to' if new else 'was already on'} the do-not-call list"
        elif args.dnc_action == "remove":
            e164 = await service.remove(args.number, campaign=args.campaign)
            out = {"number": e164, "removed": True}
            text = f"{e164} removed from the do-not-call list"
        else:
            entries = await service.entries(campaign=args.campaign)
            out = [{"number": e.e164, "campaign": e.campaign, "reason": e.reason,
                    "source": e.source, "created_at": e.created_at} for e in entries]
            text = "\n".join(
                f"{e.e164:<16} {e.campaign or '(all campaigns)':<20} {e.source:<12} {e.reason}"
                for e in entries) or "the do-not-call list is empty"
    print(_json(out) if args.json else text)
    return EXIT_OK


def register(sub: Any) -> None:
    contact = sub.add_parser("contact", help="show a contact's card and timeline, merge two")
    csub = contact.add_subparsers(dest="contact_action", metavar="ACTION", required=True)
    show = csub.add_parser("show", help="the card and the timeline of one contact")
    show.add_argument("id", type=int, metavar="ID")
    show.add_argument("--limit", type=int, default=50, help="timeline entries (default 50)")
    merge = csub.add_parser("merge", help="merge contact B into contact A (A survives)")
    merge.add_argument("survivor", type=int, metavar="A")
    merge.add_argument("merged", type=int, metavar="B")
    show.set_defaults(handler=lambda a: run_async(_show(a)))
    merge.set_defaults(handler=lambda a: run_async(_merge(a)))

    dnc = sub.add_parser("dnc", help="the do-not-call list")
    dsub = dnc.add_subparsers(dest="dnc_action", metavar="ACTION", required=True)
    add = dsub.add_parser("add", help="never dial this number")
    add.add_argument("number")
    add.add_argument("--reason", default="", help="why (kept with the entry)")
    remove = dsub.add_parser("remove", help="take a number off the list")
    remove.add_argument("number")
    listing = dsub.add_parser("list", help="every number on the list")
    for parser in (add, remove, listing):
        parser.add_argument("--campaign", metavar="NAME",
                            help="only for this campaign (default: every campaign)")
        parser.set_defaults(handler=lambda a: run_async(_dnc(a)))
    for parser in (show, merge, add, remove, listing):
        add_config_option(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
