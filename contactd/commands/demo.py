"""`contactd demo`: a complete installation in one folder with sample data, ready to explore."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from contactd.cli import EXIT_OK, run_async
from contactd.config import Settings, load_settings
from contactd.daemon import Components, run_daemon
from contactd.db.bootstrap import ensure_data_dir, open_database
from contactd.demo.data import create_demo_data, demo_exists
from contactd.logs import setup_logging

PASSWORD_FILE = "demo-admin-password"


def demo_settings(data_dir: Path, host: str, port: int) -> Settings:
    """Defaults for a laptop: SQLite in the folder, the panel on loopback, no PBX or SMSC yet."""
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("CONTACTD_")},
        "CONTACTD_GENERAL__DATA_DIR": str(data_dir.resolve()),
        "CONTACTD_WEB__HOST": host,
        "CONTACTD_WEB__PORT": str(port),
        "CONTACTD_AMI__ENABLED": "false",
        "CONTACTD_AUDIOSOCKET__ENABLED": "false",
    }
    return load_settings(None, env)


def _admin_password(data_dir: Path) -> str:
    """The demo admin password: made once, kept (mode 0600) so every start can print it."""
    path = data_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password


async def _demo(args: argparse.Namespace) -> int:
    settings = demo_settings(args.data_dir, args.host, args.port)
    setup_logging(settings.general.log_level, settings.general.log_format)
    data_dir = ensure_data_dir(settings.general.data_dir)
    async with await open_database(settings) as db:
        if not await demo_exists(db):
            print(f"Creating the demo database in {data_dir} …", file=sys.stderr)
            await create_demo_data(db, _admin_password(data_dir))
    password = _admin_password(data_dir)

    def announce(components: Components) -> None:
        print(
            f"\ncontactd demo is running.\n"
            f"  web panel:  {components.web_url}\n"
            f"  health:     {components.web_url}healthz\n"
            f"  login:      admin / {password}\n"
            f"  data:       {data_dir}\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )

    await run_daemon(settings, on_ready=announce)
    return EXIT_OK


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run a demo installation with sample data")
    demo.add_argument(
        "--data-dir", type=Path, default=Path("contactd-demo"), help="where the demo lives"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.set_defaults(handler=lambda a: run_async(_demo(a)))
