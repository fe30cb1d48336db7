"""The `contactd` command: thin argument handling over services; errors become exit code 2."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contactd import __version__
from contactd.config import Settings, load_settings
from contactd.errors import ContactdError

EXIT_OK = 0
EXIT_NO = 1  # a well-formed question answered "no" (e.g. `dialer explain`: not dialable)
EXIT_BAD_INPUT = 2

# Capabilities add their own sub-commands: each module has `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "contactd.commands.core",
    "contactd.commands.db",
    "contactd.commands.users",
    "contactd.commands.demo",
    "contactd.commands.contacts",
    "contactd.commands.backup",
    "contactd.commands.dialer",
    "contactd.commands.campaign",
    "contactd.commands.crm",
    "contactd.commands.messaging",
    "contactd.commands.reach",
    "contactd.commands.ivr",
)

Handler = Callable[[argparse.Namespace], int]


def add_config_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        required=required,
        metavar="FILE",
        help="contactd.toml (CONTACTD_* environment variables override it)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None)
    settings = load_settings(path)
    if path is None:  # say which database a command without --config works on
        url = settings.database_url
        shown = url.split(":///", 1)[1] if url.startswith("sqlite") else url.rsplit("@", 1)[-1]
        print(f"contactd: no --config given: database {shown}", file=sys.stderr)
    return settings


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contactd",
        description="Self-hosted contact-center server driving Asterisk over AMI.",
    )
    parser.add_argument("--version", action="version", version=f"contactd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that capability is not built yet
                continue
            raise
        module.register(sub)
    return parser


# Everything contactd writes (database, WAL, documents, exports) holds customer data or
# password hashes: readable by the contactd user only, whatever the caller's umask.
PRIVATE_UMASK = 0o077


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ContactdError as exc:
        print(f"contactd: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    finally:
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
