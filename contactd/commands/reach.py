"""`contactd reach CONTACT_ID --purpose TEXT`: choose the channel for one contact now, store
why, and act on it (the same ReachService a campaign or a task uses)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.crm.routing import Router
from contactd.crm.service import ContactService
from contactd.crm.tasks import TaskService
from contactd.db.bootstrap import open_database
from contactd.messaging.reach import ReachService
from contactd.messaging.service import DEFAULT_FALLBACK_TEMPLATE, MessagingService


async def _reach(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        contacts = ContactService(db, default_region=settings.general.default_region)
        tasks = TaskService(db)
        # Not entered: a message is only queued here; the running daemon's outbox sends it.
        messaging = MessagingService(settings, db)
        reach = ReachService(db, messaging, Router(db, contacts, tasks), tasks)
        result = await reach.reach(args.contact_id, args.purpose, template=args.template,
                                   campaign_id=args.campaign, idempotency_key=args.key)
    out: dict[str, Any] = {
        "contact_id": args.contact_id, "channel": result.decision.channel.value,
        "reason": result.decision.reason.value, "address": result.decision.address,
        "action": result.action.value, "interaction_id": result.interaction_id,
        "message_id": result.message_id, "task_id": result.task_id,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"contact {args.contact_id}: {out['channel']} ({out['reason']}) -> "
              f"{out['action']}" + (f", message {out['message_id']} queued"
                                    if out["message_id"] else "")
              + (f", task {out['task_id']}" if out["task_id"] else ""))
    return EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "reach", help="choose call, SMS, e-mail or leave alone for a contact, and act on it")
    add_config_option(parser)
    parser.add_argument("contact_id", type=int, metavar="CONTACT_ID")
    parser.add_argument("--purpose", required=True,
                        help="why (shown on the timeline), e.g. 'renewal reminder'")
    parser.add_argument("--template", default=DEFAULT_FALLBACK_TEMPLATE,
                        help="message template for SMS/e-mail (default: %(default)s)")
    parser.add_argument("--campaign", type=int, metavar="ID",
                        help="the campaign asking: a call is left to its dialer")
    parser.add_argument("--key", help="idempotency key: the same key never sends twice")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(handler=lambda a: run_async(_reach(a)))
