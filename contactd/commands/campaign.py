"""`contactd campaign create NAME --mode MODE (--from-file FILE | --from-segment NAME)`.

A call campaign is stored as a draft with its leads; `contactd dialer start NAME` runs it. An
SMS or e-mail campaign (`--mode sms|email --template T`) is stored as a draft too: its audience
counted and a sample message rendered, nothing sent. `contactd campaign start NAME` decides for
each contact and queues the messages (the running daemon's outbox sends each, held until the
contact's window opens); `contactd campaign pause NAME` cancels the queued ones not sent yet,
and `start` again sends them. `contactd campaign status NAME` shows where either kind stands.
Exit codes: 0 done, 2 bad input (a field, the file, an unknown segment, a name in use, a
campaign that cannot start or pause now).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.commands.dialer import daemon_answers, daemon_note
from contactd.crm.routing import Router
from contactd.crm.search import ContactSearch, Filters
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.bootstrap import open_database
from contactd.db.session import Database
from contactd.dialer import repo
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.create import (
    AUTOMATED_KINDS,
    CampaignSpec,
    create_campaign,
    numbers_from_text,
)
from contactd.dialer.governor import DAY_S
from contactd.dialer.recovery import change_status
from contactd.dialer.stats import campaign_stats
from contactd.enums import MESSAGE_CAMPAIGN_MODES, CampaignMode
from contactd.errors import ValidationError
from contactd.messaging.campaigns import (
    MessageCampaigns,
    MessageCampaignSpec,
    entries_from_text,
    message_progress,
)
from contactd.messaging.service import MessagingService

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


async def _read(path: Path) -> str:
    try:
        return await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}", field="from_file") from None


async def _create_messages(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not args.template:
        raise ValidationError(
            f"--mode {args.mode} needs --template (a message template)", field="template"
        )
    mode = CampaignMode(args.mode)
    entries: list[tuple[str, str]] = []
    if args.from_file is not None:
        path = Path(args.from_file)
        entries = [
            (f"{path.name} {w}", raw) for w, raw in entries_from_text(await _read(path), mode)
        ]
    async with await open_database(settings) as db:
        service = _messages(settings, db)
        spec = MessageCampaignSpec(args.name, mode, args.template)
        service.check(spec)
        ids = await segment_contacts(db, args.from_segment) if args.from_segment else []
        drafted = await service.draft(spec, entries=entries, contacts=ids)
    sample = {
        "for": drafted.sample_for,
        "subject": drafted.sample_subject,
        "body": drafted.sample_body,
        "error": drafted.sample_error,
    }
    if args.json:
        print(
            json.dumps(
                {
                    "campaign_id": drafted.campaign_id,
                    "name": drafted.name,
                    "mode": mode.value,
                    "status": "draft",
                    "audience": drafted.audience,
                    "skipped": [{"where": w, "reason": r} for w, r in drafted.skipped],
                    "sample": sample,
                }
            )
        )
        return EXIT_OK
    print(
        f"{mode.value} campaign {drafted.name} (draft, id {drafted.campaign_id}) for "
        f"{drafted.audience} contacts; {len(drafted.skipped)} skipped; nothing sent"
    )
    for where, reason in drafted.skipped:
        print(f"  skipped {where}: {reason}")
    if drafted.sample_error:
        print(f"sample for {drafted.sample_for}: the template fails: {drafted.sample_error}")
    elif drafted.sample_for:
        print(f"sample for {drafted.sample_for}:")
        if drafted.sample_subject:
            print(f"  subject: {drafted.sample_subject}")
        print("\n".join(f"  {line}" for line in drafted.sample_body.splitlines()))
    print(f"start it with: contactd campaign start {drafted.name}")
    return EXIT_OK


def _messages(settings: Any, db: Database) -> MessageCampaigns:
    """The service alone (not entered): messages are stored; the daemon's outbox sends them."""
    contacts = ContactService(db, default_region=settings.general.default_region)
    messaging = MessagingService(settings, db)
    router = Router(db, contacts, TaskService(db))
    return MessageCampaigns(settings, db, router, messaging.outbox, messaging.templates)


async def _start_or_pause(args: argparse.Namespace) -> int:
    """`campaign start|pause NAME`: a messaging campaign through its service; a call campaign
    as `dialer start|pause` does it."""
    settings = settings_from(args)
    action = args.campaign_command
    async with await open_database(settings) as db:
        async with db.session() as session:
            campaign = await repo.campaign_by_name(session, args.name)
        if campaign.mode not in MESSAGE_CAMPAIGN_MODES:
            status = await change_status(db, args.name, CampaignAction(action))
            out: dict[str, Any] = {"name": args.name, "status": status.value}
            lines = [f"campaign {args.name} is {status.value}"]
        elif action == "start":
            started = await _messages(settings, db).start(campaign.id)
            out = {
                "name": args.name,
                "status": "running",
                "queued": started.queued,
                "held": started.held,
                "skipped": [{"where": w, "reason": r} for w, r in started.skipped],
            }
            lines = [
                f"campaign {args.name} is running: {started.queued} messages queued, "
                f"{started.held} held for quiet hours; {len(started.skipped)} skipped",
                *(f"  skipped {where}: {reason}" for where, reason in started.skipped),
            ]
        else:
            cancelled = await _messages(settings, db).pause(campaign.id)
            out = {"name": args.name, "status": "paused", "cancelled": cancelled}
            lines = [
                f"campaign {args.name} is paused: {cancelled} queued messages cancelled "
                f"(start it again to send them)"
            ]
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    print("\n".join(lines))
    if campaign.mode not in MESSAGE_CAMPAIGN_MODES:
        print(await asyncio.to_thread(daemon_note, settings))
    elif action == "start":
        url = await asyncio.to_thread(daemon_answers, settings)
        print(
            f"the daemon at {url} sends them (its outbox looks for new rows at least every 30 s)"
            if url
            else "no daemon answers for this configuration: nothing is "
            "sent until `contactd run` starts with it"
        )
    return EXIT_OK


