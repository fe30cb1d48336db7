"""`contactd campaign create NAME --mode MODE (--from-file FILE | --from-segment NAME)`.

The campaign is stored as a draft with its leads; `contactd dialer start NAME` runs it.
Exit codes: 0 created, 2 bad input (a field, the file, an unknown segment, a name in use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.crm.search import ContactSearch, Filters
from contactd.db.bootstrap import open_database
from contactd.db.session import Database
from contactd.dialer.create import (
    AUTOMATED_KINDS,
    CampaignSpec,
    create_campaign,
    numbers_from_text,
)
from contactd.enums import CampaignMode
from contactd.errors import ValidationError

SEGMENT_PAGE: int = 1000


async def segment_contacts(db: Database, segment: str) -> list[int]:
    """Every contact a saved segment selects (NotFoundError for an unknown one)."""
    search = ContactSearch(db)
    filters = Filters(segment=segment)
    ids: list[int] = []
    while True:
        page = await search.search(filters, limit=SEGMENT_PAGE, offset=len(ids))
        ids += [hit.contact_id for hit in page.hits]
        if len(page.hits) < SEGMENT_PAGE:
            return ids


async def _create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    spec = CampaignSpec(
        name=args.name, mode=args.mode, caller_id=args.caller_id, message=args.message,
        message_text=args.message_text, ivr_flow=args.ivr_flow, agent_queue=args.agent_queue,
        max_attempts=args.max_attempts,
    )
    numbers: list[tuple[str, str]] = []
    if args.from_file is not None:
        path = Path(args.from_file)
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read {path}: {exc}", field="from_file") from None
        numbers = [(f"{path.name} {where}", raw) for where, raw in numbers_from_text(text)]
    async with await open_database(settings) as db:
        contacts = await segment_contacts(db, args.from_segment) if args.from_segment else []
        created = await create_campaign(db, settings, spec, numbers=numbers, contacts=contacts)
    if args.json:
        print(json.dumps({"campaign_id": created.campaign_id, "name": created.name,
                          "leads": created.leads,
                          "skipped": [{"where": w, "reason": r} for w, r in created.skipped]}))
    else:
        print(f"campaign {created.name} created (draft, id {created.campaign_id}) with "
              f"{created.leads} leads; {len(created.skipped)} skipped")
        for where, reason in created.skipped:
            print(f"  skipped {where}: {reason}")
        print(f"start it with: contactd dialer start {created.name}")
    return EXIT_OK


def register(sub: Any) -> None:
    campaign = sub.add_parser("campaign", help="outbound campaigns: create one with its leads")
    csub = campaign.add_subparsers(dest="campaign_command", metavar="COMMAND", required=True)
    cr = csub.add_parser("create", help="create a draft campaign and its leads")
    cr.add_argument("name", help="campaign name (letters, digits, '_', '.', '-')")
    cr.add_argument("--mode", required=True,
                    choices=[*(m.value for m in CampaignMode), *AUTOMATED_KINDS],
                    help="message speaks --message-text, survey runs --flow (both automated: "
                         "no agents); automated plays --message or runs --ivr-flow; the "
                         "others need agents")
    source = cr.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-file", metavar="FILE",
                        help="numbers: a CSV with a 'phone' column, or one number per line")
    source.add_argument("--from-segment", metavar="NAME",
                        help="the contacts of a saved segment, each on its primary number")
    cr.add_argument("--caller-id", default="", help='e.g. "Acme" <5550100>')
    cr.add_argument("--message", default="",
                    help="automated: the sound file to play, e.g. custom/spring-offer")
    cr.add_argument("--message-text", default="",
                    help='message: the text spoken to the callee, e.g. "Hello {first_name}, '
                         '..." ({first_name}, {last_name}, {name} are filled in)')
    cr.add_argument("--ivr-flow", "--flow", dest="ivr_flow",
                    help="survey/automated: the IVR flow to run (shipped: survey, intake)")
    cr.add_argument("--agent-queue", help="hand people to this Asterisk queue")
    cr.add_argument("--max-attempts", type=int, help="default: [dialer] max_attempts")
    cr.add_argument("--json", action="store_true", help="one JSON object")
    add_config_option(cr)
    cr.set_defaults(handler=lambda a: run_async(_create(a)))
