"""`contactd run` and `contactd check-config`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.config import load_settings
from contactd.config_check import warnings as config_warnings
from contactd.daemon import run_daemon
from contactd.errors import ConfigError
from contactd.logs import setup_logging


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    setup_logging(settings.general.log_level, settings.general.log_format)
    run_async(run_daemon(settings))
    return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    path: Path | None = args.file or args.config
    if path is None:
        raise ConfigError("check-config: give the configuration file (FILE or --config FILE)")
    settings = load_settings(path)
    print(f"{path}: configuration is valid")
    print(f"  data folder: {settings.general.data_dir}")
    backend = "PostgreSQL" if settings.database_url.startswith("postgresql") else "SQLite"
    print(f"  database:    {backend}")
    web = f"http://{settings.web.host}:{settings.web.port}/" if settings.web.enabled else "off"
    ami = f"{settings.ami.host}:{settings.ami.port}" if settings.ami.enabled else "off"
    print(f"  web panel:   {web}")
    print(f"  AMI:         {ami}")
    for warning in config_warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run the daemon (dialer, IVR, messaging, web panel)")
    add_config_option(run, required=True)
    run.set_defaults(handler=_run)
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("file", type=Path, metavar="FILE", nargs="?")
    add_config_option(check)
    check.set_defaults(handler=_check_config)
