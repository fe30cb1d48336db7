"""`contactd backup` and `contactd restore`: the whole store in one archive and back."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from contactd.backup import RestoreRefused, make_backup, restore_backup
from contactd.cli import EXIT_OK, add_config_option, run_async, settings_from
from contactd.commands.dialer import daemon_answers
from contactd.db.bootstrap import open_database


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


async def _backup(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    report = await asyncio.to_thread(make_backup, settings, args.out)
    print(f"backup written to {report.path} ({_size(report.size)}): {report.database} "
          f"database at revision {report.revision or 'see dump'}, {report.files} files")
    return EXIT_OK


async def _restore(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    url = await asyncio.to_thread(daemon_answers, settings)
    if url is not None:
        raise RestoreRefused(f"a daemon answers at {url}: stop it (systemctl stop contactd) "
                             "before restoring under it")
    report = await asyncio.to_thread(restore_backup, settings, args.archive)
    async with await open_database(settings):  # brings an older backup up to this schema
        pass
    print(f"restored a {report.database} database (revision "
          f"{report.revision or 'from dump'}) and {report.files} files from {args.archive}")
    for path in report.moved_aside:
        print(f"  kept what it replaced as {path}")
    return EXIT_OK


def register(sub: Any) -> None:
    backup = sub.add_parser(
        "backup", help="write the database and stored files to one archive (safe while the "
                       "daemon runs)")
    add_config_option(backup)
    backup.add_argument("out", type=Path, nargs="?", default=Path("."),
                        help="archive file to write, or a folder for a dated one (default: .)")
    backup.set_defaults(handler=lambda a: run_async(_backup(a)))
    restore = sub.add_parser(
        "restore", help="put an archive's database and files back (the daemon stopped); what "
                        "it replaces is kept beside it")
    add_config_option(restore)
    restore.add_argument("archive", type=Path, help="a file made by `contactd backup`")
    restore.set_defaults(handler=lambda a: run_async(_restore(a)))
