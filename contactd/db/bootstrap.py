"""Open the configured database for a command or the daemon: folder checks, then migrations."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from contactd.config import Settings
from contactd.db import migrate
from contactd.db.session import Database
from contactd.errors import StartupError

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def ensure_data_dir(path: Path) -> Path:
    """Create the data folder (0700) if needed and prove it is writable, with a clear error if
    not. A folder of ours that others can read is closed: it holds customer data."""
    try:
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"data folder {path} cannot be created: {exc.strerror}", path=str(path)
        ) from None
    if not path.is_dir():
        raise StartupError(f"data folder {path} is not a folder", path=str(path))
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"data folder {path} is not writable", path=str(path))
    _make_private(path, PRIVATE_DIR)
    return path


def _make_private(path: Path, mode: int) -> None:
    """Remove group and other rights from a file or folder we own (others' we leave alone)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid() or not info.st_mode & 0o077:
        return
    os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
    # Info, not warning: the fix is done; a CLI command without logging set up stays at its
    # one line, the daemon's log still says what changed.
    log.info(
        "closed a data path other users could read", extra={"path": str(path), "mode": oct(mode)}
    )


def _sqlite_files(settings: Settings) -> list[Path]:
    url = settings.database_url
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return []
    db = Path(url[len(prefix) :])
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


async def open_database(settings: Settings, *, upgrade: bool = True) -> Database:
    """A checked Database; the caller enters it (`async with`) to own its lifetime."""
    ensure_data_dir(settings.general.data_dir)
    db = Database(settings.database_url, echo=settings.database.echo)
    await db.check()
    for path in _sqlite_files(settings):  # made under an older, looser umask
        _make_private(path, PRIVATE_FILE)
    if upgrade:
        await migrate.upgrade(db)
    return db
