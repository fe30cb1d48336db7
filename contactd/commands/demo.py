"""`contactd demo`: a complete installation in one folder with sample data and simulated
peers (PBX, SMSC, mail server), alive: a campaign dials, agents take calls, SMS go out."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from contactd.cli import EXIT_OK, run_async
from contactd.config import Settings, load_settings
from contactd.daemon import Components
from contactd.demo.run import admin_password, ensure_data, prepare_folder, run_demo
from contactd.logs import setup_logging


def demo_settings(config: Path, host: str, port: int) -> Settings:
    """The folder's settings file, with the panel's address from the command line."""
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("CONTACTD_")},
        "CONTACTD_WEB__HOST": host,
        "CONTACTD_WEB__PORT": str(port),
    }
    return load_settings(config, env)


async def _demo(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    config = prepare_folder(data_dir, reset=args.reset)
    settings = demo_settings(config, args.host, args.port)
    setup_logging(settings.general.log_level, settings.general.log_format)
    password = admin_password(data_dir)
    if await ensure_data(settings, password):
        print(f"Creating the demo database in {data_dir}: done, with two weeks of history.",
              file=sys.stderr)

    def announce(components: Components) -> None:
        print(
            f"\ncontactd demo is running.\n"
            f"  web panel:  {components.web_url}\n"
            f"  login:      admin / {password}\n"
            f"              also supervisor sofia and agent anna, with the same password\n"
            f"              (anna joins a campaign in Workspace; the other agents are simulated)\n"
            f"  data:       {data_dir}\n"
            f"  simulated:  PBX (AMI :{settings.ami.port}), SMSC (SMPP :{settings.smpp.port}),"
            f" mail (SMTP :{settings.email.port})\n"
            f"Every other command works on this demo with --config {config}\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )

    await run_demo(settings, announce)
    return EXIT_OK


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a demo installation: sample data, simulated PBX, SMSC and mail server",
    )
    demo.add_argument(
        "--data-dir", type=Path, default=Path("contactd-demo"),
        help="the demo's folder, kept between runs (default: ./contactd-demo)",
    )
    demo.add_argument("--host", default="127.0.0.1", help="web panel address")
    demo.add_argument("--port", type=int, default=8080, help="web panel port")
    demo.add_argument("--reset", action="store_true",
                      help="empty the demo folder first and start afresh")
    demo.set_defaults(handler=lambda a: run_async(_demo(a)))
