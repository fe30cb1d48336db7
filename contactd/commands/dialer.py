"""`contactd dialer ...`: explain why a number may not be dialed, campaign state and statistics.

Exit codes for `explain`: 0 dialable, 1 not dialable, 2 bad input (unknown campaign, bad number,
bad time, bad configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any, Final

from contactd.cli import EXIT_NO, EXIT_OK, add_config_option, run_async, settings_from
from contactd.config import Settings
from contactd.db.bootstrap import open_database
from contactd.dialer import repo
from contactd.dialer.campaigns import CampaignAction
from contactd.dialer.explain import explain
from contactd.dialer.governor import DAY_S
from contactd.dialer.recovery import change_status
from contactd.dialer.stats import campaign_stats
from contactd.enums import MESSAGE_CAMPAIGN_MODES
from contactd.errors import ValidationError
from contactd.messaging.campaigns import message_progress

DAEMON_PROBE_S: Final = 2.0  # a local /healthz answers in milliseconds


def parse_instant(raw: str | None) -> datetime:
    """ISO-8601 instant; a time without an offset is taken as UTC."""
    if raw is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"--at {raw!r} is not an ISO-8601 date and time", field="at"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _explain(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    at = parse_instant(args.at)
    async with await open_database(settings) as db, db.session() as session:
        result = await explain(session, settings, args.number, at, args.campaign)
    for line in result.lines():
        print(line)
    return EXIT_OK if result.dialable else EXIT_NO


async def _change(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        async with db.session() as session:
            campaign = await repo.campaign_by_name(session, args.name)
        # Its messages are queued or cancelled by `campaign start|pause`, not by a status.
        if campaign.mode in MESSAGE_CAMPAIGN_MODES and args.dialer_command != "stop":
            raise ValidationError(
                f"campaign {args.name!r} is an {campaign.mode.value} campaign: use "
                f"`contactd campaign {args.dialer_command} {args.name}`", field="name")
        status = await change_status(db, args.name, CampaignAction(args.dialer_command))
    print(f"campaign {args.name} is {status.value}")
    print(await asyncio.to_thread(daemon_note, settings))
    return EXIT_OK


def health_url(settings: Settings) -> str | None:
    """Where this configuration's daemon answers /healthz; None without a web port."""
    web = settings.web
    if not web.enabled:
        return None
    host = "127.0.0.1" if web.host in ("0.0.0.0", "::", "") else web.host
    return f"http://{host}:{web.port}/healthz"


def daemon_answers(settings: Settings) -> str | None:
    """The health URL of a daemon running with this configuration; None when none answers
    (or the configuration has no web port to ask)."""
    url = health_url(settings)
    if url is None:
        return None
    try:
        with urllib.request.urlopen(url, timeout=DAEMON_PROBE_S):
            pass
    except urllib.error.HTTPError:
        pass  # 503: a daemon answers, degraded or not
    except OSError:
        return None
    return url


def daemon_note(settings: Settings) -> str:
    """Whether a daemon is there to act on the change: the row alone dials nobody."""
    url = health_url(settings)
    if url is None:
        return ("a running daemon (contactd run) follows it within a pacing tick; this "
                "configuration has no web port to check whether one runs")
    if daemon_answers(settings) is None:
        return (f"no daemon answers at {url}: nothing is dialled until `contactd run` "
                "starts with this configuration")
    return f"the daemon at {url} follows it within a pacing tick"


async def _stats(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db, db.session() as session:
        campaign = await repo.campaign_by_name(session, args.name)
        if campaign.mode in MESSAGE_CAMPAIGN_MODES:  # an SMS/e-mail campaign: its messages
            progress = await message_progress(session, campaign)
            print(json.dumps(progress.as_dict()) if args.json else "\n".join(progress.lines()))
            return EXIT_OK
        dialer = settings.dialer
        stats = await campaign_stats(session, campaign.id, windows_s=(
            dialer.abandon_window_days * DAY_S, dialer.abandon_short_window_hours * 3600.0))
    if args.json:
        print(json.dumps(stats.as_dict()))
    else:
        for line in stats.lines():
            print(line)
    return EXIT_OK


def register(sub: Any) -> None:
    dialer = sub.add_parser("dialer", help="outbound campaigns and the dialing rules")
    dsub = dialer.add_subparsers(dest="dialer_command", metavar="COMMAND", required=True)
    ex = dsub.add_parser(
        "explain",
        help="may this number be dialed now (or --at), and every reason it may not",
    )
    ex.add_argument("number", help="phone number (E.164, or national in general.default_region)")
    ex.add_argument("--campaign", metavar="NAME", help="judge it within this campaign")
    ex.add_argument("--at", metavar="ISO-8601", help="the instant to judge (default: now)")
    add_config_option(ex)
    ex.set_defaults(handler=lambda a: run_async(_explain(a)))
    for action in (CampaignAction.START, CampaignAction.PAUSE, CampaignAction.STOP):
        cmd = dsub.add_parser(action.value, help=f"{action.value} a campaign")
        cmd.add_argument("name", help="campaign name")
        add_config_option(cmd)
        cmd.set_defaults(handler=lambda a: run_async(_change(a)))
    st = dsub.add_parser("stats", help="campaign statistics")
    st.add_argument("name", help="campaign name")
    st.add_argument("--json", action="store_true", help="one JSON object")
    add_config_option(st)
    st.set_defaults(handler=lambda a: run_async(_stats(a)))