async def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db, db.session() as session:
        campaign = await repo.campaign_by_name(session, args.name)
        if campaign.mode in MESSAGE_CAMPAIGN_MODES:
            progress = await message_progress(session, campaign)
            out, lines = progress.as_dict(), progress.lines()
        else:
            dialer = settings.dialer
            stats = await campaign_stats(
                session,
                campaign.id,
                windows_s=(
                    dialer.abandon_window_days * DAY_S,
                    dialer.abandon_short_window_hours * 3600.0,
                ),
            )
            out = {
                "name": campaign.name,
                "mode": campaign.mode.value,
                "status": campaign.status.value,
                **stats.as_dict(),
            }
            lines = [
                f"campaign {campaign.name} ({campaign.mode.value}): {campaign.status.value}",
                *stats.lines(),
            ]
    print(json.dumps(out) if args.json else "\n".join(lines))
    return EXIT_OK


async def _create(args: argparse.Namespace) -> int:
    if args.mode in (m.value for m in MESSAGE_CAMPAIGN_MODES):
        return await _create_messages(args)
    settings = settings_from(args)
    spec = CampaignSpec(
        name=args.name,
        mode=args.mode,
        caller_id=args.caller_id,
        message=args.message,
        message_text=args.message_text,
        ivr_flow=args.ivr_flow,
        agent_queue=args.agent_queue,
        max_attempts=args.max_attempts,
    )
    numbers: list[tuple[str, str]] = []
    if args.from_file is not None:
        path = Path(args.from_file)
        text = await _read(path)
        numbers = [(f"{path.name} {where}", raw) for where, raw in numbers_from_text(text)]
    async with await open_database(settings) as db:
        contacts = await segment_contacts(db, args.from_segment) if args.from_segment else []
        created = await create_campaign(db, settings, spec, numbers=numbers, contacts=contacts)
    if args.json:
        print(
            json.dumps(
                {
                    "campaign_id": created.campaign_id,
                    "name": created.name,
                    "leads": created.leads,
                    "skipped": [{"where": w, "reason": r} for w, r in created.skipped],
                }
            )
        )
    else:
        print(
            f"campaign {created.name} created (draft, id {created.campaign_id}) with "
            f"{created.leads} leads; {len(created.skipped)} skipped"
        )
        for where, reason in created.skipped:
            print(f"  skipped {where}: {reason}")
        print(f"start it with: contactd dialer start {created.name}")
    return EXIT_OK


def register(sub: Any) -> None:
    campaign = sub.add_parser(
        "campaign", help="outbound campaigns (calls, SMS, e-mail): create one, see where it stands"
    )
    csub = campaign.add_subparsers(dest="campaign_command", metavar="COMMAND", required=True)
    cr = csub.add_parser("create", help="create a draft campaign and its leads")
    cr.add_argument("name", help="campaign name (letters, digits, '_', '.', '-')")
    cr.add_argument(
        "--mode",
        required=True,
        choices=[*(m.value for m in CampaignMode), *AUTOMATED_KINDS],
        help="message speaks --message-text, survey runs --flow (both automated: "
        "no agents); automated plays --message or runs --ivr-flow; sms and "
        "email send --template to each contact (queued at once, held in "
        "quiet hours); the others need agents",
    )
    source = cr.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-file",
        metavar="FILE",
        help="numbers: a CSV with a 'phone' column, or one number per line "
        "(--mode email: an 'email' column or one address per line)",
    )
    source.add_argument(
        "--from-segment",
        metavar="NAME",
        help="the contacts of a saved segment, each on its primary number",
    )
    cr.add_argument("--caller-id", default="", help='e.g. "Acme" <5550100>')
    cr.add_argument(
        "--message", default="", help="automated: the sound file to play, e.g. custom/spring-offer"
    )
    cr.add_argument(
        "--message-text",
        default="",
        help='message: the text spoken to the callee, e.g. "Hello {first_name}, '
        '..." ({first_name}, {last_name}, {name} are filled in)',
    )
    cr.add_argument(
        "--ivr-flow",
        "--flow",
        dest="ivr_flow",
        help="survey/automated: the IVR flow to run (shipped: survey, intake)",
    )
    cr.add_argument("--agent-queue", help="hand people to this Asterisk queue")
    cr.add_argument("--max-attempts", type=int, help="default: [dialer] max_attempts")
    cr.add_argument(
        "--template", default="", help="sms/email: the message template (e.g. call_fallback)"
    )
    cr.add_argument("--json", action="store_true", help="one JSON object")
    add_config_option(cr)
    cr.set_defaults(handler=lambda a: run_async(_create(a)))
    for action, text in (
        ("start", "start a campaign (sms/email: decide for each contact, queue the messages)"),
        ("pause", "pause a campaign (sms/email: cancel its queued messages not sent yet)"),
    ):
        cmd = csub.add_parser(action, help=text)
        cmd.add_argument("name", help="campaign name")
        cmd.add_argument("--json", action="store_true", help="one JSON object")
        add_config_option(cmd)
        cmd.set_defaults(handler=lambda a: run_async(_start_or_pause(a)))
    st = csub.add_parser("status", help="where a campaign stands (messages or calls)")
    st.add_argument("name", help="campaign name")
    st.add_argument("--json", action="store_true", help="one JSON object")
    add_config_option(st)
    st.set_defaults(handler=lambda a: run_async(_status(a)))
