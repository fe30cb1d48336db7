"""`contactd db upgrade|current`: schema migrations on the configured database."""

from __future__ import annotations

import argparse
from typing import Any

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.db import migrate
from contactd.db.bootstrap import open_database


async def _upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings, upgrade=False) as db:
        before = await migrate.current_revision(db)
        await migrate.upgrade(db)
        after = await migrate.current_revision(db)
    if before == after:
        print(f"database already at revision {after}")
    else:
        print(f"database upgraded from {before or 'empty'} to {after}")
    return EXIT_OK


async def _current(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings, upgrade=False) as db:
        current = await migrate.current_revision(db)
    head = migrate.head_revision()
    state = "up to date" if current == head else f"behind (head is {head})"
    print(f"revision {current or 'none'}: {state}")
    return EXIT_OK


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema commands")
    dbsub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    upgrade = dbsub.add_parser("upgrade", help="apply every pending migration")
    add_config_option(upgrade)
    upgrade.set_defaults(handler=lambda a: run_async(_upgrade(a)))
    current = dbsub.add_parser("current", help="show the schema revision")
    add_config_option(current)
    current.set_defaults(handler=lambda a: run_async(_current(a)))
