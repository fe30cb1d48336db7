"""`contactd user add|passwd|disable|enable|list`: passwords from a prompt or standard input,
never argv; every change is written to the audit log (by "cli")."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from contactd.auth.service import UserService
from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.db.bootstrap import open_database
from contactd.enums import Role
from contactd.errors import ValidationError


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise ValidationError("no password on standard input", field="password")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValidationError("no terminal to prompt for a password: use --password-stdin")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise ValidationError("the two passwords differ", field="password")
    return first


async def _add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    password = _read_password(args)
    async with await open_database(settings) as db:
        user = await UserService(db).add(
            args.name, password, Role(args.role), display_name=args.display_name or "",
            extension=args.extension,
        )
    print(f"user {user.username} added with role {user.role.value}")
    return EXIT_OK


async def _passwd(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    password = _read_password(args)
    async with await open_database(settings) as db:
        await UserService(db).set_password(args.name, password)
    print(f"password of {args.name} changed; their sessions are ended")
    return EXIT_OK


async def _set_active(args: argparse.Namespace, active: bool) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        await UserService(db).update(args.name, active=active)
    print(f"user {args.name} {'enabled' if active else 'disabled'}")
    return EXIT_OK


async def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    async with await open_database(settings) as db:
        users = await UserService(db).list_all()
    print(f"{'USER':<24} {'ROLE':<11} {'ACTIVE':<7} LAST SIGN-IN")
    for user in users:
        last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "-"
        active = "yes" if user.active else "no"
        print(f"{user.username:<24} {user.role.value:<11} {active:<7} {last}")
    return EXIT_OK


def register(sub: Any) -> None:
    user = sub.add_parser("user", help="manage panel users")
    usub = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    add = usub.add_parser("add", help="add a user")
    add.add_argument("name", help="login name (lower-case)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--display-name", default="")
    add.add_argument("--extension", default=None, metavar="DIAL",
                     help="the agent's phone as Asterisk dials it, e.g. PJSIP/1001 "
                          "(the workspace rings it)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_config_option(add)
    add.set_defaults(handler=lambda a: run_async(_add(a)))

    passwd = usub.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add_config_option(passwd)
    passwd.set_defaults(handler=lambda a: run_async(_passwd(a)))

    disable = usub.add_parser("disable", help="stop a user signing in (ends their sessions)")
    disable.add_argument("name")
    add_config_option(disable)
    disable.set_defaults(handler=lambda a: run_async(_set_active(a, False)))

    enable = usub.add_parser("enable", help="let a disabled user sign in again")
    enable.add_argument("name")
    add_config_option(enable)
    enable.set_defaults(handler=lambda a: run_async(_set_active(a, True)))

    listing = usub.add_parser("list", help="list users, their roles and last sign-in")
    add_config_option(listing)
    listing.set_defaults(handler=lambda a: run_async(_list(a)))
